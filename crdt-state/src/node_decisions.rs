//! What users decide about nodes — cordon and delete — replicated with the
//! desired state.
//!
//! A node's own record in the observed state has one writer, the node, and
//! a node that is down for good cannot write "forget me". So these
//! decisions are last-writer-wins registers stamped by the hybrid clock of
//! whichever peer the user asked, merged per field like an RC's registers:
//!
//! - `cordoned`: placement puts no replica on the node (`shoal cordon`,
//!   the first step of `shoal drain`); its replicas move elsewhere,
//!   make-before-break. `shoal uncordon` writes `false`.
//! - `removed`: the node is forgotten (`shoal node delete`, or down longer
//!   than `--forget-down-after`), so it leaves `get nodes` and `get pods`
//!   everywhere. A removed node that comes back writes `false` over it with
//!   a newer stamp and registers again, as a kubelet re-registers a
//!   deleted node.
//! - `forgets_through`: what a removal forgot, kept after a take-back. A
//!   removal names the newest version of the node's record its writer held;
//!   every peer drops the records at or below it and ignores copies of
//!   them ([`NodeDecision::forgets`], applied by
//!   [`crate::ClusterState::merge_delta`]). It is a max register apart from
//!   `removed` because a take-back overwrites `removed` and must not undo
//!   the forgetting: were "removed ⇒ drop the record" the rule, a peer that
//!   met the node's new record while the removal was in force would drop
//!   it and a peer that met the take-back first would keep it — the merge
//!   would depend on delivery order. With the version bound, the node's
//!   old records go and its newer ones (written after it saw the removal,
//!   numbered above the bound: [`crate::ClusterState::set_node_info`]) stay,
//!   in every order. A record newer than the bound that the remover had not
//!   seen also stays, everywhere alike; the peer removes again once it
//!   holds it.
//!
//! - `key`: the node's signing key ([`crate::identity`]), written by the
//!   node itself when it first joins; first writer wins, and a removal
//!   releases it (a binding made before the removal stops counting).
//!
//! Removals are collected with the tombstones (see [`crate::gc`]) once
//! every known node holds them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::identity::{self, KeyBinding, PublicKey};
use crate::node::NodeId;
use crate::register::encoding;
use crate::register::{self, Reg};

/// The decisions about one node. A register never written is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDecision {
    pub cordoned: Option<Reg<bool>>,
    pub removed: Option<Reg<bool>>,
    /// The node's signing key (see [`crate::identity`]).
    pub key: Option<KeyBinding>,
    /// Records of the node at or below this version are forgotten: the
    /// largest version any removal named (see the module doc).
    pub forgets_through: Option<u64>,
}

impl NodeDecision {
    pub fn merge(&mut self, other: NodeDecision) {
        register::join(&mut self.cordoned, other.cordoned);
        register::join(&mut self.removed, other.removed);
        identity::join(&mut self.key, other.key);
        self.forgets_through = self.forgets_through.max(other.forgets_through);
    }

    pub fn is_empty(&self) -> bool {
        self.cordoned.is_none()
            && self.removed.is_none()
            && self.key.is_none()
            && self.forgets_through.is_none()
    }

    /// Whether a record of this node at `version` is forgotten: the one
    /// rule that merge, removal and the peer's re-registration follow.
    pub fn forgets(&self, version: u64) -> bool {
        self.forgets_through
            .is_some_and(|through| version <= through)
    }

    /// The key the node id is bound to now: none while a removal newer
    /// than the binding's release is in force.
    pub fn bound_key(&self) -> Option<&KeyBinding> {
        let binding = self.key.as_ref()?;
        (!identity::releases(self.removed.as_ref(), binding)).then_some(binding)
    }

    pub fn is_cordoned(&self) -> bool {
        self.cordoned.as_ref().is_some_and(|r| r.val)
    }

    pub fn is_removed(&self) -> bool {
        self.removed.as_ref().is_some_and(|r| r.val)
    }

    /// The newest stamp of the decision, its key binding's included, so
    /// that a settled decision (see [`crate::gc`]) is hashed with its
    /// binding and the fence treats both alike.
    pub fn max_stamp(&self) -> Option<Hlc> {
        [
            register::stamp(&self.cordoned),
            register::stamp(&self.removed),
            self.key.map(|k| k.stamp),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Its digest entry: each register's stamp and value (exact, and
    /// smaller than a hash).
    pub fn stamps(&self) -> DecisionStamps {
        let entry = |r: &Option<Reg<bool>>| r.as_ref().map(|r| (r.marker, r.val));
        DecisionStamps {
            cordoned: entry(&self.cordoned),
            removed: entry(&self.removed),
            key: self.key.as_ref().map(key_hash),
            forgets_through: self.forgets_through,
        }
    }

    /// The registers the owner of `theirs` lacks, holds older, or holds
    /// under the same stamp with the other value.
    pub fn missing_for(&self, theirs: Option<&DecisionStamps>) -> NodeDecision {
        let theirs = theirs.copied().unwrap_or_default();
        let mine = self.stamps();
        let wanted = |m: Option<(Hlc, bool)>, t: Option<(Hlc, bool)>| {
            m.is_some_and(|m| t.is_none_or(|t| m.0 > t.0 || (m.0 == t.0 && m.1 != t.1)))
        };
        NodeDecision {
            cordoned: if wanted(mine.cordoned, theirs.cordoned) {
                self.cordoned.clone()
            } else {
                None
            },
            removed: if wanted(mine.removed, theirs.removed) {
                self.removed.clone()
            } else {
                None
            },
            // Bindings join by a total order: any difference is sent, and
            // both sides end with the preferred one.
            key: if mine.key.is_some() && mine.key != theirs.key {
                self.key
            } else {
                None
            },
            forgets_through: self
                .forgets_through
                .filter(|_| mine.forgets_through > theirs.forgets_through),
        }
    }
}

/// A binding's digest entry: a hash of the whole binding.
fn key_hash(binding: &KeyBinding) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&encoding(binding))
}

/// A node decision's digest entry: `(stamp, value)` per register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionStamps {
    pub cordoned: Option<(Hlc, bool)>,
    pub removed: Option<(Hlc, bool)>,
    /// Hash of the key binding.
    pub key: Option<u64>,
    pub forgets_through: Option<u64>,
}

/// Every node decision, by node id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDecisions {
    nodes: BTreeMap<NodeId, NodeDecision>,
}

impl NodeDecisions {
    pub fn get(&self, node: NodeId) -> Option<&NodeDecision> {
        self.nodes.get(&node)
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, &NodeDecision)> {
        self.nodes.iter().map(|(n, d)| (*n, d))
    }

    pub fn is_cordoned(&self, node: NodeId) -> bool {
        self.get(node).is_some_and(NodeDecision::is_cordoned)
    }

    pub fn is_removed(&self, node: NodeId) -> bool {
        self.get(node).is_some_and(NodeDecision::is_removed)
    }

    /// Nodes currently removed.
    pub fn removed(&self) -> BTreeSet<NodeId> {
        self.iter()
            .filter(|(_, d)| d.is_removed())
            .map(|(n, _)| n)
            .collect()
    }

    /// Writes `cordoned = on` for `node`; empty when it already holds.
    pub fn cordon(&mut self, node: NodeId, on: bool, stamp: Hlc) -> BTreeMap<NodeId, NodeDecision> {
        if self.is_cordoned(node) == on && self.get(node).is_some_and(|d| d.cordoned.is_some()) {
            return BTreeMap::new();
        }
        self.commit(
            node,
            NodeDecision {
                cordoned: Some(register::write(on, stamp)),
                ..NodeDecision::default()
            },
        )
    }

    /// Writes `removed = on` for `node`; a removal (`on`) also forgets its
    /// records up to version `through` (the newest the caller holds). Empty
    /// when it already holds: taken back, or removed with every record up
    /// to `through` forgotten.
    pub fn remove(
        &mut self,
        node: NodeId,
        on: bool,
        through: u64,
        stamp: Hlc,
    ) -> BTreeMap<NodeId, NodeDecision> {
        let held = self.get(node).is_some_and(|d| d.removed.is_some())
            && self.is_removed(node) == on
            && (!on || self.forgets(node, through));
        if held {
            return BTreeMap::new();
        }
        self.commit(
            node,
            NodeDecision {
                removed: Some(register::write(on, stamp)),
                forgets_through: on.then_some(through),
                ..NodeDecision::default()
            },
        )
    }

    /// Whether a record of `node` at `version` is forgotten (see
    /// [`NodeDecision::forgets`]).
    pub fn forgets(&self, node: NodeId, version: u64) -> bool {
        self.get(node).is_some_and(|d| d.forgets(version))
    }

    /// The largest version of `node`'s records a removal forgot (0: none).
    /// The node's next record is numbered above it.
    pub fn forgets_through(&self, node: NodeId) -> u64 {
        self.get(node).and_then(|d| d.forgets_through).unwrap_or(0)
    }

    /// The key `node` is bound to now (see [`NodeDecision::bound_key`]).
    pub fn bound_key(&self, node: NodeId) -> Option<&KeyBinding> {
        self.get(node).and_then(NodeDecision::bound_key)
    }

    /// Announces `key` as `node`'s, stamped `stamp`, following the newest
    /// release of the id if it was released. Empty when it is bound to
    /// `key` already.
    pub fn bind(
        &mut self,
        node: NodeId,
        key: PublicKey,
        stamp: Hlc,
    ) -> BTreeMap<NodeId, NodeDecision> {
        if self.bound_key(node).is_some_and(|b| b.key == key) {
            return BTreeMap::new();
        }
        let after = self
            .get(node)
            .and_then(|d| d.removed.as_ref())
            .filter(|r| r.val)
            .map(|r| r.marker);
        self.commit(
            node,
            NodeDecision {
                key: Some(KeyBinding { key, stamp, after }),
                ..NodeDecision::default()
            },
        )
    }

    fn commit(&mut self, node: NodeId, write: NodeDecision) -> BTreeMap<NodeId, NodeDecision> {
        self.nodes.entry(node).or_default().merge(write.clone());
        BTreeMap::from([(node, write)])
    }

    pub fn merge(&mut self, delta: BTreeMap<NodeId, NodeDecision>) {
        for (node, decision) in delta {
            if !decision.is_empty() {
                self.nodes.entry(node).or_default().merge(decision);
            }
        }
    }

    pub fn digest(&self) -> BTreeMap<NodeId, DecisionStamps> {
        self.iter().map(|(n, d)| (n, d.stamps())).collect()
    }

    pub fn missing_for(
        &self,
        digest: &BTreeMap<NodeId, DecisionStamps>,
    ) -> BTreeMap<NodeId, NodeDecision> {
        self.iter()
            .map(|(n, d)| (n, d.missing_for(digest.get(&n))))
            .filter(|(_, d)| !d.is_empty())
            .collect()
    }

    /// Drops the decisions for which `doomed` holds; returns their nodes.
    pub(crate) fn retain_unless(
        &mut self,
        mut doomed: impl FnMut(NodeId, &NodeDecision) -> bool,
    ) -> Vec<NodeId> {
        let mut out = Vec::new();
        self.nodes.retain(|node, d| {
            let drop = doomed(*node, d);
            if drop {
                out.push(*node);
            }
            !drop
        });
        out
    }

    pub fn to_delta(&self) -> BTreeMap<NodeId, NodeDecision> {
        self.nodes.clone()
    }
}
