//! What placement sees, built from the replicated state in one place.
//!
//! Every peer must feed [`assign`](super::assign()) the same inputs from the
//! same view, so the rules that turn the observed state into
//! [`NodeCandidate`]s live here and nowhere else: the peer core and the
//! simulator both call [`live_rcs`] and [`inputs`].
//!
//! **Held ports.** A host port a node's pod has published stays taken while
//! that pod may still use it: [`PodPhase::Running`], `Pending` (starting; it
//! reports the host ports its template asks for), `BackOff` (it restarts in
//! place) and `Terminating` (not gone yet). A `Failed` or `Succeeded` pod,
//! or one the engine refused its port, holds nothing. Placement never gives such a
//! port to another pod on that node, so a newcomer cannot evict a running
//! replica; the holder itself may keep it (see [`HeldPort`]).
//!
//! Only ports some live RC asks for as a `hostPort` are kept ([`WantedPorts`]):
//! the engine publishes every container port, mostly on ports it picks, and
//! those change at each restart. A held port nobody wants cannot change a
//! decision, and leaving it out keeps the common case (no `hostPort`) free:
//! empty lists, and no recompute when such a pod starts or stops.

use std::collections::BTreeMap;
use std::fmt;

use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus};
use shoal_crdt_state::spec::{Protocol, RcSpec};
use shoal_crdt_state::{DesiredState, NodeDecisions};

/// A node as placement sees it: what it published, whether the member view
/// has it alive, and the host ports its pods hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCandidate {
    pub info: NodeInfo,
    /// Counted as up by this peer (its member view, see [`inputs`]).
    pub alive: bool,
    /// A user cordoned it (`shoal cordon`/`drain`): no replica goes there.
    pub cordoned: bool,
    /// Host ports the pods this node reports still hold (see the module
    /// docs). Order does not matter.
    pub held_ports: Vec<HeldPort>,
}

/// A host port and its protocol: what two pods on one node cannot share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for HostPort {
    /// `18080/TCP`, as Kubernetes writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        };
        write!(f, "{}/{protocol}", self.port)
    }
}

/// A host port a pod holds on its node. It blocks every other pod there;
/// the holder itself may be placed on that node again (it stays put).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeldPort {
    pub port: HostPort,
    pub holder: PodId,
}

/// True when a pod in `phase` keeps its host ports: it runs, starts, or
/// will restart in place, or is still stopping.
pub fn holds_ports(phase: PodPhase) -> bool {
    match phase {
        PodPhase::Pending | PodPhase::Running | PodPhase::BackOff | PodPhase::Terminating => true,
        PodPhase::Succeeded | PodPhase::Failed => false,
    }
}

/// The host ports the live RCs ask for, sorted: the only held ports that
/// can change a placement decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantedPorts(Vec<HostPort>);

impl WantedPorts {
    pub fn of(rcs: &BTreeMap<String, RcSpec>) -> Self {
        let mut ports: Vec<HostPort> = rcs
            .values()
            .flat_map(|rc| rc.template.host_ports())
            .map(|(port, protocol)| HostPort { port, protocol })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        WantedPorts(ports)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, port: HostPort) -> bool {
        self.0.binary_search(&port).is_ok()
    }

    /// The wanted host ports held by `pods` (one node's report), sorted,
    /// once each. Nothing is allocated when no RC asks for a host port.
    pub fn held_by(&self, pods: &[PodStatus]) -> Vec<HeldPort> {
        let mut held = Vec::new();
        if self.is_empty() {
            return held;
        }
        for (port, pod) in self.held_iter(pods) {
            held.push(HeldPort {
                port,
                holder: pod.id.clone(),
            });
        }
        held.sort_unstable();
        held.dedup();
        held
    }

    /// A hash of [`WantedPorts::held_by`] for one node's report, local to
    /// this peer: equal before and after a merge means that node's
    /// placement inputs did not move. No allocation; 0 when nothing is held.
    ///
    /// Why placement is recomputed when this changes, and not on every pod
    /// status change: a status changes several times per start (pending,
    /// running, ready) and at every restart or readiness flip, on every
    /// node, and each change reaches every peer, which would then run a
    /// full assignment (25–30 ms at 1,000 nodes × 10,000 replicas).
    /// Measured in the simulator, assignments per peer over a whole run,
    /// this check vs. "any change of a node record": `apply` (100 peers,
    /// 30 RCs × 3) 27 vs 54, `failover` (50 peers) 20 vs 55, `rc-join` (60
    /// peers, 40 × 5) 34 vs 100, and 5 vs 21 in `host-port` (50 peers)
    /// while the newcomer waits. The check itself costs about 2 ns per
    /// merged record when no RC asks for a host port, and 0.4 µs for a
    /// record of 10 pods that each hold one (`bench_placement`).
    pub fn held_fingerprint(&self, pods: &[PodStatus]) -> u64 {
        if self.is_empty() {
            return 0;
        }
        // One short one-shot xxh3 per held port, chained in pod order: a
        // streaming hasher costs more to set up than a record takes to hash.
        self.held_iter(pods).fold(0, |acc, (port, pod)| {
            let seed = (u64::from(port.port) << 40)
                | ((port.protocol as u64) << 32)
                | u64::from(pod.id.index);
            let one = xxhash_rust::xxh3::xxh3_64_with_seed(pod.id.rc.as_bytes(), seed);
            acc.rotate_left(17) ^ one.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        })
    }

    fn held_iter<'p>(
        &'p self,
        pods: &'p [PodStatus],
    ) -> impl Iterator<Item = (HostPort, &'p PodStatus)> + 'p {
        pods.iter()
            .filter(|pod| holds_ports(pod.phase))
            .flat_map(|pod| {
                pod.ports.iter().map(move |p| {
                    let port = HostPort {
                        port: p.host_port,
                        protocol: p.protocol,
                    };
                    (port, pod)
                })
            })
            .filter(|(port, _)| self.contains(*port))
    }
}

/// The RCs placement places: every live RC of the desired state, by name.
pub fn live_rcs(desired: &DesiredState) -> BTreeMap<String, RcSpec> {
    desired
        .live_rcs()
        .map(|rc| {
            let spec = rc.to_spec();
            (spec.name.clone(), spec)
        })
        .collect()
}

/// The placement inputs of this peer's view: one candidate per node with a
/// record, alive when it is `me` or `alive(node)` says so, cordoned as the
/// users decided, with the host ports its reported pods hold (those some
/// RC of `rcs` wants).
///
/// `alive` is the peer's notion of "counts as up" (its member view, and
/// whatever it adds to it); placement takes it as given.
pub fn inputs(
    observed: &ObservedState,
    decisions: &NodeDecisions,
    rcs: &BTreeMap<String, RcSpec>,
    me: NodeId,
    alive: impl Fn(NodeId) -> bool,
) -> BTreeMap<NodeId, NodeCandidate> {
    let wanted = WantedPorts::of(rcs);
    observed
        .nodes()
        .map(|(node, record)| {
            let candidate = NodeCandidate {
                info: record.info.clone(),
                alive: node == me || alive(node),
                cordoned: decisions.is_cordoned(node),
                held_ports: wanted.held_by(&record.pods),
            };
            (node, candidate)
        })
        .collect()
}
