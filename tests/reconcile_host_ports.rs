//! Reconcile scenarios about host ports: placement and `plan` together on
//! three nodes that report what they run, and the ports a pod reports (and
//! so holds) while it starts, runs, waits to restart, or is refused.

mod reconcile_support;

use std::collections::BTreeMap;

use reconcile_support::*;
use shoal::placement::{Assignment, inputs};
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::NodeDecisions;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodPhase, PublishedPort};
use shoal_crdt_state::spec::{PortSpec, Protocol, RcSpec, Resources};
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent, PodObservation};

/// Three nodes that run and report their pods as the peer core does:
/// placement from the observed state, then each node's plan.
struct ThreeNodes {
    observed: ObservedState,
    local: BTreeMap<NodeId, LocalPods>,
}

const NODES: [NodeId; 3] = [ME, OTHER, NodeId(3)];

fn host_port_rc(name: &str, replicas: u32) -> RcSpec {
    let mut spec = rc(name, replicas, &format!("{name}:1"));
    spec.template.containers[0].ports.push(PortSpec {
        container_port: 80,
        host_port: Some(18080),
        protocol: Protocol::Tcp,
        name: None,
    });
    spec
}

impl ThreeNodes {
    /// `spec`'s replicas running where placement puts them, bound to their ports.
    fn running(spec: &RcSpec) -> ThreeNodes {
        let mut observed = ObservedState::new();
        for node in NODES {
            observed.set_node_info(node, node_info());
        }
        let mut nodes = ThreeNodes {
            observed,
            local: NODES.iter().map(|n| (*n, LocalPods::new())).collect(),
        };
        let first = nodes.placement(&rcs(&[spec]));
        for (id, node) in first.iter() {
            nodes.local.get_mut(&node).unwrap().adopt(&[ExistingPod {
                pod: id.clone(),
                template_hash: spec.template.hash(),
                running: true,
                ports: vec![PublishedPort {
                    container_port: 80,
                    host_port: 18080,
                    protocol: Protocol::Tcp,
                }],
            }]);
        }
        nodes.publish(&first);
        nodes
    }

    fn placement(&self, rcs: &BTreeMap<String, RcSpec>) -> Assignment {
        shoal::placement::assign(
            rcs,
            &inputs(&self.observed, &NodeDecisions::default(), rcs, ME, |_| true),
        )
    }

    /// Every node's actions at `now`, then every node reports its pods.
    fn round(&mut self, now: u64, rcs: &BTreeMap<String, RcSpec>) -> (Assignment, Vec<PodAction>) {
        let a = self.placement(rcs);
        let mut actions = Vec::new();
        for (node, local) in &mut self.local {
            let p = plan(
                *node,
                now,
                &a,
                rcs,
                &self.observed,
                local,
                &ReconcilePolicy::default(),
            );
            actions.extend(p.actions);
        }
        self.publish(&a);
        (a, actions)
    }

    /// Each node's report of its pods, as `Peer::publish_pods` writes it.
    fn publish(&mut self, a: &Assignment) {
        for (node, local) in &self.local {
            let reported: Vec<_> = self.observed.get(*node).unwrap().pods.clone();
            for gone in reported.iter().filter(|p| local.get(&p.id).is_none()) {
                self.observed.remove_pod(*node, &gone.id).unwrap();
            }
            for (id, pod) in local.iter() {
                let claim = (a.owner(id) == Some(*node)).then(|| a.fingerprint());
                let status = pod.status(id, "img", claim);
                self.observed.set_pod_status(*node, status).unwrap();
            }
        }
    }

    /// The runtime confirms every stop.
    fn confirm_stops(&mut self, actions: &[PodAction]) {
        for action in actions {
            let PodAction::Stop {
                pod, template_hash, ..
            } = action
            else {
                continue;
            };
            for local in self.local.values_mut() {
                let obs = PodObservation {
                    pod: pod.clone(),
                    template_hash: *template_hash,
                    event: PodEvent::Removed,
                };
                local.handle_observation(0, &obs);
            }
        }
    }
}

fn node_info() -> NodeInfo {
    let res = Resources {
        cpu_millis: 16_000,
        memory_bytes: 64 << 30,
    };
    NodeInfo::healthy("", res)
}

#[test]
fn a_newcomer_on_a_held_host_port_never_stops_the_replicas_running_on_it() {
    let a = host_port_rc("a", 3);
    let b = host_port_rc("b", 1);
    let mut nodes = ThreeNodes::running(&a);
    let before = nodes.placement(&rcs(&[&a]));
    let both = rcs(&[&a, &b]);
    // Well past the handover bound: nothing is waiting to happen either.
    for now in [0, 10_000, 40_000, 120_000] {
        let (placed, actions) = nodes.round(now, &both);
        assert!(actions.is_empty(), "at {now} ms: {actions:?}");
        for (id, node) in before.iter() {
            assert_eq!(placed.owner(id), Some(node), "{id} moved at {now} ms");
        }
        assert_eq!(
            placed.unplaced[&pod("b", 0)].to_string(),
            "0/3 nodes are available: 3 host port conflict (port 18080/TCP is in use by a-0, a-1, a-2)"
        );
    }
}

#[test]
fn a_newcomer_on_a_held_host_port_starts_once_the_holders_are_gone() {
    let a = host_port_rc("a", 3);
    let b = host_port_rc("b", 1);
    let mut nodes = ThreeNodes::running(&a);
    nodes.round(0, &rcs(&[&a, &b]));

    // `a` deleted: its pods stop, and hold the port until they are gone.
    let only_b = rcs(&[&b]);
    let (placed, actions) = nodes.round(1_000, &only_b);
    assert_eq!(stops(&actions).len(), 3);
    assert!(starts(&actions).is_empty(), "{actions:?}");
    assert!(placed.unplaced.contains_key(&pod("b", 0)));

    nodes.confirm_stops(&actions);
    nodes.publish(&placed);
    let (placed, actions) = nodes.round(2_000, &only_b);
    assert!(placed.unplaced.is_empty(), "{:?}", placed.unplaced);
    assert_eq!(starts(&actions), vec![pod("b", 0)]);
}

const BOUND: PublishedPort = PublishedPort {
    container_port: 80,
    host_port: 18080,
    protocol: Protocol::Tcp,
};

#[test]
fn a_pod_reports_its_host_port_while_it_starts_runs_and_waits_to_restart() {
    let web = host_port_rc("web", 1);
    let a = owners(&[("web", 0, ME)]);
    let set = rcs(&[&web]);
    let policy = ReconcilePolicy::default();
    let mut local = LocalPods::new();
    let reported = |local: &LocalPods| {
        let s = local
            .get(&pod("web", 0))
            .unwrap()
            .status(&pod("web", 0), "web:1", None);
        (s.phase, s.ports)
    };

    plan(ME, 0, &a, &set, &none(), &mut local, &policy);
    assert_eq!(reported(&local), (PodPhase::Pending, vec![BOUND]));
    let up = PodEvent::Running { ports: vec![BOUND] };
    observe(&mut local, 100, &web, 0, up.clone());
    assert_eq!(reported(&local), (PodPhase::Running, vec![BOUND]));

    let crash = PodEvent::Exited {
        code: 1,
        oom_killed: false,
    };
    observe(&mut local, 1_000, &web, 0, crash.clone());
    let p = plan(ME, 1_000, &a, &set, &none(), &mut local, &policy);
    assert_eq!(starts(&p.actions), vec![pod("web", 0)]);
    assert_eq!(
        reported(&local),
        (PodPhase::Pending, vec![BOUND]),
        "restarting"
    );
    observe(&mut local, 1_100, &web, 0, up);
    observe(&mut local, 2_000, &web, 0, crash);
    plan(ME, 2_000, &a, &set, &none(), &mut local, &policy);
    assert_eq!(
        reported(&local),
        (PodPhase::BackOff, vec![BOUND]),
        "backing off"
    );
}

#[test]
fn a_pod_the_engine_refused_its_host_port_holds_nothing_while_it_backs_off() {
    let web = host_port_rc("web", 1);
    let a = owners(&[("web", 0, ME)]);
    let set = rcs(&[&web]);
    let policy = ReconcilePolicy::default();
    let mut local = LocalPods::new();
    let refused =
        || PodEvent::StartError("Bind for 0.0.0.0:18080 failed: port is already allocated".into());
    plan(ME, 0, &a, &set, &none(), &mut local, &policy);
    // The first failure restarts at once (claiming again), the second backs off.
    observe(&mut local, 10, &web, 0, refused());
    let p = plan(ME, 10, &a, &set, &none(), &mut local, &policy);
    assert_eq!(starts(&p.actions), vec![pod("web", 0)]);
    observe(&mut local, 20, &web, 0, refused());
    let p = plan(ME, 20, &a, &set, &none(), &mut local, &policy);
    assert!(p.actions.is_empty());
    let status = local
        .get(&pod("web", 0))
        .unwrap()
        .status(&pod("web", 0), "web:1", None);
    assert_eq!(status.phase, PodPhase::BackOff);
    assert!(status.ports.is_empty(), "{:?}", status.ports);
}
