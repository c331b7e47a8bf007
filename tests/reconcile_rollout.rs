//! Rolling update across peers: each plans on its own, from the same
//! reported state, and the rollout paces itself one replica at a time. With
//! surge, the surge slot's new pod serves before any old replica leaves.

mod reconcile_support;

use std::collections::BTreeMap;

use shoal::placement::Assignment;
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::{PodId, PodStatus};
use shoal_crdt_state::spec::{Allowance, RcSpec, TemplateHash, UpdateStrategy};
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent, PodObservation};

/// RC `web` as the scenarios build it, with a short grace period and the
/// rollout's surge and unavailable counts.
fn rc(replicas: u32, image: &str, max_surge: u32, max_unavailable: u32) -> RcSpec {
    let mut spec = reconcile_support::rc("web", replicas, image);
    spec.template.termination_grace_period_secs = 1;
    spec.update_strategy = UpdateStrategy {
        max_surge: Allowance::Count(max_surge),
        max_unavailable: Allowance::Count(max_unavailable),
        ..UpdateStrategy::default()
    };
    spec
}

fn pod(index: u32) -> PodId {
    PodId {
        rc: "web".into(),
        index,
    }
}

/// N peers, replica i on node i (surge slot i too), and a fake runtime that carries out each
/// action one step later: a stop is removed, a start runs, then turns ready.
struct Cluster {
    peers: BTreeMap<NodeId, LocalPods>,
    assignment: Assignment,
    /// Runtime work queued by the last round: (node, observation).
    pending: Vec<(NodeId, PodObservation)>,
    now: u64,
    /// Starts of this image fail as a missing image does.
    missing_image: Option<&'static str>,
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
        let (surge, _) = spec.update_strategy.resolve(spec.replicas);
        let slots = spec.replicas..spec.replicas + surge;
        for i in slots.clone() {
            peers.insert(NodeId(u64::from(i)), LocalPods::new());
        }
        let assignment = Assignment::with_surge(
            (0..spec.replicas).map(|i| (pod(i), NodeId(u64::from(i)))),
            slots.map(|i| (pod(i), NodeId(u64::from(i)))),
        );
        Cluster {
            peers,
            assignment,
            pending: Vec::new(),
            now: 0,
            missing_image: None,
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
                        let events = if Some(template.primary_image()) == self.missing_image {
                            let why = format!("{} not found", template.primary_image());
                            vec![PodEvent::ImageError(why)]
                        } else {
                            vec![PodEvent::Running { ports: vec![] }, PodEvent::Ready(true)]
                        };
                        for event in events {
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
        let pods: usize = cluster.peers.values().map(LocalPods::len).sum();
        if cluster.available(new.template.hash()) == replicas as usize
            && pods == replicas as usize
            && cluster.pending.is_empty()
        {
            return (stop_rounds, min_available);
        }
    }
    panic!("rollout did not finish in 50 rounds: {stop_rounds:?}");
}

#[test]
fn rolling_update_replaces_one_replica_at_a_time_in_index_order() {
    let (rounds, min_available) = run_rollout(4, 1, 0);
    // Replica 4 is the surge slot: it leaves last, once 0..3 serve the new template.
    assert_eq!(rounds, vec![vec![0], vec![1], vec![2], vec![3], vec![4]]);
    assert_eq!(min_available, 4, "never below the declared count");
}

#[test]
fn two_surge_slots_replace_two_at_a_time() {
    let (rounds, min_available) = run_rollout(4, 2, 0);
    assert_eq!(rounds, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
    assert_eq!(min_available, 4);
}

/// Holds back the pending `Ready(true)` of `index`, if any.
fn hold_ready(cluster: &mut Cluster, index: u32) -> Option<(NodeId, PodObservation)> {
    let at = cluster
        .pending
        .iter()
        .position(|(_, o)| o.pod.index == index && o.event == PodEvent::Ready(true))?;
    Some(cluster.pending.remove(at))
}

#[test]
fn rolling_update_waits_for_the_surge_and_each_replaced_replica_to_be_ready() {
    let old = rc(3, "web:1", 1, 0);
    let new = rc(3, "web:2", 1, 0);
    let mut cluster = Cluster::new(&old);
    // Make before break: the surge slot starts the new template first.
    let first = cluster.round(&new);
    assert!(
        matches!(&first[..], [(NodeId(3), PodAction::Start { pod, .. })] if pod.index == 3),
        "{first:?}"
    );
    // Running but not ready: no old replica moves.
    let surge_ready = hold_ready(&mut cluster, 3).expect("surge start queued");
    for _ in 0..5 {
        let quiet = cluster.round(&new);
        assert!(
            quiet.is_empty(),
            "moved before the surge was ready: {quiet:?}"
        );
        assert_eq!(cluster.available(old.template.hash()), 3);
    }
    cluster.pending.push(surge_ready);
    // Replica 0 leaves the endpoints and drains, then stops; 3 serve throughout.
    let stop = loop {
        let actions = cluster.round(&new);
        assert!(
            cluster.available(old.template.hash()) + cluster.available(new.template.hash()) >= 3
        );
        if let Some(a) = actions.into_iter().next() {
            break a;
        }
    };
    assert!(
        matches!(&stop, (NodeId(0), PodAction::Stop { pod, .. }) if pod.index == 0),
        "{stop:?}"
    );
    let restart = cluster.round(&new);
    assert!(
        matches!(&restart[..], [(NodeId(0), PodAction::Start { .. })]),
        "{restart:?}"
    );
    // Replica 1 waits until replica 0's new pod is ready.
    let zero_ready = hold_ready(&mut cluster, 0).expect("replica 0 start queued");
    for _ in 0..5 {
        let quiet = cluster.round(&new);
        assert!(quiet.is_empty(), "replica 1 did not wait: {quiet:?}");
    }
    cluster.pending.push(zero_ready);
    let next = loop {
        if let Some(a) = cluster.round(&new).into_iter().next() {
            break a;
        }
    };
    assert!(
        matches!(&next, (NodeId(1), PodAction::Stop { pod, .. }) if pod.index == 1),
        "{next:?}"
    );
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

#[test]
fn a_new_pod_not_ready_by_the_progress_deadline_stops_the_rollout_with_its_reason() {
    let old = rc(4, "web:1", 1, 0);
    let mut new = rc(4, "web:missing", 1, 0);
    new.update_strategy.progress_deadline_secs = 5;
    let mut cluster = Cluster::new(&old);
    cluster.missing_image = Some("web:missing");
    for _ in 0..30 {
        for (node, action) in cluster.round(&new) {
            assert!(
                matches!(&action, PodAction::Start { pod, .. } if pod.index == 4),
                "only the surge slot may act, got {action:?} on {node:?}"
            );
        }
        assert_eq!(
            cluster.available(old.template.hash()),
            4,
            "1.0 keeps serving"
        );
    }
    let stalled: Vec<String> = cluster
        .reported()
        .values()
        .flatten()
        .filter_map(|s| s.stalled.clone())
        .collect();
    assert_eq!(
        stalled,
        ["pod web-4 not ready after 5s: image: web:missing not found"]
    );
}

/// A surge slot that placement just moved here from another node waits
/// `surge_settle_ms` before it starts: the node it came from may have
/// started its pod a moment ago, and that report, which keeps the slot
/// there, may still be on its way. Once the report is in the view the
/// slot never starts here; without one, it starts after the wait.
#[test]
fn a_surge_slot_moved_here_waits_for_the_old_node_s_report_before_it_starts() {
    let old = rc(2, "web:1", 1, 0);
    let new = rc(2, "web:2", 1, 0);
    let me = NodeId(9);
    let a = Assignment::with_surge([(pod(0), NodeId(0)), (pod(1), NodeId(1))], [(pod(2), me)]);
    let reported = |with_slot: bool| {
        let mut r: BTreeMap<NodeId, Vec<PodStatus>> = BTreeMap::new();
        for i in 0..2 {
            let mut l = LocalPods::new();
            reconcile_support::running(&mut l, &old, i);
            r.insert(
                NodeId(u64::from(i)),
                l.iter().map(|(id, p)| p.status(id, "", None)).collect(),
            );
        }
        if with_slot {
            let mut l = LocalPods::new();
            reconcile_support::running(&mut l, &new, 2);
            r.insert(
                NodeId(7),
                l.iter().map(|(id, p)| p.status(id, "", None)).collect(),
            );
        }
        r
    };
    let policy = ReconcilePolicy::default();
    let settle = policy.move_settle_ms;
    let specs = reconcile_support::rcs(&[&new]);
    let plan_at = |now: u64, with_slot: bool, local: &mut LocalPods| {
        plan(me, now, &a, &specs, &reported(with_slot), local, &policy)
    };

    // Not moved here: the slot starts at once.
    let mut local = LocalPods::new();
    let p = plan_at(10_000, false, &mut local);
    assert_eq!(reconcile_support::starts(&p.actions), vec![pod(2)]);

    // Moved here at 10,000: nothing before the settle, then the start.
    let mut local = LocalPods::new();
    local.moved_in(pod(2), 10_000);
    let p = plan_at(10_000, false, &mut local);
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.wake_at, Some(10_000 + settle));
    let p = plan_at(10_000 + settle - 1, false, &mut local);
    assert!(p.actions.is_empty(), "{p:?}");
    let p = plan_at(10_000 + settle, false, &mut local);
    assert_eq!(reconcile_support::starts(&p.actions), vec![pod(2)]);

    // The old node's report arrives within the wait: never started here.
    let mut local = LocalPods::new();
    local.moved_in(pod(2), 10_000);
    for now in [10_500, 10_000 + settle, 10_000 + 5 * settle] {
        let p = plan_at(now, true, &mut local);
        assert!(p.actions.is_empty(), "at {now}: {p:?}");
    }
}

/// The same wait for a replica moved here from a node that is still up
/// (the peer notes only those: a dead node's replicas move at once).
#[test]
fn a_replica_moved_here_from_a_live_node_waits_before_it_starts() {
    let spec = rc(2, "web:1", 1, 0);
    let me = NodeId(9);
    let a = Assignment::with_surge([(pod(0), NodeId(0)), (pod(1), me)], []);
    let specs = reconcile_support::rcs(&[&spec]);
    let policy = ReconcilePolicy::default();
    let settle = policy.move_settle_ms;
    let none = BTreeMap::new();
    let mut local = LocalPods::new();
    local.moved_in(pod(1), 5_000);
    let p = plan(me, 5_000, &a, &specs, &none, &mut local, &policy);
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.wake_at, Some(5_000 + settle));
    let p = plan(me, 5_000 + settle, &a, &specs, &none, &mut local, &policy);
    assert_eq!(reconcile_support::starts(&p.actions), vec![pod(1)]);
    // Not noted as moved: at once.
    let mut local = LocalPods::new();
    let p = plan(me, 5_000, &a, &specs, &none, &mut local, &policy);
    assert_eq!(reconcile_support::starts(&p.actions), vec![pod(1)]);
}
