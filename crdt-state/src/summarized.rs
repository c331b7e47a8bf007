//! A record kept together with its digest entry, computed on first use and
//! forgotten whenever the record changes; both behind one [`Arc`], so that
//! copies of a state share their records.
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
//! neither compared, printed nor serialized, and the only ways to change the
//! record clear it (a state just decoded starts with nothing cached).
//!
//! **Why shared.** The task that owns a peer hands copies of its whole state
//! to readers (API snapshots) and to the disk writer (the once-a-second
//! snapshot). Copying every record took ~30 ms at 10,000 RCs, on the task
//! that also answers SWIM probes. Behind an `Arc`, cloning a [`Summarized`]
//! copies a pointer; a state's clone copies its maps' keys and pointers only,
//! and records are copied when they change while shared (copy-on-write,
//! [`Arc::make_mut`]), at most once per record per copy handed out. A
//! summary computed by either holder serves both: it is a pure function of
//! the record they share.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record that has a digest entry.
pub(crate) trait Summarize {
    type Summary: Clone + fmt::Debug;

    /// The record's digest entry: a pure function of the record.
    fn summarize(&self) -> Self::Summary;
}

/// `record` and, once asked for, `record.summarize()`; cheap to clone.
pub(crate) struct Summarized<R: Summarize> {
    inner: Arc<Entry<R>>,
}

/// What the `Arc` holds.
struct Entry<R: Summarize> {
    record: R,
    summary: OnceLock<R::Summary>,
}

impl<R: Summarize> Entry<R> {
    fn new(record: R) -> Self {
        Entry {
            record,
            summary: OnceLock::new(),
        }
    }
}

/// Used by [`Arc::make_mut`] to unshare a record about to change: the copy
/// starts without a summary, which the change would forget anyway.
impl<R: Summarize + Clone> Clone for Entry<R> {
    fn clone(&self) -> Self {
        Entry::new(self.record.clone())
    }
}

impl<R: Summarize> Summarized<R> {
    pub(crate) fn new(record: R) -> Self {
        Summarized {
            inner: Arc::new(Entry::new(record)),
        }
    }

    pub(crate) fn get(&self) -> &R {
        &self.inner.record
    }

    /// The record, unshared (copied if another state still holds it).
    pub(crate) fn into_inner(self) -> R
    where
        R: Clone,
    {
        match Arc::try_unwrap(self.inner) {
            Ok(entry) => entry.record,
            Err(shared) => shared.record.clone(),
        }
    }

    /// The record, to change it: copied first if it is shared
    /// (copy-on-write), and its summary is forgotten.
    pub(crate) fn get_mut(&mut self) -> &mut R
    where
        R: Clone,
    {
        let entry = Arc::make_mut(&mut self.inner);
        entry.summary.take();
        &mut entry.record
    }

    /// Runs `change` on the record, which it may leave as it was (a merge
    /// of something already known). A shared record is copied and changed
    /// aside; if the copy still equals it, the copy is dropped, and the
    /// record stays shared with its summary. A record held only here is
    /// changed in place, as [`Summarized::get_mut`] does.
    pub(crate) fn update(&mut self, change: impl FnOnce(&mut R))
    where
        R: Clone + PartialEq,
    {
        if let Some(entry) = Arc::get_mut(&mut self.inner) {
            entry.summary.take();
            change(&mut entry.record);
            return;
        }
        let mut record = self.inner.record.clone();
        change(&mut record);
        if record != self.inner.record {
            *self = Summarized::new(record);
        }
    }

    /// The record's digest entry, computed now if it changed since last time.
    pub(crate) fn summary(&self) -> &R::Summary {
        self.inner
            .summary
            .get_or_init(|| self.inner.record.summarize())
    }
}

impl<R: Summarize + Default> Default for Summarized<R> {
    fn default() -> Self {
        Summarized::new(R::default())
    }
}

/// A pointer copy: both clones share the record and its summary.
impl<R: Summarize> Clone for Summarized<R> {
    fn clone(&self) -> Self {
        Summarized {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Summarize + PartialEq> PartialEq for Summarized<R> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.get() == other.get()
    }
}

impl<R: Summarize + Eq> Eq for Summarized<R> {}

impl<R: Summarize + fmt::Debug> fmt::Debug for Summarized<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

/// Encoded exactly as the record alone: states and files keep their shape.
impl<R: Summarize + Serialize> Serialize for Summarized<R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

impl<'de, R: Summarize + Deserialize<'de>> Deserialize<'de> for Summarized<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        R::deserialize(deserializer).map(Summarized::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Counts how often it is summarized.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    struct Counted(u32);

    thread_local! {
        /// Summaries computed by this test's thread.
        static SUMMARIES: Cell<usize> = const { Cell::new(0) };
    }

    impl Summarize for Counted {
        type Summary = u32;
        fn summarize(&self) -> u32 {
            SUMMARIES.set(SUMMARIES.get() + 1);
            self.0 * 10
        }
    }

    #[test]
    fn a_clone_shares_the_record_until_one_side_changes_it() {
        let mut live = Summarized::new(Counted(1));
        let copy = live.clone();
        assert!(Arc::ptr_eq(&live.inner, &copy.inner));
        live.get_mut().0 = 2;
        assert_eq!(copy.get(), &Counted(1), "the copy never sees the change");
        assert_eq!(live.get(), &Counted(2));
        assert_eq!((*live.summary(), *copy.summary()), (20, 10));
    }

    #[test]
    fn a_changed_record_is_summarized_again_and_an_unchanged_shared_one_is_not() {
        let mut live = Summarized::new(Counted(3));
        let _ = live.summary();
        let copy = live.clone();
        let before = SUMMARIES.get();
        live.update(|r| r.0 = 3); // a merge of what it already holds
        assert!(Arc::ptr_eq(&live.inner, &copy.inner), "still shared");
        assert_eq!(*live.summary(), 30);
        assert_eq!(SUMMARIES.get(), before, "cached");
        live.update(|r| r.0 = 4);
        assert!(!Arc::ptr_eq(&live.inner, &copy.inner));
        assert_eq!((*live.summary(), *copy.summary()), (40, 30));
    }

    #[test]
    fn it_encodes_as_the_record_alone() {
        let wrapped = Summarized::new(Counted(7));
        let config = bincode::config::standard();
        assert_eq!(
            bincode::serde::encode_to_vec(&wrapped, config).unwrap(),
            bincode::serde::encode_to_vec(Counted(7), config).unwrap()
        );
    }
}
