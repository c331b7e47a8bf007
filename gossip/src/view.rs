//! The member view handed to the peer core: sorted, versioned, and
//! including ourselves, so placement can read it directly.

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;

use crate::identity::PeerIdentity;

/// SWIM's opinion of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberState {
    Alive,
    /// Failed a probe; declared down unless it refutes in time. Still
    /// counts as a member (placement keeps its replicas where they are).
    Suspect,
    Down,
}

impl MemberState {
    pub(crate) fn from_foca(state: foca::State) -> Self {
        match state {
            foca::State::Alive => Self::Alive,
            foca::State::Suspect => Self::Suspect,
            foca::State::Down => Self::Down,
        }
    }

    /// Alive or suspect: SWIM still counts it in.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Down)
    }
}

/// One member as seen locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEntry {
    pub identity: PeerIdentity,
    pub state: MemberState,
    /// SWIM's refutation counter within this identity (foca's incarnation),
    /// distinct from the identity's own restart incarnation.
    pub swim_incarnation: u16,
}

/// Everything this peer knows about the cluster, sorted by identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Bumped whenever a member comes up, goes down, is renamed, or is
    /// suspected: compare versions to skip recomputing placement.
    pub version: u64,
    /// Sorted by `identity` (node id, then address, then incarnation).
    pub members: Vec<MemberEntry>,
}

impl MemberView {
    /// Node ids of the members SWIM counts in (alive or suspect), sorted.
    pub fn active_nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self
            .members
            .iter()
            .filter(|m| m.state.is_active())
            .map(|m| m.identity.node)
            .collect();
        nodes.dedup();
        nodes
    }

    pub fn get(&self, node: NodeId) -> impl Iterator<Item = &MemberEntry> {
        self.members.iter().filter(move |m| m.identity.node == node)
    }
}
