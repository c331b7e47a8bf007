//! Why a replica fits nowhere, in the Kubernetes scheduler's words.
//!
//! Every node considered is charged with exactly one reason (the first check
//! it fails, in [`NodeRejection`]'s order), so the counts add up to the
//! total: "0/5 nodes are available: 3 insufficient memory, 2 node selector
//! mismatch".

use std::collections::BTreeMap;
use std::fmt;

/// The first check a node failed for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRejection {
    /// Not alive in the member view.
    NodeDown,
    /// Its container engine is unreachable.
    RuntimeUnhealthy,
    /// Lacks a label the template's nodeSelector asks for.
    NodeSelectorMismatch,
    /// Not enough allocatable cpu left (after what this assignment placed there).
    InsufficientCpu,
    /// Not enough allocatable memory left.
    InsufficientMemory,
    /// A host port the pod needs is taken there by another replica.
    HostPortConflict,
}

impl NodeRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRejection::NodeDown => "node down",
            NodeRejection::RuntimeUnhealthy => "runtime unhealthy",
            NodeRejection::NodeSelectorMismatch => "node selector mismatch",
            NodeRejection::InsufficientCpu => "insufficient cpu",
            NodeRejection::InsufficientMemory => "insufficient memory",
            NodeRejection::HostPortConflict => "host port conflict",
        }
    }
}

/// A replica placement could not place, and why; shown by `get pods` / `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    /// Every node placement considered, alive or not.
    pub total_nodes: usize,
    /// How many nodes failed for each reason; sums to `total_nodes`.
    pub reasons: BTreeMap<NodeRejection, usize>,
}

impl fmt::Display for Unplaced {
    /// Largest count first, ties in [`NodeRejection`] order, so the text is
    /// the same on every peer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available", self.total_nodes)?;
        let mut reasons: Vec<(NodeRejection, usize)> =
            self.reasons.iter().map(|(r, n)| (*r, *n)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        for (i, (reason, count)) in reasons.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            write!(f, "{sep}{count} {}", reason.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_text_lists_largest_count_first() {
        let u = Unplaced {
            total_nodes: 5,
            reasons: BTreeMap::from([
                (NodeRejection::NodeSelectorMismatch, 2),
                (NodeRejection::InsufficientMemory, 3),
            ]),
        };
        assert_eq!(
            u.to_string(),
            "0/5 nodes are available: 3 insufficient memory, 2 node selector mismatch"
        );
    }

    #[test]
    fn no_nodes_at_all_says_so() {
        let u = Unplaced {
            total_nodes: 0,
            reasons: BTreeMap::new(),
        };
        assert_eq!(u.to_string(), "0/0 nodes are available");
    }
}
