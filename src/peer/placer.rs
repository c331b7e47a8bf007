//! Who computes placement for a peer: [`assign`] itself for a real peer.
//! The simulator gives its peers one placer that remembers recent answers,
//! since hundreds of simulated peers compute the very same assignment from
//! the same inputs; `assign` is a pure function, so the answer is the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::spec::RcSpec;

use crate::placement::{Assignment, NodeCandidate, assign};

/// Computes the assignment of `rcs` over `nodes`; must answer exactly what
/// [`assign`] answers.
pub trait Placer {
    fn assign(
        &self,
        rcs: &BTreeMap<String, RcSpec>,
        nodes: &BTreeMap<NodeId, NodeCandidate>,
    ) -> Assignment;
}

/// [`assign`], computed every time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Assign;

impl Placer for Assign {
    fn assign(
        &self,
        rcs: &BTreeMap<String, RcSpec>,
        nodes: &BTreeMap<NodeId, NodeCandidate>,
    ) -> Assignment {
        assign(rcs, nodes)
    }
}

/// The placer of a peer's config: [`Assign`] by default.
#[derive(Clone)]
pub struct PlacerRef(pub Arc<dyn Placer + Send + Sync>);

impl Default for PlacerRef {
    fn default() -> Self {
        PlacerRef(Arc::new(Assign))
    }
}

impl std::fmt::Debug for PlacerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlacerRef")
    }
}
