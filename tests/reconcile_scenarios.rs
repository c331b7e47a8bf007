//! Reconcile scenarios: one named situation per rule of `plan` (starts,
//! handover, scale-down, adoption, partitions).

mod reconcile_support;

use std::collections::BTreeMap;
use std::time::Duration;

use reconcile_support::*;
use shoal::placement::Assignment;
use shoal::reconcile::{LocalPods, LocalState, ReconcilePolicy, plan};
use shoal_crdt_state::spec::{PartitionPolicy, RcSpec};
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent};

/// Plans at `at`, when the successor serves: nothing is stopped until the
/// drain has run; returns what is stopped once it has.
fn stops_after_drain(
    at: u64,
    a: &Assignment,
    rc: &RcSpec,
    reports: &BTreeMap<shoal_crdt_state::node::NodeId, Vec<shoal_crdt_state::pod::PodStatus>>,
    local: &mut LocalPods,
    policy: &ReconcilePolicy,
) -> Vec<shoal_crdt_state::pod::PodId> {
    let p = plan(ME, at, a, &rcs(&[rc]), reports, local, policy);
    assert!(p.actions.is_empty(), "stopped before draining");
    assert_eq!(p.wake_at, Some(at + policy.handover_drain_ms));
    let p = plan(
        ME,
        at + policy.handover_drain_ms,
        a,
        &rcs(&[rc]),
        reports,
        local,
        policy,
    );
    stops(&p.actions)
}

#[test]
fn replicas_assigned_here_are_started_once() {
    let web = rc("web", 2, "web:1");
    let a = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let mut local = LocalPods::new();
    let p = plan(
        ME,
        0,
        &a,
        &rcs(&[&web]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(starts(&p.actions), vec![pod("web", 0), pod("web", 1)]);
    match &p.actions[0] {
        PodAction::Start { template, .. } => assert_eq!(template, &web.template),
        other => panic!("expected a start, got {other:?}"),
    }
    let again = plan(
        ME,
        10,
        &a,
        &rcs(&[&web]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert!(
        again.actions.is_empty(),
        "a start in flight is not repeated"
    );
}

#[test]
fn handover_waits_for_the_successor_to_run_then_stops() {
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let a = owners(&[("web", 0, OTHER)]);
    let policy = ReconcilePolicy::default();
    let p = plan(ME, 1_000, &a, &rcs(&[&web]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "no stop before the successor runs");
    assert_eq!(p.wake_at, Some(31_000));

    use shoal_crdt_state::pod::PodPhase;
    let pending = BTreeMap::from([(
        OTHER,
        vec![claimed(status(&web, 0, PodPhase::Pending, false), &a)],
    )]);
    let p = plan(ME, 2_000, &a, &rcs(&[&web]), &pending, &mut local, &policy);
    assert!(p.actions.is_empty());

    let up = BTreeMap::from([(
        OTHER,
        vec![claimed(status(&web, 0, PodPhase::Running, true), &a)],
    )]);
    let p = plan(ME, 3_000, &a, &rcs(&[&web]), &up, &mut local, &policy);
    assert!(p.actions.is_empty(), "the old copy drains first");
    assert_eq!(p.wake_at, Some(3_000 + policy.handover_drain_ms));
    let p = plan(ME, 4_999, &a, &rcs(&[&web]), &up, &mut local, &policy);
    assert!(p.actions.is_empty());
    let p = plan(ME, 5_000, &a, &rcs(&[&web]), &up, &mut local, &policy);
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
    assert_eq!(
        p.actions[0],
        PodAction::Stop {
            pod: pod("web", 0),
            template_hash: web.template.hash(),
            grace: Duration::from_secs(5),
        }
    );
}

#[test]
fn handover_waits_while_the_successor_does_not_claim_the_replica() {
    // Views disagree, or reports are stale: OTHER runs web-0 but does not
    // claim it under the placement we hold. Stopping ours could leave none.
    use shoal_crdt_state::pod::PodPhase;
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let a = owners(&[("web", 0, OTHER)]);
    let policy = ReconcilePolicy::default();
    let mut report = status(&web, 0, PodPhase::Running, true);
    for claim in [None, Some(a.fingerprint() ^ 1)] {
        report.claim = claim;
        let reports = BTreeMap::from([(OTHER, vec![report.clone()])]);
        let p = plan(ME, 1_000, &a, &rcs(&[&web]), &reports, &mut local, &policy);
        assert!(
            p.actions.is_empty(),
            "stopped for a successor claiming {claim:?}"
        );
    }

    let reports = BTreeMap::from([(OTHER, vec![claimed(report, &a)])]);
    assert_eq!(
        stops_after_drain(2_000, &a, &web, &reports, &mut local, &policy),
        vec![pod("web", 0)]
    );
}

#[test]
fn handover_keeps_a_current_copy_while_the_successor_runs_an_outdated_one() {
    // After a heal: we run the new template, the owner still runs the old
    // one and is about to replace it in place. Stopping ours would leave none.
    use shoal_crdt_state::pod::PodPhase;
    let old = rc("web", 1, "web:1");
    let new = rc("web", 1, "web:2");
    let mut local = LocalPods::new();
    running(&mut local, &new, 0);
    let a = owners(&[("web", 0, OTHER)]);
    let policy = ReconcilePolicy::default();
    let outdated = BTreeMap::from([(
        OTHER,
        vec![claimed(status(&old, 0, PodPhase::Running, true), &a)],
    )]);
    let p = plan(ME, 1_000, &a, &rcs(&[&new]), &outdated, &mut local, &policy);
    assert!(
        p.actions.is_empty(),
        "traded a current copy for an outdated one"
    );

    let updated = BTreeMap::from([(
        OTHER,
        vec![claimed(status(&new, 0, PodPhase::Running, true), &a)],
    )]);
    assert_eq!(
        stops_after_drain(2_000, &a, &new, &updated, &mut local, &policy),
        vec![pod("web", 0)]
    );
}

#[test]
fn handover_to_a_probed_pod_waits_for_readiness() {
    use shoal_crdt_state::pod::PodPhase;
    use shoal_crdt_state::spec::{Probe, ProbeAction};
    let mut web = rc("web", 1, "web:1");
    web.template.containers[0].readiness_probe = Some(Probe {
        action: ProbeAction::TcpSocket { port: 80 },
        initial_delay_secs: 0,
        period_secs: 1,
        timeout_secs: 1,
        failure_threshold: 3,
    });
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let a = owners(&[("web", 0, OTHER)]);
    let policy = ReconcilePolicy::default();
    let unready = BTreeMap::from([(
        OTHER,
        vec![claimed(status(&web, 0, PodPhase::Running, false), &a)],
    )]);
    assert!(
        plan(ME, 0, &a, &rcs(&[&web]), &unready, &mut local, &policy)
            .actions
            .is_empty()
    );
    let ready = BTreeMap::from([(
        OTHER,
        vec![claimed(status(&web, 0, PodPhase::Running, true), &a)],
    )]);
    assert_eq!(
        stops_after_drain(1, &a, &web, &ready, &mut local, &policy),
        vec![pod("web", 0)]
    );
}

#[test]
fn handover_gives_up_waiting_after_the_bound() {
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let a = owners(&[("web", 0, OTHER)]);
    let policy = ReconcilePolicy::default();
    assert!(
        plan(ME, 5_000, &a, &rcs(&[&web]), &none(), &mut local, &policy)
            .actions
            .is_empty()
    );
    let p = plan(ME, 34_999, &a, &rcs(&[&web]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at, Some(35_000));
    let p = plan(ME, 35_000, &a, &rcs(&[&web]), &none(), &mut local, &policy);
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
}

#[test]
fn replica_coming_back_resets_the_handover_clock() {
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let policy = ReconcilePolicy::default();
    let away = owners(&[("web", 0, OTHER)]);
    let home = owners(&[("web", 0, ME)]);
    plan(ME, 0, &away, &rcs(&[&web]), &none(), &mut local, &policy);
    plan(
        ME,
        10_000,
        &home,
        &rcs(&[&web]),
        &none(),
        &mut local,
        &policy,
    );
    let p = plan(
        ME,
        31_000,
        &away,
        &rcs(&[&web]),
        &none(),
        &mut local,
        &policy,
    );
    assert!(
        p.actions.is_empty(),
        "the bound counts from the latest move away"
    );
    assert_eq!(p.wake_at, Some(61_000));
}

#[test]
fn scale_down_stops_the_highest_indices_first() {
    let web5 = rc("web", 5, "web:1");
    let mut local = LocalPods::new();
    for i in 0..5 {
        running(&mut local, &web5, i);
    }
    let web2 = rc("web", 2, "web:1");
    let a = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let policy = ReconcilePolicy::default();
    let p = plan(ME, 0, &a, &rcs(&[&web2]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "serving pods drain first: {p:?}");
    let drained = policy.handover_drain_ms;
    let p = plan(
        ME,
        drained,
        &a,
        &rcs(&[&web2]),
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(
        stops(&p.actions),
        vec![pod("web", 4), pod("web", 3), pod("web", 2)]
    );
    assert!(starts(&p.actions).is_empty());
}

#[test]
fn deleted_rc_stops_every_pod_and_forgets_them_when_removed() {
    let web = rc("web", 2, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    running(&mut local, &web, 1);
    let policy = ReconcilePolicy::default();
    let none_declared = BTreeMap::new();
    let p = plan(
        ME,
        0,
        &Assignment::default(),
        &none_declared,
        &none(),
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "serving pods drain first: {p:?}");
    let p = plan(
        ME,
        policy.handover_drain_ms,
        &Assignment::default(),
        &none_declared,
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 1), pod("web", 0)]);
    observe(&mut local, 1, &web, 0, PodEvent::Removed);
    observe(&mut local, 1, &web, 1, PodEvent::Removed);
    assert!(local.is_empty());
}

#[test]
fn adopted_pods_are_not_started_again() {
    let web = rc("web", 2, "web:1");
    let a = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let mut local = LocalPods::new();
    local.adopt(&[ExistingPod {
        pod: pod("web", 0),
        template_hash: web.template.hash(),
        running: true,
        ports: vec![],
    }]);
    let p = plan(
        ME,
        0,
        &a,
        &rcs(&[&web]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(starts(&p.actions), vec![pod("web", 1)]);
    assert!(stops(&p.actions).is_empty());
}

#[test]
fn adopting_two_templates_of_one_replica_keeps_one_and_stops_the_other() {
    let old = rc("web", 1, "web:1");
    let new = rc("web", 1, "web:2");
    let mut local = LocalPods::new();
    let found = |spec: &RcSpec| ExistingPod {
        pod: pod("web", 0),
        template_hash: spec.template.hash(),
        running: true,
        ports: vec![],
    };
    local.adopt(&[found(&new), found(&old)]);
    local.adopt(&[found(&new)]);
    let p = plan(
        ME,
        0,
        &owners(&[("web", 0, ME)]),
        &rcs(&[&new]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(
        p.actions,
        vec![PodAction::Stop {
            pod: pod("web", 0),
            template_hash: old.template.hash(),
            grace: Duration::from_secs(10),
        }]
    );
    assert_eq!(
        local.get(&pod("web", 0)).unwrap().template_hash,
        new.template.hash()
    );
}

#[test]
fn at_most_declared_without_majority_starts_nothing_new() {
    let mut web = rc("web", 2, "web:1");
    web.partition_policy = PartitionPolicy::AtMostDeclared;
    let a = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let minority = ReconcilePolicy {
        sees_majority: false,
        ..ReconcilePolicy::default()
    };
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let p = plan(ME, 0, &a, &rcs(&[&web]), &none(), &mut local, &minority);
    assert!(
        p.actions.is_empty(),
        "web-1 is not started without a majority"
    );
    observe(
        &mut local,
        1,
        &web,
        0,
        PodEvent::Exited {
            code: 1,
            oom_killed: false,
        },
    );
    assert!(
        plan(ME, 1, &a, &rcs(&[&web]), &none(), &mut local, &minority)
            .actions
            .is_empty()
    );

    // Same view with a majority, or under the default policy: both start.
    let p = plan(
        ME,
        2,
        &a,
        &rcs(&[&web]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(starts(&p.actions), vec![pod("web", 0), pod("web", 1)]);
    let mut avail = rc("web", 2, "web:1");
    avail.partition_policy = PartitionPolicy::Available;
    let mut fresh = LocalPods::new();
    let p = plan(ME, 0, &a, &rcs(&[&avail]), &none(), &mut fresh, &minority);
    assert_eq!(starts(&p.actions).len(), 2);
}

#[test]
fn a_replica_placement_cannot_place_keeps_running_where_it_is() {
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let p = plan(
        ME,
        0,
        &Assignment::default(),
        &rcs(&[&web]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at, None);
}

#[test]
fn a_running_pod_reported_without_a_start_is_taken_over_not_duplicated() {
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    observe(&mut local, 0, &web, 0, PodEvent::Running { ports: vec![] });
    let p = plan(
        ME,
        0,
        &owners(&[("web", 0, ME)]),
        &rcs(&[&web]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert!(p.actions.is_empty());
    assert_eq!(
        local.get(&pod("web", 0)).unwrap().state,
        LocalState::Running
    );
}
