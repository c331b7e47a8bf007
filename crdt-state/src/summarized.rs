//! A record kept together with its digest entry, computed on first use and
//! forgotten whenever the record is borrowed mutably.
//!
//! **Why a cache.** A digest entry hashes the record's content (see
//! [`digest`](crate::digest)), and hashing means encoding the record first:
//! in `bench_state`, a digest of 10,000 RCs took 17–29 ms when every record
//! was hashed, against 2–6 ms with the entries cached (a loaded 2-core
//! machine; stamps alone took 7–16 ms, as the history hash was recomputed
//! every time). Peers build full digests on both sides of every
//! anti-entropy round that finds a difference (`Pull`, then `Push`), and a
//! joining peer's `Pull` makes the other side build one too. With each entry
//! cached next to its record, a digest is a walk over the map, and a record
//! is hashed again only after it changed. The cache is invisible: it is
//! neither compared, printed nor serialized, and the only way to change the
//! record clears it (a state just decoded starts with nothing cached).

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record that has a digest entry.
pub(crate) trait Summarize {
    type Summary: Clone + fmt::Debug;

    /// The record's digest entry: a pure function of the record.
    fn summarize(&self) -> Self::Summary;
}

/// `record` and, once asked for, `record.summarize()`.
pub(crate) struct Summarized<R: Summarize> {
    record: R,
    summary: OnceLock<R::Summary>,
}

impl<R: Summarize> Summarized<R> {
    pub(crate) fn new(record: R) -> Self {
        Summarized {
            record,
            summary: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> &R {
        &self.record
    }

    pub(crate) fn into_inner(self) -> R {
        self.record
    }

    /// The record, to change it: its summary is forgotten.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        self.summary.take();
        &mut self.record
    }

    /// The record's digest entry, computed now if it changed since last time.
    pub(crate) fn summary(&self) -> &R::Summary {
        self.summary.get_or_init(|| self.record.summarize())
    }
}

impl<R: Summarize + Default> Default for Summarized<R> {
    fn default() -> Self {
        Summarized::new(R::default())
    }
}

impl<R: Summarize + Clone> Clone for Summarized<R> {
    fn clone(&self) -> Self {
        Summarized {
            record: self.record.clone(),
            summary: self.summary.clone(),
        }
    }
}

impl<R: Summarize + PartialEq> PartialEq for Summarized<R> {
    fn eq(&self, other: &Self) -> bool {
        self.record == other.record
    }
}

impl<R: Summarize + Eq> Eq for Summarized<R> {}

impl<R: Summarize + fmt::Debug> fmt::Debug for Summarized<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.record.fmt(f)
    }
}

/// Encoded exactly as the record alone: states and files keep their shape.
impl<R: Summarize + Serialize> Serialize for Summarized<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.record.serialize(serializer)
    }
}

impl<'de, R: Summarize + Deserialize<'de>> Deserialize<'de> for Summarized<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        R::deserialize(deserializer).map(Summarized::new)
    }
}
