//! Drain first: a serving pod that a scale-down or a rollout stops is first
//! reported `Terminating` and not ready (every peer's endpoint set drops
//! it), and its container is stopped only `handover_drain_ms` later.

mod reconcile_support;

use reconcile_support::*;
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::pod::PodPhase;
use shoal_runtime::vocabulary::PodEvent;

fn phase_and_ready(local: &LocalPods, rc: &str, index: u32) -> (PodPhase, bool) {
    let s = local
        .get(&pod(rc, index))
        .expect("tracked")
        .status(&pod(rc, index), "img", None);
    (s.phase, s.ready)
}

#[test]
fn a_scaled_down_pod_leaves_the_endpoints_before_it_stops() {
    let web3 = rc("web", 3, "web:1");
    let mut local = LocalPods::new();
    for i in 0..3 {
        running(&mut local, &web3, i);
    }
    let web1 = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let policy = ReconcilePolicy::default();
    let drain = policy.handover_drain_ms;

    let p = plan(ME, 1_000, &a, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "stopped before draining: {p:?}");
    assert_eq!(p.wake_at, Some(1_000 + drain));
    assert_eq!(
        phase_and_ready(&local, "web", 2),
        (PodPhase::Terminating, false)
    );
    assert_eq!(phase_and_ready(&local, "web", 0), (PodPhase::Running, true));

    // Calls in between change nothing and keep the same deadline.
    let p = plan(ME, 1_500, &a, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at, Some(1_000 + drain));

    let p = plan(
        ME,
        1_000 + drain,
        &a,
        &rcs(&[&web1]),
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 2), pod("web", 1)]);
    let again = plan(
        ME,
        1_001 + drain,
        &a,
        &rcs(&[&web1]),
        &none(),
        &mut local,
        &policy,
    );
    assert!(stops(&again.actions).is_empty(), "stop issued twice");
}

#[test]
fn a_pod_that_serves_nobody_stops_at_once() {
    let web2 = rc("web", 2, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web2, 0);
    running(&mut local, &web2, 1);
    observe(&mut local, 0, &web2, 1, PodEvent::Ready(false));
    let web1 = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let p = plan(
        ME,
        0,
        &a,
        &rcs(&[&web1]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 1)]);
}

#[test]
fn a_draining_pod_that_exits_is_stopped_at_once() {
    let web2 = rc("web", 2, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web2, 0);
    running(&mut local, &web2, 1);
    let web1 = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let policy = ReconcilePolicy::default();
    let p = plan(ME, 0, &a, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty());
    observe(
        &mut local,
        10,
        &web2,
        1,
        PodEvent::Exited {
            code: 137,
            oom_killed: false,
        },
    );
    let p = plan(ME, 10, &a, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert_eq!(stops(&p.actions), vec![pod("web", 1)]);
}

#[test]
fn scaling_back_up_during_the_drain_keeps_the_pod() {
    let web2 = rc("web", 2, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web2, 0);
    running(&mut local, &web2, 1);
    let web1 = rc("web", 1, "web:1");
    let a1 = owners(&[("web", 0, ME)]);
    let a2 = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let policy = ReconcilePolicy::default();
    let p = plan(ME, 0, &a1, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty());
    assert_eq!(
        phase_and_ready(&local, "web", 1),
        (PodPhase::Terminating, false)
    );

    let p = plan(ME, 500, &a2, &rcs(&[&web2]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(phase_and_ready(&local, "web", 1), (PodPhase::Running, true));
    let p = plan(
        ME,
        10 * policy.handover_drain_ms,
        &a2,
        &rcs(&[&web2]),
        &none(),
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "kept pod stopped later: {p:?}");
}

#[test]
fn a_rollout_drains_each_replica_before_replacing_it() {
    let v1 = rc("web", 2, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &v1, 0);
    running(&mut local, &v1, 1);
    let v2 = rc("web", 2, "web:2");
    let a = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let policy = ReconcilePolicy::default();
    let drain = policy.handover_drain_ms;

    let p = plan(ME, 0, &a, &rcs(&[&v2]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "stopped before draining: {p:?}");
    assert_eq!(
        phase_and_ready(&local, "web", 0),
        (PodPhase::Terminating, false)
    );
    // The draining replica uses the budget: replica 1 keeps serving.
    assert_eq!(phase_and_ready(&local, "web", 1), (PodPhase::Running, true));

    let p = plan(ME, drain, &a, &rcs(&[&v2]), &none(), &mut local, &policy);
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
    assert_eq!(phase_and_ready(&local, "web", 1), (PodPhase::Running, true));

    observe(&mut local, drain + 1, &v1, 0, PodEvent::Removed);
    let p = plan(
        ME,
        drain + 1,
        &a,
        &rcs(&[&v2]),
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(starts(&p.actions), vec![pod("web", 0)]);
    assert!(stops(&p.actions).is_empty());
}

/// The drain ends `drain_after_seen_ms` after every member is known to hold
/// a record published after it began, when that comes before the bound; a
/// record published before the drain (or at its very millisecond) does not
/// count, and the bound still ends a drain nobody acknowledges.
#[test]
fn a_drain_ends_early_once_every_member_holds_the_record_that_says_it_drains() {
    use shoal::reconcile::SeenByAll;
    let web2 = rc("web", 2, "web:1");
    let web1 = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let mut local = LocalPods::new();
    running(&mut local, &web2, 0);
    running(&mut local, &web2, 1);
    let mut policy = ReconcilePolicy::default();
    let (bound, after) = (policy.handover_drain_ms, policy.drain_after_seen_ms);
    assert!(after < bound, "the early end is worth having");

    // A publication from before the drain, held by everyone: not enough.
    policy.seen_by_all = Some(SeenByAll {
        published_ms: 1_000,
        known_ms: 1_000,
    });
    let p = plan(ME, 1_000, &a, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.wake_at, Some(1_000 + bound));

    // The record saying it drains (published at 1,050) is held by every
    // member from 1,120 on: it stops at 1,120 + after, not before.
    policy.seen_by_all = Some(SeenByAll {
        published_ms: 1_050,
        known_ms: 1_120,
    });
    let p = plan(ME, 1_120, &a, &rcs(&[&web1]), &none(), &mut local, &policy);
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.wake_at, Some(1_120 + after));
    let p = plan(
        ME,
        1_119 + after,
        &a,
        &rcs(&[&web1]),
        &none(),
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "{p:?}");
    let p = plan(
        ME,
        1_120 + after,
        &a,
        &rcs(&[&web1]),
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 1)]);

    // Known only late: the bound comes first.
    let mut late = ReconcilePolicy {
        seen_by_all: Some(SeenByAll {
            published_ms: 1_050,
            known_ms: 1_000 + bound,
        }),
        ..ReconcilePolicy::default()
    };
    assert_eq!(late.drain_ends_at(1_000), 1_000 + bound);
    late.seen_by_all = None;
    assert_eq!(late.drain_ends_at(1_000), 1_000 + bound);
}
