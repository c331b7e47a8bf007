//! The result of placement: who runs each replica, and what could not be placed.

use std::collections::{BTreeMap, BTreeSet};

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;

use super::unplaced::Unplaced;

/// Owner of every placed replica, the replicas of every node, and the
/// replicas that fit nowhere. Iteration is in `PodId` / `NodeId` order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    owners: BTreeMap<PodId, NodeId>,
    by_node: BTreeMap<NodeId, BTreeSet<PodId>>,
    /// Nodes that were alive with a healthy runtime: the pool the load was
    /// spread over, and what [`ideal_moves`] compares against.
    usable_nodes: BTreeSet<NodeId>,
    /// Replicas that fit nowhere, each with its reason. Never dropped silently.
    pub unplaced: BTreeMap<PodId, Unplaced>,
    /// Owners of the surge slots (indices `replicas..replicas + maxSurge`),
    /// placed after every replica so they never displace one. A slot runs
    /// a pod only while a rollout needs it (see `reconcile::rollout`); one
    /// that fits nowhere just leaves the rollout without that surge.
    surge: BTreeMap<PodId, NodeId>,
    surge_by_node: BTreeMap<NodeId, BTreeSet<PodId>>,
    /// Fixed hash of `owners`, set once the assignment is complete.
    fingerprint: u64,
}

impl Assignment {
    pub(super) fn new(usable_nodes: BTreeSet<NodeId>) -> Self {
        Assignment {
            usable_nodes,
            ..Assignment::default()
        }
    }

    /// An assignment given outright, owner by owner: for tests and tools
    /// that need a specific placement. The usable nodes are the owners.
    pub fn from_owners(owners: impl IntoIterator<Item = (PodId, NodeId)>) -> Self {
        Self::with_surge(owners, [])
    }

    /// [`Self::from_owners`], plus the owners of surge slots.
    pub fn with_surge(
        owners: impl IntoIterator<Item = (PodId, NodeId)>,
        surge: impl IntoIterator<Item = (PodId, NodeId)>,
    ) -> Self {
        let mut a = Assignment::default();
        for (pod, node) in owners {
            a.usable_nodes.insert(node);
            a.place(pod, node);
        }
        for (pod, node) in surge {
            a.place_surge(pod, node);
        }
        a.seal()
    }

    /// Fixes the fingerprint once every replica is placed.
    pub(super) fn seal(mut self) -> Self {
        let mut hash = xxhash_rust::xxh3::Xxh3::new();
        for (pod, node) in self.owners.iter().chain(&self.surge) {
            hash.update(pod.rc.as_bytes());
            hash.update(&[0]);
            hash.update(&pod.index.to_le_bytes());
            hash.update(&node.0.to_le_bytes());
        }
        self.fingerprint = hash.digest();
        self
    }

    /// A fixed hash of who owns what: two peers whose assignments have the
    /// same fingerprint computed the same placement. A node claims the
    /// replicas it runs under this fingerprint, and a handover waits until
    /// the successor claims the replica under the fingerprint we hold.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub(super) fn place(&mut self, pod: PodId, node: NodeId) {
        self.by_node.entry(node).or_default().insert(pod.clone());
        self.owners.insert(pod, node);
    }

    /// Gives surge slot `pod` to `node`.
    pub fn place_surge(&mut self, pod: PodId, node: NodeId) {
        self.surge_by_node
            .entry(node)
            .or_default()
            .insert(pod.clone());
        self.surge.insert(pod, node);
    }

    /// The node that should run `pod` (a replica or a surge slot), if placed.
    pub fn owner(&self, pod: &PodId) -> Option<NodeId> {
        self.owners
            .get(pod)
            .or_else(|| self.surge.get(pod))
            .copied()
    }

    /// Surge slots given to `node`, in `PodId` order.
    pub fn surge_for(&self, node: NodeId) -> impl Iterator<Item = &PodId> + '_ {
        self.surge_by_node.get(&node).into_iter().flatten()
    }

    /// Replicas assigned to `node`, in `PodId` order.
    pub fn pods_for(&self, node: NodeId) -> impl Iterator<Item = &PodId> + '_ {
        self.by_node.get(&node).into_iter().flatten()
    }

    /// Number of replicas assigned to `node`.
    pub fn load(&self, node: NodeId) -> usize {
        self.by_node.get(&node).map_or(0, BTreeSet::len)
    }

    /// Every placed replica with its owner, in `PodId` order.
    pub fn iter(&self) -> impl Iterator<Item = (&PodId, NodeId)> + '_ {
        self.owners.iter().map(|(p, n)| (p, *n))
    }

    /// Number of placed replicas.
    pub fn placed(&self) -> usize {
        self.owners.len()
    }

    /// Nodes that were usable (alive, runtime healthy) for this assignment.
    pub fn usable_nodes(&self) -> &BTreeSet<NodeId> {
        &self.usable_nodes
    }

    /// Highest number of replicas on one node.
    pub fn max_load(&self) -> usize {
        self.by_node.values().map(BTreeSet::len).max().unwrap_or(0)
    }
}

/// Replicas placed in both assignments whose owner differs: the containers a
/// change of membership forces to move.
pub fn moved(before: &Assignment, after: &Assignment) -> usize {
    before
        .owners
        .iter()
        .filter(|(pod, owner)| after.owners.get(*pod).is_some_and(|o| o != *owner))
        .count()
}

/// The fewest moves any balanced placement could make between the two
/// membership views: every replica of a node that left must move, and every
/// node that joined should receive its fair share (`placed / usable nodes`,
/// rounded to nearest) of the replicas placed in both. `moved / ideal_moves` is the
/// disruption ratio; 1.0 is perfect.
pub fn ideal_moves(before: &Assignment, after: &Assignment) -> usize {
    let left: usize = before
        .usable_nodes
        .difference(&after.usable_nodes)
        .map(|n| {
            before
                .pods_for(*n)
                .filter(|p| after.owners.contains_key(*p))
                .count()
        })
        .sum();
    let joined = after.usable_nodes.difference(&before.usable_nodes).count();
    let common = before
        .owners
        .keys()
        .filter(|p| after.owners.contains_key(*p))
        .count();
    let fair_share = if after.usable_nodes.is_empty() {
        0
    } else {
        let n = after.usable_nodes.len();
        (common + n / 2) / n
    };
    left + joined * fair_share
}
