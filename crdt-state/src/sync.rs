//! Anti-entropy: digests, "what does this peer lack", and the combined state.
//!
//! A round between peers A and B: A sends `A.digest()`; B answers with
//! `B.missing_for(&digest_a)` and its own digest; A merges the delta and
//! answers with `A.missing_for(&digest_b)`. After both deltas are merged, A
//! and B hold the same state, the join of what each held — even when they
//! held different values under one stamp (see below). One round trip,
//! whichever side starts.
//!
//! **Digest contents.** Desired state: per RC, the stamps of its three
//! registers, what they hold, and a 64-bit hash of its history. Per-register
//! stamps (not one max stamp per RC) are needed for exactness: A may have
//! the newer template while B has the newer replica count. Observed state:
//! node → version and content hash. Services: per service, the stamps of
//! its two registers and what they hold. See [`crate::digest`].
//!
//! **Exactness.** `missing_for` returns exactly the registers and records the
//! digest's owner lacks, holds with an older stamp/version, or holds with the
//! same stamp/version but other content — plus our body register when it is
//! *older* than theirs: merging an older body adds it to the rollout history
//! (every overwritten body write is history), and without it one round would
//! leave the two histories different. Equal stamps with different values
//! (impossible for a correct clock) and one version with different content
//! (impossible for a correct single writer) still happen — a bug, a broken
//! or hostile peer, a restored backup — and are then sent both ways: each
//! side merges the other's copy, and the tie-breaks of the merge (the larger
//! encoding wins, [`crate::register::join`] and [`NodeRecord`]) pick the same
//! winner on both. The tie-break orders values the same way on every peer,
//! so the winner spreads and every peer ends with it (a correct owner of a
//! node record then re-issues its own content under the next version, see
//! [`crate::observed`]). History differences are seen through the
//! hash; the whole (≤ 10 entry) history is then sent, and the union is
//! idempotent.
//!
//! [`NodeRecord`]: crate::observed::NodeRecord

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{DesiredDelta, DesiredState, RcRecord};
pub use crate::digest::{Digest, NodeVersion, RcContent, RcStamps, ServiceStamps};
use crate::hlc::Hlc;
use crate::node::{NodeId, NodeInfo};
use crate::observed::{ObservedDelta, ObservedState};
use crate::service::ServiceRecord;

impl DesiredState {
    pub fn digest(&self) -> BTreeMap<String, RcStamps> {
        self.summarized()
            .map(|(name, record)| (name.to_owned(), *record.summary()))
            .collect()
    }

    /// The registers the owner of `digest` lacks, holds older, or holds
    /// under the same stamp with another value.
    pub fn missing_for(&self, digest: &BTreeMap<String, RcStamps>) -> DesiredDelta {
        let mut delta = DesiredDelta::default();
        for (name, record) in self.summarized() {
            let (mine, ours) = (record.get(), record.summary());
            let theirs = digest.get(name).copied().unwrap_or_default();
            let (c, t) = (&ours.content, &theirs.content);
            let mut out = RcRecord::default();
            // The body goes out whenever stamp or content differ, even when
            // ours is older: the other side keeps the write it overwrites as
            // history.
            if mine.body.is_some() && (ours.body, c.body) != (theirs.body, t.body) {
                out.body = mine.body.clone();
            }
            if wanted((ours.replicas, c.replicas), (theirs.replicas, t.replicas)) {
                out.replicas = mine.replicas.clone();
            }
            if wanted((ours.deleted, c.deleted), (theirs.deleted, t.deleted)) {
                out.deleted = mine.deleted.clone();
            }
            if wanted((ours.paused, c.paused), (theirs.paused, t.paused)) {
                out.paused = mine.paused.clone();
            }
            if !mine.history.is_empty() && ours.history != theirs.history {
                out.history = mine.history.clone();
            }
            if !out.is_empty() {
                delta.rcs.insert(name.to_owned(), out);
            }
        }
        delta
    }
}

impl DesiredState {
    pub fn service_digest(&self) -> BTreeMap<String, ServiceStamps> {
        self.summarized_services()
            .map(|(name, record)| (name.to_owned(), *record.summary()))
            .collect()
    }

    /// The service registers the owner of `digest` lacks, holds older, or
    /// holds under the same stamp with another value.
    pub fn services_missing_for(
        &self,
        digest: &BTreeMap<String, ServiceStamps>,
    ) -> BTreeMap<String, ServiceRecord> {
        let mut out = BTreeMap::new();
        for (name, record) in self.summarized_services() {
            let (mine, ours) = (record.get(), record.summary());
            let theirs = digest.get(name).copied().unwrap_or_default();
            let missing = ServiceRecord {
                body: wanted((ours.body, ours.body_hash), (theirs.body, theirs.body_hash))
                    .then(|| mine.body.clone())
                    .flatten(),
                deleted: wanted(
                    (ours.deleted, ours.deleted_flag),
                    (theirs.deleted, theirs.deleted_flag),
                )
                .then(|| mine.deleted.clone())
                .flatten(),
            };
            if !missing.is_empty() {
                out.insert(name.to_owned(), missing);
            }
        }
        out
    }
}

/// Whether a register the other side holds as `theirs` needs `mine`: it is
/// newer, or another value under the same stamp.
fn wanted<T: PartialEq>(mine: (Option<Hlc>, T), theirs: (Option<Hlc>, T)) -> bool {
    mine.0 > theirs.0 || (mine.0.is_some() && mine.0 == theirs.0 && mine.1 != theirs.1)
}

impl ObservedState {
    pub fn digest(&self) -> BTreeMap<NodeId, NodeVersion> {
        self.summarized()
            .map(|(id, record)| (id, *record.summary()))
            .collect()
    }

    /// The records the owner of `digest` lacks, holds at a lower version,
    /// or holds at the same version with other content.
    pub fn missing_for(&self, digest: &BTreeMap<NodeId, NodeVersion>) -> ObservedDelta {
        let wanted = |id: &NodeId, ours: &NodeVersion| {
            digest.get(id).is_none_or(|theirs| {
                theirs.version < ours.version
                    || (theirs.version == ours.version && theirs.content != ours.content)
            })
        };
        ObservedDelta {
            nodes: self
                .summarized()
                .filter(|(id, record)| wanted(id, record.summary()))
                .map(|(id, record)| (id, record.get().clone()))
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
            nodes: self.desired.nodes.digest(),
            observed: self.observed.digest(),
            services: self.desired.service_digest(),
            tokens: self.desired.tokens.digest(),
            join: self.desired.join.stamp(),
            collected_below_ms: self.desired.collected_below_ms(),
        }
    }

    /// Exactly what the digest's owner lacks or holds older.
    pub fn missing_for(&self, digest: &Digest) -> Delta {
        let mut desired = self.desired.missing_for(&digest.desired);
        desired.nodes = self.desired.nodes.missing_for(&digest.nodes);
        desired.services = self.desired.services_missing_for(&digest.services);
        desired.tokens = self.desired.tokens.missing_for(&digest.tokens);
        desired.join = self.desired.join.missing_for(digest.join);
        Delta {
            desired,
            observed: self.observed.missing_for(&digest.observed),
        }
    }

    /// A local write forgetting `node` (`on`) or taking it back. A removal
    /// forgets the records of `node` up to the version held here (see
    /// [`crate::node_decisions`]); the record goes at once.
    pub fn remove_node(&mut self, node: NodeId, on: bool, stamp: Hlc) -> DesiredDelta {
        let through = self.observed.get(node).map_or(0, |r| r.version);
        let delta = self.desired.remove_node(node, on, through, stamp);
        self.drop_forgotten();
        delta
    }

    /// Publish (or update) this node's info, numbering a new record above
    /// every version a removal of the node forgot, so that it survives
    /// them on every peer (a node that comes back after a removal).
    pub fn set_node_info(&mut self, node: NodeId, info: NodeInfo) -> ObservedDelta {
        let forgotten = self.desired.nodes.forgets_through(node);
        self.observed.set_node_info_above(node, info, forgotten)
    }

    /// Drops the records the node decisions forget.
    fn drop_forgotten(&mut self) {
        let nodes = &self.desired.nodes;
        self.observed
            .forget_where(|node, version| nodes.forgets(node, version));
    }

    /// Join a delta. Returns the newest desired-state stamp it carried, to be
    /// passed to [`Clock::observe`](crate::hlc::Clock::observe).
    ///
    /// Records a removal forgot are dropped and copies of them ignored, and
    /// only those ([`NodeDecision::forgets`]): the records are filtered by
    /// a max register and ordered by version, so the result is the same in
    /// every delivery order, whether a take-back or the node's new record
    /// comes before or after the removal. The rule is applied here so that
    /// every merge follows it.
    ///
    /// [`NodeDecision::forgets`]: crate::node_decisions::NodeDecision::forgets
    pub fn merge_delta(&mut self, mut delta: Delta) -> Option<Hlc> {
        let newest = delta.desired.max_stamp();
        let decided = !delta.desired.nodes.is_empty();
        self.desired.merge_delta(delta.desired);
        let nodes = &self.desired.nodes;
        delta
            .observed
            .nodes
            .retain(|node, r| !nodes.forgets(*node, r.version));
        self.observed.merge_delta(delta.observed);
        if decided {
            self.drop_forgotten();
        }
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
