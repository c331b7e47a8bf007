//! Who a node is and what it offers: the inputs placement reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{Labels, Resources};

/// A node's permanent identity: chosen at first start, kept in its data dir.
/// Orders peers wherever ties must break the same way everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl NodeInfo {
    /// A healthy node called `name` offering all of `capacity`, with no
    /// addresses, labels or version: what tests, tools and simulations
    /// start from (fill in the rest with struct update syntax).
    pub fn healthy(name: impl Into<String>, capacity: Resources) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            peer_addr: String::new(),
            api_addr: String::new(),
            capacity,
            allocatable: capacity,
            labels: Labels::new(),
            runtime_healthy: true,
            runtime_error: None,
            version: String::new(),
            leaving: false,
            started_ms: 0,
            incarnation: 0,
            images: ImageHoldings::new(),
            listener_problems: ListenerProblems::new(),
        }
    }
}

/// Which images a node holds, of those the cluster's RCs use: reference
/// (as the RC spells it) to the engine's image ID (`sha256:...`). Peers
/// that lack an image fetch it from a node listed here, and check that
/// what they loaded has this ID.
pub type ImageHoldings = BTreeMap<String, String>;

/// What the node's load balancer cannot listen on (a port in use, an
/// address not local), by service: one line per listener, saying why.
/// Published in the node's record rather than fetched from the node, so
/// that `describe svc` at any peer shows every node's problems from its
/// own state, also for a node it cannot reach now; only failures are
/// listed, so the record stays small and changes rarely.
pub type ListenerProblems = BTreeMap<String, Vec<String>>;

/// What a node publishes about itself in its observed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Human name (`--name`), shown by `get nodes`.
    pub name: String,
    /// Address peers reach it on (QUIC, one UDP port).
    pub peer_addr: String,
    /// Address of its HTTP API (for `logs`, forwarded requests).
    pub api_addr: String,
    pub capacity: Resources,
    /// Capacity less what the node keeps for itself.
    pub allocatable: Resources,
    pub labels: Labels,
    /// False while the container engine is unreachable: placement skips the node.
    pub runtime_healthy: bool,
    /// Engine's message when unhealthy.
    pub runtime_error: Option<String>,
    /// Shoal version the node runs.
    pub version: String,
    /// The peer is stopping gracefully (a restart, an upgrade, a site
    /// powering down) and its pods keep running on its engine: the others
    /// keep its replicas placed on it for a grace before replacing them,
    /// so it can come back and adopt them without duplicates.
    pub leaving: bool,
    /// When this peer process started (wall ms): of two new nodes that
    /// claim one name, the younger gives way.
    pub started_ms: u64,
    /// The SWIM incarnation of the process that wrote this record (set by
    /// the peer itself). A record older than the incarnation the member
    /// view shows comes from before a restart: what it says the node runs
    /// is not known to be true any more.
    pub incarnation: u64,
    /// The images of the cluster's RCs this node holds (see [`ImageHoldings`]).
    pub images: ImageHoldings,
    /// Its load balancer's listeners that do not listen (see [`ListenerProblems`]).
    pub listener_problems: ListenerProblems,
}
