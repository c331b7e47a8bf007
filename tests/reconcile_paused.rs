//! `shoal rollout pause`: while an RC is paused, its owner replaces no
//! running pod of an older template; resumed, the rollout goes on. A
//! replica that has to start anyway starts on the current template.

mod reconcile_support;

use reconcile_support::*;
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::pod::PodPhase;
use shoal_runtime::vocabulary::PodEvent;

#[test]
fn a_paused_rollout_replaces_no_running_pod_until_resumed() {
    let old = rc("web", 2, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &old, 0);
    let mut new = rc("web", 2, "web:2");
    new.paused = true;
    let a = owners(&[("web", 0, ME), ("web", 1, ME)]);
    let policy = ReconcilePolicy::default();
    let drain = policy.handover_drain_ms;

    // Replica 1 was not running: it starts, on the current template.
    let p = plan(ME, 1_000, &a, &rcs(&[&new]), &none(), &mut local, &policy);
    assert_eq!(starts(&p.actions), vec![pod("web", 1)]);
    let later = plan(
        ME,
        10_000 + drain,
        &a,
        &rcs(&[&new]),
        &none(),
        &mut local,
        &policy,
    );
    assert!(stops(&later.actions).is_empty(), "{later:?}");
    let web0 = local.get(&pod("web", 0)).expect("still tracked");
    assert_eq!(web0.template_hash, old.template.hash());
    let s = web0.status(&pod("web", 0), "web:1", None);
    assert_eq!((s.phase, s.ready), (PodPhase::Running, true));

    // Replica 1 comes up, so the budget allows one replacement.
    observe(
        &mut local,
        11_000,
        &new,
        1,
        PodEvent::Running { ports: vec![] },
    );
    observe(&mut local, 11_000, &new, 1, PodEvent::Ready(true));
    let held = plan(ME, 12_000, &a, &rcs(&[&new]), &none(), &mut local, &policy);
    assert!(stops(&held.actions).is_empty(), "{held:?}");
    let s = local
        .get(&pod("web", 0))
        .expect("still tracked")
        .status(&pod("web", 0), "web:1", None);
    assert_eq!((s.phase, s.ready), (PodPhase::Running, true));

    // Resumed: replica 0 leaves the endpoints, then stops for its replacement.
    new.paused = false;
    let now = 20_000;
    plan(ME, now, &a, &rcs(&[&new]), &none(), &mut local, &policy);
    let p = plan(
        ME,
        now + drain,
        &a,
        &rcs(&[&new]),
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
}

/// `rollout undo` seen while paused (the undo's template already serves
/// on another node): the settle wait of a rollback mid-rollout runs from
/// when the pod was first seen outdated, not from the resume. Resumed
/// 1 s later, the pod waits 1 s more; resumed after that, it would go at
/// once (the test above).
#[test]
fn an_undo_seen_while_paused_settles_from_when_it_was_seen_not_from_the_resume() {
    let mut old = rc("web", 2, "web:1");
    old.update_strategy.max_unavailable = shoal_crdt_state::spec::Allowance::Count(1);
    let mut new = old.clone();
    new.template.containers[0].image = "web:2".into();
    let mut local = LocalPods::new();
    running(&mut local, &new, 0);
    let a = owners(&[("web", 0, ME), ("web", 1, OTHER)]);
    let others = std::collections::BTreeMap::from([(
        OTHER,
        vec![claimed(status(&old, 1, PodPhase::Running, true), &a)],
    )]);
    let policy = ReconcilePolicy::default();
    let (settle, drain) = (policy.move_settle_ms, policy.handover_drain_ms);
    let mut undone = old.clone();
    undone.paused = true;
    let seen = 1_000;
    let p = plan(ME, seen, &a, &rcs(&[&undone]), &others, &mut local, &policy);
    assert!(p.actions.is_empty(), "{p:?}");

    undone.paused = false;
    let resumed = seen + settle / 2;
    let p = plan(
        ME,
        resumed,
        &a,
        &rcs(&[&undone]),
        &others,
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "{p:?}");
    assert_eq!(p.wake_at, Some(seen + settle), "from when it was seen");
    let draining = |local: &LocalPods| {
        local
            .get(&pod("web", 0))
            .map(|l| l.status(&pod("web", 0), "web:2", None).phase)
    };
    assert_eq!(draining(&local), Some(PodPhase::Running));

    plan(
        ME,
        seen + settle,
        &a,
        &rcs(&[&undone]),
        &others,
        &mut local,
        &policy,
    );
    assert_eq!(draining(&local), Some(PodPhase::Terminating));
    let p = plan(
        ME,
        seen + settle + drain,
        &a,
        &rcs(&[&undone]),
        &others,
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
}
