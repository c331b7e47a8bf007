//! Two peers that received the same writes in different orders and
//! groupings place every replica alike.
//!
//! `assign` takes ordered maps, so handing it the same maps in another
//! order proves nothing. What can differ between peers is how each one's
//! state got there: node records and RC writes arrive one by one over
//! gossip in any order, or batched, or as one anti-entropy transfer. This
//! test drives the real merges (`ClusterState::merge_delta`, `Delta::merge`,
//! `digest`/`missing_for`) and the real input derivation (`live_rcs`,
//! `inputs`) on both peers, with clashing stamps and equal-version node
//! records among the writes, and compares what placement sees and decides.

use std::collections::BTreeMap;

use proptest::prelude::*;
use shoal::placement::{NodeCandidate, assign, inputs, live_rcs};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus, PublishedPort};
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, PortSpec, Protocol, RcSpec, Resources,
    RestartPolicy, TemplateHash, UpdateStrategy,
};
use shoal_crdt_state::{ClusterState, Delta, Hlc, ObservedState};

const NODES: u64 = 6;
const HOST_PORT: u16 = 8000;

/// One write somewhere in the cluster. Stamps come from a tiny range so
/// that two writers often share one (a buggy or hostile clock): the merge
/// must still pick the same winner on every peer.
#[derive(Debug, Clone)]
enum Op {
    /// Node `node` publishes its info, then maybe a pod holding the host port.
    Report {
        node: u64,
        zone_a: bool,
        cpu: u64,
        holds: Option<(u8, u32)>,
    },
    /// Another writer publishes version 1 of `node`'s record with other
    /// content (a restarted node that lost its record).
    Clash { node: u64, cpu: u64 },
    Apply {
        writer: usize,
        stamp: (u64, u64),
        rc: u8,
        replicas: u32,
        zoned: bool,
        host_port: bool,
    },
    Scale {
        writer: usize,
        stamp: (u64, u64),
        rc: u8,
        replicas: u32,
    },
    Delete {
        writer: usize,
        stamp: (u64, u64),
        rc: u8,
    },
    Cordon {
        writer: usize,
        stamp: (u64, u64),
        node: u64,
        on: bool,
    },
    /// `shoal node delete`. Never taken back here: see [`Op`]'s caller.
    Remove {
        writer: usize,
        stamp: (u64, u64),
        node: u64,
    },
}

fn stamp_strategy() -> impl Strategy<Value = (u64, u64)> {
    (1u64..4, 0u64..3)
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..NODES, any::<bool>(), 1u64..4, prop::option::of((0u8..4, 0u32..3)))
            .prop_map(|(node, zone_a, cpu, holds)| Op::Report { node, zone_a, cpu, holds }),
        1 => (0..NODES, 1u64..4).prop_map(|(node, cpu)| Op::Clash { node, cpu }),
        4 => (0usize..3, stamp_strategy(), 0u8..4, 0u32..6, any::<bool>(), any::<bool>())
            .prop_map(|(writer, stamp, rc, replicas, zoned, host_port)| Op::Apply {
                writer, stamp, rc, replicas, zoned, host_port,
            }),
        2 => (0usize..3, stamp_strategy(), 0u8..4, 0u32..6)
            .prop_map(|(writer, stamp, rc, replicas)| Op::Scale { writer, stamp, rc, replicas }),
        1 => (0usize..3, stamp_strategy(), 0u8..4)
            .prop_map(|(writer, stamp, rc)| Op::Delete { writer, stamp, rc }),
        1 => (0usize..3, stamp_strategy(), 0..NODES, any::<bool>())
            .prop_map(|(writer, stamp, node, on)| Op::Cordon { writer, stamp, node, on }),
        1 => (0usize..3, stamp_strategy(), 0..NODES)
            .prop_map(|(writer, stamp, node)| Op::Remove { writer, stamp, node }),
    ]
}

fn hlc((ms, node): (u64, u64)) -> Hlc {
    Hlc::new(ms, 0, NodeId(100 + node))
}

fn rc_name(rc: u8) -> String {
    format!("rc{rc}")
}

/// 1–3 CPUs per node and 1 CPU per replica, so capacity binds and the
/// assignment depends on every node's record.
fn info(zone_a: bool, cpu: u64) -> NodeInfo {
    let mut info = NodeInfo::healthy(
        "",
        Resources {
            cpu_millis: cpu * 1000,
            memory_bytes: 1 << 30,
        },
    );
    let zone = if zone_a { "a" } else { "b" };
    info.labels.insert("zone".into(), zone.into());
    info
}

fn spec(name: &str, replicas: u32, zoned: bool, host_port: bool) -> RcSpec {
    let mut container = ContainerSpec::new("main", "img:1");
    container.resources = Resources {
        cpu_millis: 1000,
        memory_bytes: 1 << 20,
    };
    if host_port {
        container.ports.push(PortSpec {
            container_port: 80,
            host_port: Some(HOST_PORT),
            protocol: Protocol::Tcp,
            name: None,
        });
    }
    let mut node_selector = BTreeMap::new();
    if zoned {
        node_selector.insert("zone".to_string(), "a".to_string());
    }
    RcSpec {
        name: name.into(),
        replicas,
        selector: BTreeMap::new(),
        template: PodTemplate {
            labels: BTreeMap::new(),
            containers: vec![container],
            node_selector,
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 1,
        },
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::default(),
        paused: false,
    }
}

fn holding(rc: u8, index: u32) -> PodStatus {
    PodStatus {
        id: PodId {
            rc: rc_name(rc),
            index,
        },
        template_hash: TemplateHash(1),
        image: "img:1".into(),
        phase: PodPhase::Running,
        ready: true,
        restarts: 0,
        last_error: None,
        preparing: None,
        ports: vec![PublishedPort {
            container_port: 80,
            host_port: HOST_PORT,
            protocol: Protocol::Tcp,
        }],
        claim: None,
        available: true,
        stalled: None,
        started_ms: None,
    }
}

/// The messages the writes produce, in the order they were made. Each
/// writer has seen every earlier message, so it can scale or delete what
/// others created.
///
/// Removals are never taken back: a peer that merged a node's record
/// while the node was removed has dropped it for good, one that got it
/// after a take-back keeps it, and only anti-entropy with a holder (the
/// node itself) brings them together again. That is not a merge of the
/// same messages, so this test cannot check it.
fn messages(ops: &[Op]) -> Vec<Delta> {
    let mut own: BTreeMap<u64, ObservedState> = BTreeMap::new();
    let mut writers = [
        ClusterState::new(),
        ClusterState::new(),
        ClusterState::new(),
    ];
    let mut out: Vec<Delta> = Vec::new();
    for op in ops {
        for w in writers.iter_mut() {
            for m in &out {
                w.merge_delta(m.clone());
            }
        }
        match op {
            Op::Report {
                node,
                zone_a,
                cpu,
                holds,
            } => {
                let id = NodeId(*node);
                let state = own.entry(*node).or_default();
                out.push(state.set_node_info(id, info(*zone_a, *cpu)).into());
                if let Some((rc, index)) = holds {
                    let delta = state.set_pod_status(id, holding(*rc, *index)).unwrap();
                    out.push(delta.into());
                }
            }
            Op::Clash { node, cpu } => {
                let mut other = ObservedState::new();
                out.push(other.set_node_info(NodeId(*node), info(true, *cpu)).into());
            }
            Op::Apply {
                writer,
                stamp,
                rc,
                replicas,
                zoned,
                host_port,
            } => {
                let spec = spec(&rc_name(*rc), *replicas, *zoned, *host_port);
                out.push(writers[*writer].desired.apply(&spec, hlc(*stamp)).into());
            }
            Op::Scale {
                writer,
                stamp,
                rc,
                replicas,
            } => {
                let desired = &mut writers[*writer].desired;
                if let Ok(d) = desired.scale(&rc_name(*rc), *replicas, hlc(*stamp)) {
                    out.push(d.into());
                }
            }
            Op::Delete { writer, stamp, rc } => {
                if let Ok(d) = writers[*writer].desired.delete(&rc_name(*rc), hlc(*stamp)) {
                    out.push(d.into());
                }
            }
            Op::Cordon {
                writer,
                stamp,
                node,
                on,
            } => {
                let desired = &mut writers[*writer].desired;
                out.push(desired.cordon(NodeId(*node), *on, hlc(*stamp)).into());
            }
            Op::Remove {
                writer,
                stamp,
                node,
            } => {
                let state = &mut writers[*writer];
                out.push(state.remove_node(NodeId(*node), true, hlc(*stamp)).into());
            }
        }
    }
    out.retain(|d| !d.is_empty());
    out
}

/// `messages` reordered by `keys` (a random permutation).
fn shuffled(messages: &[Delta], keys: &[u64]) -> Vec<Delta> {
    let mut order: Vec<usize> = (0..messages.len()).collect();
    order.sort_by_key(|i| (keys[*i % keys.len()], *i));
    order.into_iter().map(|i| messages[i].clone()).collect()
}

/// What placement sees on a peer, and what it decides.
fn placement_view(
    state: &ClusterState,
) -> (BTreeMap<String, RcSpec>, BTreeMap<NodeId, NodeCandidate>) {
    let rcs = live_rcs(&state.desired);
    // The member view is the same on both peers: node 5 is down.
    let nodes = inputs(
        &state.observed,
        state.desired.nodes(),
        &rcs,
        NodeId(0),
        |n| n != NodeId(5),
    );
    (rcs, nodes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn peers_that_merged_the_same_writes_differently_place_alike(
        ops in prop::collection::vec(op_strategy(), 1..24),
        keys_a in prop::collection::vec(any::<u64>(), 64),
        keys_b in prop::collection::vec(any::<u64>(), 64),
        cuts in prop::collection::vec((1usize..6, any::<bool>()), 1..16),
    ) {
        let all = messages(&ops);

        // Peer A: every message alone, in one order.
        let mut a = ClusterState::new();
        for m in shuffled(&all, &keys_a) {
            a.merge_delta(m);
        }

        // Peer B: another order, in groups; each group arrives either as
        // one batched delta or through anti-entropy from a peer that holds
        // just that group.
        let mut b = ClusterState::new();
        let mut rest = shuffled(&all, &keys_b).into_iter().peekable();
        for (size, batched) in cuts.iter().cycle() {
            if rest.peek().is_none() {
                break;
            }
            let group: Vec<Delta> = rest.by_ref().take(*size).collect();
            if *batched {
                let mut batch = Delta::default();
                for m in group {
                    batch.merge(m);
                }
                b.merge_delta(batch);
            } else {
                let mut holder = ClusterState::new();
                for m in group {
                    holder.merge_delta(m);
                }
                b.merge_delta(holder.missing_for(&b.digest()));
            }
        }

        let (rcs_a, nodes_a) = placement_view(&a);
        let (rcs_b, nodes_b) = placement_view(&b);
        prop_assert_eq!(&rcs_a, &rcs_b, "live RCs differ");
        prop_assert_eq!(&nodes_a, &nodes_b, "placement inputs differ");
        let placed_a = assign(&rcs_a, &nodes_a);
        prop_assert_eq!(&placed_a, &assign(&rcs_b, &nodes_b));
        let declared: u32 = rcs_a.values().map(|r| r.replicas).sum();
        prop_assert_eq!(placed_a.placed() + placed_a.unplaced.len(), declared as usize);
    }
}
