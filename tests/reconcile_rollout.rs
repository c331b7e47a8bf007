//! Rolling update across three peers: each plans on its own, from the same
//! reported state, and the rollout paces itself one replica at a time.

use std::collections::BTreeMap;

use shoal::placement::Assignment;
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::{PodId, PodStatus};
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, RcSpec, RestartPolicy, TemplateHash,
    UpdateStrategy,
};
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent, PodObservation};

fn rc(replicas: u32, image: &str, max_surge: u32, max_unavailable: u32) -> RcSpec {
    RcSpec {
        name: "web".into(),
        replicas,
        selector: BTreeMap::new(),
        template: PodTemplate {
            labels: BTreeMap::new(),
            containers: vec![ContainerSpec::new("main", image)],
            node_selector: BTreeMap::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 1,
        },
        update_strategy: UpdateStrategy {
            max_surge,
            max_unavailable,
        },
        partition_policy: PartitionPolicy::default(),
        paused: false,
    }
}

fn pod(index: u32) -> PodId {
    PodId {
        rc: "web".into(),
        index,
    }
}

/// N peers, replica i on node i, and a fake runtime that carries out each
/// action one step later: a stop is removed, a start runs, then turns ready.
struct Cluster {
    peers: BTreeMap<NodeId, LocalPods>,
    assignment: Assignment,
    /// Runtime work queued by the last round: (node, observation).
    pending: Vec<(NodeId, PodObservation)>,
    now: u64,
}

impl Cluster {
    fn new(spec: &RcSpec) -> Self {
        let mut peers = BTreeMap::new();
        for i in 0..spec.replicas {
            let mut local = LocalPods::new();
            local.adopt(&[ExistingPod {
                pod: pod(i),
                template_hash: spec.template.hash(),
                running: true,
                ports: vec![],
            }]);
            local.handle_observation(
                0,
                &PodObservation {
                    pod: pod(i),
                    template_hash: spec.template.hash(),
                    event: PodEvent::Ready(true),
                },
            );
            peers.insert(NodeId(u64::from(i)), local);
        }
        let assignment =
            Assignment::from_owners((0..spec.replicas).map(|i| (pod(i), NodeId(u64::from(i)))));
        Cluster {
            peers,
            assignment,
            pending: Vec::new(),
            now: 0,
        }
    }

    fn reported(&self) -> BTreeMap<NodeId, Vec<PodStatus>> {
        self.peers
            .iter()
            .map(|(n, l)| (*n, l.iter().map(|(id, p)| p.status(id, "", None)).collect()))
            .collect()
    }

    /// Replicas running and ready, by template.
    fn available(&self, hash: TemplateHash) -> usize {
        self.peers
            .values()
            .flat_map(|l| l.iter())
            .filter(|(_, p)| p.available() && p.template_hash == hash)
            .count()
    }

    /// Deliver the runtime's results of the previous round, then let every
    /// peer plan on the same reported state. Returns the actions by node.
    fn round(&mut self, spec: &RcSpec) -> Vec<(NodeId, PodAction)> {
        self.now += 1_000;
        for (node, obs) in std::mem::take(&mut self.pending) {
            self.peers
                .get_mut(&node)
                .unwrap()
                .handle_observation(self.now, &obs);
        }
        let reported = self.reported();
        let rcs = BTreeMap::from([("web".to_owned(), spec.clone())]);
        let mut all = Vec::new();
        let nodes: Vec<NodeId> = self.peers.keys().copied().collect();
        for node in nodes {
            let local = self.peers.get_mut(&node).unwrap();
            let p = plan(
                node,
                self.now,
                &self.assignment,
                &rcs,
                &reported,
                local,
                &ReconcilePolicy::default(),
            );
            for action in p.actions {
                match &action {
                    PodAction::Stop {
                        pod, template_hash, ..
                    } => self.pending.push((
                        node,
                        PodObservation {
                            pod: pod.clone(),
                            template_hash: *template_hash,
                            event: PodEvent::Removed,
                        },
                    )),
                    PodAction::Start { pod, template } => {
                        let hash = template.hash();
                        for event in [PodEvent::Running { ports: vec![] }, PodEvent::Ready(true)] {
                            self.pending.push((
                                node,
                                PodObservation {
                                    pod: pod.clone(),
                                    template_hash: hash,
                                    event,
                                },
                            ));
                        }
                    }
                    PodAction::StopOrphan { .. } => unreachable!("plan never stops orphans"),
                }
                all.push((node, action));
            }
        }
        all
    }
}

/// The order in which replicas were stopped for the update, by round.
fn run_rollout(replicas: u32, max_surge: u32, max_unavailable: u32) -> (Vec<Vec<u32>>, usize) {
    let old = rc(replicas, "web:1", max_surge, max_unavailable);
    let new = rc(replicas, "web:2", max_surge, max_unavailable);
    let mut cluster = Cluster::new(&old);
    let mut stop_rounds = Vec::new();
    let mut min_available = usize::MAX;
    for _ in 0..50 {
        let actions = cluster.round(&new);
        let stopped: Vec<u32> = actions
            .iter()
            .filter(|(_, a)| matches!(a, PodAction::Stop { .. }))
            .map(|(_, a)| a.pod().index)
            .collect();
        if !stopped.is_empty() {
            stop_rounds.push(stopped);
        }
        let available =
            cluster.available(old.template.hash()) + cluster.available(new.template.hash());
        min_available = min_available.min(available);
        if cluster.available(new.template.hash()) == replicas as usize && cluster.pending.is_empty()
        {
            return (stop_rounds, min_available);
        }
    }
    panic!("rollout did not finish in 50 rounds: {stop_rounds:?}");
}

#[test]
fn rolling_update_replaces_one_replica_at_a_time_in_index_order() {
    let (rounds, min_available) = run_rollout(4, 1, 0);
    assert_eq!(rounds, vec![vec![0], vec![1], vec![2], vec![3]]);
    assert_eq!(min_available, 3, "never more than one replica down");
}

#[test]
fn rolling_update_waits_for_the_replaced_replica_to_be_ready() {
    let old = rc(3, "web:1", 1, 0);
    let new = rc(3, "web:2", 1, 0);
    let mut cluster = Cluster::new(&old);
    // Replica 0 leaves the endpoints first; its stop follows the drain.
    let drain_rounds = ReconcilePolicy::default().handover_drain_ms / 1_000;
    for _ in 0..drain_rounds {
        let draining = cluster.round(&new);
        assert!(draining.is_empty(), "stopped while draining: {draining:?}");
        assert_eq!(cluster.available(old.template.hash()), 2);
    }
    let first = cluster.round(&new);
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].0, first[0].1.pod().index), (NodeId(0), 0));
    // The old pod is removed; the owner starts the new template.
    let second = cluster.round(&new);
    assert!(matches!(
        &second[..],
        [(NodeId(0), PodAction::Start { .. })]
    ));
    // Running but not yet ready: nobody else moves.
    let ready_event = cluster.pending.pop().unwrap();
    assert_eq!(ready_event.1.event, PodEvent::Ready(true));
    let third = cluster.round(&new);
    assert!(
        third.is_empty(),
        "replica 1 waits for replica 0 to be ready: {third:?}"
    );
    cluster.pending.push(ready_event);
    for _ in 0..drain_rounds {
        assert!(cluster.round(&new).is_empty(), "replica 1 drains first");
    }
    let fourth = cluster.round(&new);
    assert_eq!(fourth.len(), 1);
    assert_eq!((fourth[0].0, fourth[0].1.pod().index), (NodeId(1), 1));
}

#[test]
fn max_unavailable_two_replaces_two_at_a_time() {
    let (rounds, min_available) = run_rollout(5, 0, 2);
    assert_eq!(rounds, vec![vec![0, 1], vec![2, 3], vec![4]]);
    assert_eq!(min_available, 3);
}

#[test]
fn an_unchanged_template_rolls_nothing() {
    let spec = rc(3, "web:1", 1, 0);
    let mut cluster = Cluster::new(&spec);
    for _ in 0..3 {
        assert!(cluster.round(&spec).is_empty());
    }
}
