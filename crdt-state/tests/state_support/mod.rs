//! Shared helpers for the state tests: realistic specs, a small world of
//! peers that issue commands and sync, and proptest strategies over both.
#![allow(dead_code)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use shoal_crdt_state::hlc::{Clock, DEFAULT_MAX_DRIFT_MS, Hlc};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus};
use shoal_crdt_state::service::{ServiceBody, ServicePort, ServiceSpec, ServiceType, TargetPort};
use shoal_crdt_state::spec::{
    ContainerSpec, EnvVar, PartitionPolicy, PodTemplate, PortSpec, Protocol, PullPolicy, RcSpec,
    Resources, RestartPolicy, UpdateStrategy,
};
use shoal_crdt_state::sync::{ClusterState, Delta};
use shoal_crdt_state::wire;

pub const NAMES: [&str; 4] = ["web", "api", "db", "cache"];
pub const IMAGES: [&str; 4] = ["nginx:1.25", "nginx:1.27", "redis:7", "busybox:1.36"];

pub fn template(name: &str, image: &str) -> PodTemplate {
    PodTemplate {
        labels: BTreeMap::from([("app".to_owned(), name.to_owned())]),
        containers: vec![ContainerSpec {
            name: "main".to_owned(),
            image: image.to_owned(),
            command: Vec::new(),
            args: vec!["--port".to_owned(), "8080".to_owned()],
            env: vec![EnvVar {
                name: "MODE".to_owned(),
                value: "prod".to_owned(),
            }],
            ports: vec![PortSpec {
                container_port: 8080,
                host_port: None,
                protocol: Protocol::Tcp,
                name: None,
            }],
            resources: Resources {
                cpu_millis: 100,
                memory_bytes: 64 << 20,
            },
            readiness_probe: None,
            image_pull_policy: PullPolicy::IfNotPresent,
        }],
        node_selector: BTreeMap::new(),
        restart_policy: RestartPolicy::Always,
        termination_grace_period_secs: 10,
    }
}

pub fn spec(name: &str, image: &str, replicas: u32) -> RcSpec {
    RcSpec {
        name: name.to_owned(),
        replicas,
        selector: BTreeMap::from([("app".to_owned(), name.to_owned())]),
        template: template(name, image),
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::Available,
        paused: false,
    }
}

pub fn node_info(name: &str) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        peer_addr: "127.0.0.1:7000".to_owned(),
        api_addr: "127.0.0.1:8000".to_owned(),
        capacity: Resources {
            cpu_millis: 2000,
            memory_bytes: 4 << 30,
        },
        allocatable: Resources {
            cpu_millis: 1800,
            memory_bytes: 3 << 30,
        },
        labels: BTreeMap::new(),
        runtime_healthy: true,
        runtime_error: None,
        version: "0.1.0".to_owned(),
        leaving: false,
        started_ms: 0,
        incarnation: 0,
        images: Default::default(),
        listener_problems: Default::default(),
    }
}

pub fn pod_status(rc: &str, index: u32, phase: PodPhase, restarts: u32) -> PodStatus {
    let t = template(rc, IMAGES[0]);
    PodStatus {
        id: PodId {
            rc: rc.to_owned(),
            index,
        },
        template_hash: t.hash(),
        image: t.primary_image().to_owned(),
        phase,
        ready: phase == PodPhase::Running,
        restarts,
        last_error: None,
        preparing: None,
        ports: Vec::new(),
        claim: Some(1),
        available: false,
        stalled: None,
        started_ms: None,
    }
}

pub fn stamp(ms: u64, node: u64) -> Hlc {
    Hlc::new(ms, 0, NodeId(node))
}

/// A command a peer issues on its own state.
#[derive(Debug, Clone)]
pub enum Op {
    Apply {
        name: usize,
        image: usize,
        replicas: u32,
        surge: u32,
    },
    Scale {
        name: usize,
        replicas: u32,
    },
    SetImage {
        name: usize,
        image: usize,
    },
    Delete {
        name: usize,
    },
    NodeInfo {
        variant: u8,
    },
    PodStatus {
        rc: usize,
        index: u32,
        restarts: u32,
    },
    RemovePod {
        rc: usize,
        index: u32,
    },
    /// Apply service `name` with port `8080 + port`.
    ApplyService {
        name: usize,
        port: u16,
    },
    DeleteService {
        name: usize,
    },
}

/// A ClusterIP service selecting `app: NAME` on one port.
pub fn service(name: &str, port: u16) -> ServiceSpec {
    ServiceSpec {
        name: name.to_owned(),
        body: ServiceBody {
            selector: BTreeMap::from([("app".to_owned(), name.to_owned())]),
            ports: vec![ServicePort {
                name: None,
                port,
                target_port: TargetPort::Number(8080),
                protocol: Protocol::Tcp,
                node_port: None,
            }],
            service_type: ServiceType::ClusterIP,
            proxy_protocol: Default::default(),
            last_applied: None,
        },
    }
}

#[derive(Debug, Clone)]
pub enum Step {
    /// Peer `peer` issues `op`, `advance_ms` after the previous step.
    Local {
        peer: usize,
        op: Op,
        advance_ms: u64,
    },
    /// Peer `to` pulls what it lacks from peer `from` (one direction).
    Pull { from: usize, to: usize },
}

#[derive(Debug)]
pub struct Peer {
    pub node: NodeId,
    pub clock: Clock,
    pub state: ClusterState,
}

/// N peers with distinct node ids and clocks, and every delta their commands produced.
#[derive(Debug)]
pub struct World {
    pub peers: Vec<Peer>,
    pub deltas: Vec<Delta>,
    pub now_ms: u64,
}

impl World {
    pub fn new(peers: usize) -> World {
        World {
            peers: (0..peers)
                .map(|i| {
                    let node = NodeId(0x1000 + i as u64);
                    Peer {
                        node,
                        clock: Clock::new(node, DEFAULT_MAX_DRIFT_MS),
                        state: ClusterState::new(),
                    }
                })
                .collect(),
            deltas: Vec::new(),
            now_ms: 1_700_000_000_000,
        }
    }

    pub fn run(peers: usize, steps: &[Step]) -> World {
        let mut world = World::new(peers);
        for step in steps {
            world.step(step);
        }
        world
    }

    pub fn step(&mut self, step: &Step) {
        match step {
            Step::Local {
                peer,
                op,
                advance_ms,
            } => {
                self.now_ms += advance_ms;
                let n = self.peers.len();
                let delta = local(&mut self.peers[peer % n], op, self.now_ms);
                if !delta.is_empty() {
                    self.deltas.push(delta);
                }
            }
            Step::Pull { from, to } => {
                let n = self.peers.len();
                let (from, to) = (from % n, to % n);
                if from == to {
                    return;
                }
                let digest = self.peers[to].state.digest();
                let delta = self.peers[from].state.missing_for(&digest);
                let now = self.now_ms;
                let peer = &mut self.peers[to];
                if let Some(newest) = peer.state.merge_delta(delta) {
                    peer.clock.observe(&newest, now);
                }
            }
        }
    }
}

/// Run one command on a peer. Refused commands (unknown RC...) produce nothing.
pub fn local(peer: &mut Peer, op: &Op, now_ms: u64) -> Delta {
    let state = &mut peer.state;
    match op {
        Op::Apply {
            name,
            image,
            replicas,
            surge,
        } => {
            let mut s = spec(NAMES[*name], IMAGES[*image], *replicas);
            s.update_strategy.max_surge = shoal_crdt_state::spec::Allowance::Count(*surge);
            state.desired.apply(&s, peer.clock.tick(now_ms)).into()
        }
        Op::ApplyService { name, port } => state
            .desired
            .apply_service(&service(NAMES[*name], 8080 + port), peer.clock.tick(now_ms))
            .into(),
        Op::DeleteService { name } => state
            .desired
            .delete_service(NAMES[*name], peer.clock.tick(now_ms))
            .map(Delta::from)
            .unwrap_or_default(),
        Op::Scale { name, replicas } => state
            .desired
            .scale(NAMES[*name], *replicas, peer.clock.tick(now_ms))
            .map(Delta::from)
            .unwrap_or_default(),
        Op::SetImage { name, image } => state
            .desired
            .set_template(
                NAMES[*name],
                template(NAMES[*name], IMAGES[*image]),
                peer.clock.tick(now_ms),
            )
            .map(Delta::from)
            .unwrap_or_default(),
        Op::Delete { name } => state
            .desired
            .delete(NAMES[*name], peer.clock.tick(now_ms))
            .map(Delta::from)
            .unwrap_or_default(),
        Op::NodeInfo { variant } => state
            .observed
            .set_node_info(peer.node, node_info(&format!("node-{variant}")))
            .into(),
        Op::PodStatus {
            rc,
            index,
            restarts,
        } => {
            if state.observed.get(peer.node).is_none() {
                state.observed.set_node_info(peer.node, node_info("fresh"));
            }
            let status = pod_status(NAMES[*rc], *index, PodPhase::Running, *restarts);
            state
                .observed
                .set_pod_status(peer.node, status)
                .map(Delta::from)
                .unwrap_or_default()
        }
        Op::RemovePod { rc, index } => {
            let pod = PodId {
                rc: NAMES[*rc].to_owned(),
                index: *index,
            };
            state
                .observed
                .remove_pod(peer.node, &pod)
                .map(Delta::from)
                .unwrap_or_default()
        }
    }
}

pub fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..NAMES.len(), 0..IMAGES.len(), 0u32..6, 0u32..3).prop_map(
            |(name, image, replicas, surge)| Op::Apply { name, image, replicas, surge }
        ),
        3 => (0..NAMES.len(), 0u32..10).prop_map(|(name, replicas)| Op::Scale { name, replicas }),
        3 => (0..NAMES.len(), 0..IMAGES.len()).prop_map(|(name, image)| Op::SetImage { name, image }),
        1 => (0..NAMES.len()).prop_map(|name| Op::Delete { name }),
        1 => (0u8..3).prop_map(|variant| Op::NodeInfo { variant }),
        2 => (0..NAMES.len(), 0u32..4, 0u32..3)
            .prop_map(|(rc, index, restarts)| Op::PodStatus { rc, index, restarts }),
        1 => (0..NAMES.len(), 0u32..4).prop_map(|(rc, index)| Op::RemovePod { rc, index }),
        2 => (0..NAMES.len(), 0u16..2).prop_map(|(name, port)| Op::ApplyService { name, port }),
        1 => (0..NAMES.len()).prop_map(|name| Op::DeleteService { name }),
    ]
}

pub fn arb_step(peers: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..peers, arb_op(), 0u64..3)
            .prop_map(|(peer, op, advance_ms)| Step::Local { peer, op, advance_ms }),
        1 => (0..peers, 0..peers).prop_map(|(from, to)| Step::Pull { from, to }),
    ]
}

pub fn arb_steps(peers: usize, max: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(arb_step(peers), 0..max)
}

/// One anti-entropy round between `a` and `b`, as peers run it: `a`'s
/// digest goes to `b` (Pull), `b` answers with what `a` lacks and its own
/// digest (Push), `a` merges and answers with what `b` lacks (Push). Every
/// message goes through the wire envelope as it would between peers. As
/// peers do, `b` leaves its digest out when it shows that `b` holds all
/// that `a` does ([`Digest::holds_all_of`]), and `a` then answers nothing:
/// every test of a round checks that shortcut too.
///
/// [`Digest::holds_all_of`]: shoal_crdt_state::Digest::holds_all_of
pub fn exchange(a: &mut ClusterState, b: &mut ClusterState) {
    fn ship<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
        wire::decode(&wire::encode(value).unwrap(), wire::MAX_MESSAGE_BYTES).unwrap()
    }
    let digest_a = ship(&a.digest());
    let for_a = b.missing_for(&digest_a);
    let digest_b = ship(&b.digest());
    a.merge_delta(ship(&for_a));
    if digest_b.holds_all_of(&digest_a) {
        return;
    }
    let for_b = a.missing_for(&digest_b);
    b.merge_delta(ship(&for_b));
}
