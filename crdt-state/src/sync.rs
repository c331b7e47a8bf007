//! Anti-entropy: digests, "what does this peer lack", and the combined state.
//!
//! A round between peers A and B: A sends `A.digest()`; B answers with
//! `B.missing_for(&digest_a)` and its own digest; A merges the delta and
//! answers with `A.missing_for(&digest_b)`. After both deltas are merged, A
//! and B hold the same state (for correct writers, see below).
//!
//! **Digest contents.** Desired state: per RC, the stamps of its three
//! registers and a 64-bit hash of its history. Per-register stamps (not one
//! max stamp per RC) are needed for exactness: A may have the newer template
//! while B has the newer replica count. Observed state: node → version.
//!
//! **Exactness.** `missing_for` returns exactly the registers and records the
//! digest's owner lacks or holds with an older stamp/version — plus our body
//! register when it is *older* than theirs: merging an older body adds it to
//! the rollout history (every overwritten body write is history), and without
//! it one round would leave the two histories different. Two cases are
//! invisible to stamps and are handled by merge's tie-breaks when the values
//! meet some other way: equal stamps with different values (impossible for a
//! correct clock) and same version with different content (impossible for a
//! correct single writer). History differences are seen through the hash; the
//! whole (≤ 10 entry) history is then sent, and the union is idempotent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{DesiredDelta, DesiredState, RcRecord};
use crate::digest::history_hash;
pub use crate::digest::{Digest, RcStamps};
use crate::hlc::Hlc;
use crate::node::NodeId;
use crate::observed::{ObservedDelta, ObservedState};
use crate::register::stamp;

impl DesiredState {
    pub fn digest(&self) -> BTreeMap<String, RcStamps> {
        self.records()
            .map(|(name, record)| (name.to_owned(), RcStamps::of(record)))
            .collect()
    }

    /// The registers the owner of `digest` lacks or holds older.
    pub fn missing_for(&self, digest: &BTreeMap<String, RcStamps>) -> DesiredDelta {
        let mut delta = DesiredDelta::default();
        for (name, mine) in self.records() {
            let theirs = digest.get(name);
            let newer = |own: Option<Hlc>, other: Option<Option<Hlc>>| own > other.flatten();
            let mut out = RcRecord::default();
            // The body goes out whenever the stamps differ, even when ours is
            // older: the other side keeps the write it overwrites as history.
            if mine.body.is_some() && stamp(&mine.body) != theirs.and_then(|t| t.body) {
                out.body = mine.body.clone();
            }
            if newer(stamp(&mine.replicas), theirs.map(|t| t.replicas)) {
                out.replicas = mine.replicas.clone();
            }
            if newer(stamp(&mine.deleted), theirs.map(|t| t.deleted)) {
                out.deleted = mine.deleted.clone();
            }
            if !mine.history.is_empty() && theirs.is_none_or(|t| t.history != history_hash(mine)) {
                out.history = mine.history.clone();
            }
            if !out.is_empty() {
                delta.rcs.insert(name.to_owned(), out);
            }
        }
        delta
    }
}

impl ObservedState {
    pub fn digest(&self) -> BTreeMap<NodeId, u64> {
        self.nodes().map(|(id, r)| (id, r.version)).collect()
    }

    /// The records the owner of `digest` lacks or holds at a lower version.
    pub fn missing_for(&self, digest: &BTreeMap<NodeId, u64>) -> ObservedDelta {
        ObservedDelta {
            nodes: self
                .nodes()
                .filter(|(id, r)| digest.get(id).is_none_or(|v| *v < r.version))
                .map(|(id, r)| (id, r.clone()))
                .collect(),
        }
    }
}

/// Desired and observed state together: what a peer replicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub desired: DesiredState,
    pub observed: ObservedState,
}

/// Changes of both halves, as one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub desired: DesiredDelta,
    pub observed: ObservedDelta,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.desired.is_empty() && self.observed.is_empty()
    }

    pub fn merge(&mut self, other: Delta) {
        self.desired.merge(other.desired);
        self.observed.merge(other.observed);
    }
}

impl From<DesiredDelta> for Delta {
    fn from(desired: DesiredDelta) -> Delta {
        Delta {
            desired,
            ..Delta::default()
        }
    }
}

impl From<ObservedDelta> for Delta {
    fn from(observed: ObservedDelta) -> Delta {
        Delta {
            observed,
            ..Delta::default()
        }
    }
}

impl ClusterState {
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    pub fn digest(&self) -> Digest {
        Digest {
            desired: self.desired.digest(),
            observed: self.observed.digest(),
        }
    }

    /// Exactly what the digest's owner lacks or holds older.
    pub fn missing_for(&self, digest: &Digest) -> Delta {
        Delta {
            desired: self.desired.missing_for(&digest.desired),
            observed: self.observed.missing_for(&digest.observed),
        }
    }

    /// Join a delta. Returns the newest desired-state stamp it carried, to be
    /// passed to [`Clock::observe`](crate::hlc::Clock::observe).
    pub fn merge_delta(&mut self, delta: Delta) -> Option<Hlc> {
        let newest = delta.desired.max_stamp();
        self.desired.merge_delta(delta.desired);
        self.observed.merge_delta(delta.observed);
        newest
    }

    /// Join a peer's full state.
    pub fn merge(&mut self, other: &ClusterState) -> Option<Hlc> {
        self.merge_delta(other.to_delta())
    }

    /// The full state as a delta: what a joining peer pulls.
    pub fn to_delta(&self) -> Delta {
        Delta {
            desired: self.desired.to_delta(),
            observed: self.observed.to_delta(),
        }
    }
}
