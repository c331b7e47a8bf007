//! Why a replica fits nowhere, in the Kubernetes scheduler's words.
//!
//! Every node considered is charged with exactly one reason (the first check
//! it fails, in [`NodeRejection`]'s order), so the counts add up to the
//! total: "0/5 nodes are available: 3 insufficient memory, 2 node selector
//! mismatch". A host port conflict names the port and who has it there:
//! "0/3 nodes are available: 3 host port conflict (port 18080/TCP is in use
//! by a-0, a-1, a-2)".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use shoal_crdt_state::pod::PodId;

use super::inputs::HostPort;

/// Holders named per port in the reason; the rest are counted ("and 7
/// more"), so the text stays short on a large cluster.
pub const HOLDERS_SHOWN: usize = 5;

/// The first check a node failed for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRejection {
    /// Not alive in the member view.
    NodeDown,
    /// Cordoned by a user (`shoal cordon`, `shoal drain`).
    Cordoned,
    /// Its container engine is unreachable.
    RuntimeUnhealthy,
    /// Lacks a label the template's nodeSelector asks for.
    NodeSelectorMismatch,
    /// Not enough allocatable cpu left (after what this assignment placed there).
    InsufficientCpu,
    /// Not enough allocatable memory left.
    InsufficientMemory,
    /// A host port the pod needs is taken there by another pod: one that
    /// holds it (runs, restarts or stops there), or a replica this
    /// assignment placed there.
    HostPortConflict,
}

impl NodeRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRejection::NodeDown => "node down",
            NodeRejection::Cordoned => "node cordoned",
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
    /// For the nodes charged with [`NodeRejection::HostPortConflict`]: each
    /// port the pod needs that is taken, and the pods that have it.
    pub port_holders: BTreeMap<HostPort, BTreeSet<PodId>>,
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
            if *reason == NodeRejection::HostPortConflict && !self.port_holders.is_empty() {
                self.fmt_port_holders(f)?;
            }
        }
        Ok(())
    }
}

impl Unplaced {
    /// ` (port 18080/TCP is in use by a-0, a-1; port 53/UDP is in use by dns-0)`,
    /// ports and holders in order.
    fn fmt_port_holders(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (port, holders)) in self.port_holders.iter().enumerate() {
            let open = if i == 0 { " (" } else { "; " };
            write!(f, "{open}port {port} is in use by ")?;
            for (j, holder) in holders.iter().take(HOLDERS_SHOWN).enumerate() {
                let sep = if j == 0 { "" } else { ", " };
                write!(f, "{sep}{holder}")?;
            }
            if holders.len() > HOLDERS_SHOWN {
                write!(f, " and {} more", holders.len() - HOLDERS_SHOWN)?;
            }
        }
        f.write_str(")")
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
            port_holders: BTreeMap::new(),
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
            port_holders: BTreeMap::new(),
        };
        assert_eq!(u.to_string(), "0/0 nodes are available");
    }

    #[test]
    fn port_conflict_names_ports_and_a_bounded_list_of_holders() {
        use shoal_crdt_state::spec::Protocol;
        let pod = |rc: &str, index: u32| PodId {
            rc: rc.into(),
            index,
        };
        let web = HostPort {
            port: 8080,
            protocol: Protocol::Tcp,
        };
        let dns = HostPort {
            port: 53,
            protocol: Protocol::Udp,
        };
        let u = Unplaced {
            total_nodes: 9,
            reasons: BTreeMap::from([
                (NodeRejection::HostPortConflict, 8),
                (NodeRejection::NodeDown, 1),
            ]),
            port_holders: BTreeMap::from([
                (web, (0..7).map(|i| pod("web", i)).collect()),
                (dns, BTreeSet::from([pod("dns", 0)])),
            ]),
        };
        assert_eq!(
            u.to_string(),
            "0/9 nodes are available: 8 host port conflict (port 53/UDP is in use by dns-0; \
             port 8080/TCP is in use by web-0, web-1, web-2, web-3, web-4 and 2 more), \
             1 node down"
        );
    }
}
