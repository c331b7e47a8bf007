//! Observed state: what each node reports about itself and the pods it runs.
//!
//! Every [`NodeRecord`] has a single writer, the node it describes. That
//! node bumps the record's `version` on each local change and ships the whole
//! record (small: node info plus a few pod statuses) as the delta; a merge
//! keeps the higher version. No clocks, no per-field stamps are needed.
//!
//! **Same version, different content** cannot come from a correct single
//! writer. It can come from a node that lost its data dir and restarted its
//! counter, a restored backup, or a bug; peers must still converge, so the
//! record with the larger bincode encoding wins, and digests carry a content
//! hash so that anti-entropy finds such copies (see [`crate::digest`]). A
//! restarted node catches up by itself: its writes use `version = (its
//! record here) + 1`, and once it has merged its old record from any peer,
//! its next write is newer than that. A node that meets another copy of its
//! own record under its current version re-issues its own under the next
//! one ([`ObservedState::reissue`]): it is the only writer, so its content
//! is the truth, whichever copy the tie-break would keep.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::gc::GcAck;
use crate::identity::{RecordSigner, Signature, signed_bytes};
use crate::node::{NodeId, NodeInfo};
use crate::pod::{PodId, PodStatus};
use crate::register::encoding;
use crate::summarized::Summarized;

/// One node's self-report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Bumped by the node on every change: the only thing merge compares.
    pub version: u64,
    pub info: NodeInfo,
    /// Status of each pod the node runs, sorted by pod id, one per id.
    pub pods: Vec<PodStatus>,
    /// The node's garbage-collection acknowledgement (see [`crate::gc`]).
    pub gc: GcAck,
    /// The node's signature over the rest ([`crate::identity::signed_bytes`]),
    /// checked against its bound key before a peer merges the record.
    pub signature: Signature,
}

impl NodeRecord {
    pub fn pod(&self, id: &PodId) -> Option<&PodStatus> {
        self.pods
            .binary_search_by(|p| p.id.cmp(id))
            .ok()
            .map(|i| &self.pods[i])
    }

    /// True when `other` should replace `self` in a merge.
    fn is_superseded_by(&self, other: &NodeRecord) -> bool {
        match other.version.cmp(&self.version) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => other != self && encoding(other) > encoding(self),
        }
    }
}

/// Records to ship: after a local change, the changed node's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedDelta {
    pub nodes: BTreeMap<NodeId, NodeRecord>,
}

impl ObservedDelta {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Join another delta into this one (to batch before sending).
    pub fn merge(&mut self, other: ObservedDelta) {
        for (node, record) in other.nodes {
            merge_into(&mut self.nodes, node, record);
        }
    }
}

/// Every node's latest self-report, by node id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedState {
    /// Each record with its digest entry, cached (encoded as records alone).
    nodes: BTreeMap<NodeId, Summarized<NodeRecord>>,
}

impl ObservedState {
    pub fn new() -> ObservedState {
        ObservedState::default()
    }

    pub fn get(&self, node: NodeId) -> Option<&NodeRecord> {
        self.nodes.get(&node).map(Summarized::get)
    }

    /// All records, sorted by node id.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &NodeRecord)> {
        self.nodes.iter().map(|(id, r)| (*id, r.get()))
    }

    /// Every record with its digest entry, sorted by node id.
    pub(crate) fn summarized(&self) -> impl Iterator<Item = (NodeId, &Summarized<NodeRecord>)> {
        self.nodes.iter().map(|(id, r)| (*id, r))
    }

    /// Every reported pod with the node that runs it, sorted by node then pod.
    pub fn pods(&self) -> impl Iterator<Item = (NodeId, &PodStatus)> {
        self.nodes
            .iter()
            .flat_map(|(id, r)| r.get().pods.iter().map(move |p| (*id, p)))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    // ---- local writes: call only for this node's own id ----

    /// Publish (or update) this node's info. Unchanged info: empty delta.
    /// A node that may have been removed registers through
    /// [`crate::ClusterState::set_node_info`] instead.
    pub fn set_node_info(&mut self, node: NodeId, info: NodeInfo) -> ObservedDelta {
        self.set_node_info_above(node, info, 0)
    }

    /// [`Self::set_node_info`], a new record numbered above `forgotten`
    /// (the version a removal of the node forgot through), so that it is
    /// newer than everything the removal forgot.
    pub fn set_node_info_above(
        &mut self,
        node: NodeId,
        info: NodeInfo,
        forgotten: u64,
    ) -> ObservedDelta {
        match self.nodes.get_mut(&node) {
            Some(record) if record.get().info == info => ObservedDelta::default(),
            Some(record) => {
                let record = record.get_mut();
                record.info = info;
                record.version += 1;
                single(node, record)
            }
            None => {
                let record = NodeRecord {
                    version: forgotten.saturating_add(1),
                    info,
                    pods: Vec::new(),
                    gc: GcAck::default(),
                    signature: Signature::default(),
                };
                let delta = single(node, &record);
                self.nodes.insert(node, Summarized::new(record));
                delta
            }
        }
    }

    /// Publish this node's garbage-collection acknowledgement. Unchanged,
    /// or no record yet: empty delta.
    pub fn set_gc_ack(&mut self, node: NodeId, ack: GcAck) -> ObservedDelta {
        match self.nodes.get_mut(&node) {
            Some(record) if record.get().gc != ack => {
                let record = record.get_mut();
                record.gc = ack;
                record.version += 1;
                single(node, record)
            }
            _ => ObservedDelta::default(),
        }
    }

    /// Report the status of a pod this node runs. Unchanged status: empty delta.
    pub fn set_pod_status(
        &mut self,
        node: NodeId,
        status: PodStatus,
    ) -> Result<ObservedDelta, StateError> {
        let record = self
            .nodes
            .get_mut(&node)
            .ok_or(StateError::UnknownNode { node })?;
        let found = record.get().pods.binary_search_by(|p| p.id.cmp(&status.id));
        if found.is_ok_and(|i| record.get().pods[i] == status) {
            return Ok(ObservedDelta::default());
        }
        let record = record.get_mut();
        match found {
            Ok(i) => record.pods[i] = status,
            Err(i) => record.pods.insert(i, status),
        }
        record.version += 1;
        Ok(single(node, record))
    }

    /// Stop reporting a pod (it was removed). Unknown pod: empty delta.
    pub fn remove_pod(&mut self, node: NodeId, pod: &PodId) -> Result<ObservedDelta, StateError> {
        let record = self
            .nodes
            .get_mut(&node)
            .ok_or(StateError::UnknownNode { node })?;
        let Ok(i) = record.get().pods.binary_search_by(|p| p.id.cmp(pod)) else {
            return Ok(ObservedDelta::default());
        };
        let record = record.get_mut();
        record.pods.remove(i);
        record.version += 1;
        Ok(single(node, record))
    }

    /// Drop a node's record (a node removed for good). Peers that still hold
    /// it will send it back through anti-entropy unless they forget it too:
    /// forget only nodes every member agrees are gone.
    pub fn forget(&mut self, node: NodeId) -> Option<NodeRecord> {
        self.nodes.remove(&node).map(Summarized::into_inner)
    }

    /// Drops every record for which `doomed(node, version)` holds.
    pub(crate) fn forget_where(&mut self, doomed: impl Fn(NodeId, u64) -> bool) {
        self.nodes.retain(|node, r| !doomed(*node, r.get().version));
    }

    /// Re-issue this node's record, unchanged, under the next version: a copy
    /// with other content under our current version is out there, and only
    /// a newer version replaces it on every peer. Unknown node: empty delta.
    pub fn reissue(&mut self, node: NodeId) -> ObservedDelta {
        let Some(record) = self.nodes.get_mut(&node) else {
            return ObservedDelta::default();
        };
        let record = record.get_mut();
        record.version += 1;
        single(node, record)
    }

    /// Sign this node's record as it now stands and return it as a delta:
    /// call after every local write that changed it, before it is sent.
    /// Unknown node: empty delta.
    pub fn sign(&mut self, node: NodeId, signer: &dyn RecordSigner) -> ObservedDelta {
        let Some(record) = self.nodes.get_mut(&node) else {
            return ObservedDelta::default();
        };
        let signature = signer.sign(&signed_bytes(node, record.get()));
        if record.get().signature != signature {
            record.get_mut().signature = signature;
        }
        single(node, record.get())
    }

    // ---- merging ----

    pub fn merge_delta(&mut self, delta: ObservedDelta) {
        for (node, record) in delta.nodes {
            let record = in_order(record);
            match self.nodes.entry(node) {
                Entry::Occupied(mut current) => {
                    if current.get().get().is_superseded_by(&record) {
                        // Replaced whole: a record shared with a snapshot is
                        // not copied first.
                        *current.get_mut() = Summarized::new(record);
                    }
                }
                Entry::Vacant(slot) => {
                    slot.insert(Summarized::new(record));
                }
            }
        }
    }

    pub fn merge(&mut self, other: &ObservedState) {
        self.merge_delta(other.to_delta());
    }

    pub fn to_delta(&self) -> ObservedDelta {
        ObservedDelta {
            nodes: self
                .nodes
                .iter()
                .map(|(id, r)| (*id, r.get().clone()))
                .collect(),
        }
    }
}

fn single(node: NodeId, record: &NodeRecord) -> ObservedDelta {
    ObservedDelta {
        nodes: BTreeMap::from([(node, record.clone())]),
    }
}

/// Records come from the network: put the pod list back in order (sorted,
/// one status per pod id) before comparing.
fn in_order(mut record: NodeRecord) -> NodeRecord {
    if !record.pods.is_sorted_by(|a, b| a.id < b.id) {
        record.pods.sort_by(|a, b| a.id.cmp(&b.id));
        record.pods.dedup_by(|later, kept| later.id == kept.id);
    }
    record
}

/// Join one incoming record into a delta's records.
fn merge_into(nodes: &mut BTreeMap<NodeId, NodeRecord>, node: NodeId, record: NodeRecord) {
    let record = in_order(record);
    match nodes.get_mut(&node) {
        Some(current) if current.is_superseded_by(&record) => *current = record,
        Some(_) => {}
        None => {
            nodes.insert(node, record);
        }
    }
}
