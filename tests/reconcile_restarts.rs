//! Reconcile scenarios about crashes: restarts, back-off, restart policies,
//! and stops the runtime never confirms.

mod reconcile_support;

use std::collections::BTreeMap;

use reconcile_support::*;
use shoal::placement::Assignment;
use shoal::reconcile::{LocalPods, LocalState, ReconcilePolicy, plan};
use shoal_crdt_state::spec::RestartPolicy;
use shoal_runtime::vocabulary::PodEvent;

#[test]
fn crash_restarts_at_once_then_backs_off_exponentially() {
    let web = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let set = rcs(&[&web]);
    let policy = ReconcilePolicy::default();
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);

    let crash = PodEvent::Exited {
        code: 1,
        oom_killed: false,
    };
    observe(&mut local, 1_000, &web, 0, crash.clone());
    let p = plan(ME, 1_000, &a, &set, &none(), &mut local, &policy);
    assert_eq!(
        starts(&p.actions),
        vec![pod("web", 0)],
        "first restart is immediate"
    );
    let l = local.get(&pod("web", 0)).unwrap();
    assert_eq!(
        (l.restarts, l.last_error.as_deref()),
        (1, Some("exited with code 1"))
    );

    // Second crash: 1 s back-off, then 2 s for the third.
    for (crash_at, delay) in [(2_000u64, 1_000u64), (10_000, 2_000), (20_000, 4_000)] {
        observe(
            &mut local,
            crash_at - 500,
            &web,
            0,
            PodEvent::Running { ports: vec![] },
        );
        observe(&mut local, crash_at, &web, 0, crash.clone());
        let p = plan(ME, crash_at, &a, &set, &none(), &mut local, &policy);
        assert!(
            p.actions.is_empty(),
            "backing off after crash at {crash_at}"
        );
        assert_eq!(p.wake_at, Some(crash_at + delay));
        let p = plan(ME, crash_at + delay, &a, &set, &none(), &mut local, &policy);
        assert_eq!(starts(&p.actions), vec![pod("web", 0)]);
    }
    assert_eq!(local.get(&pod("web", 0)).unwrap().restarts, 4);
    let status = local
        .get(&pod("web", 0))
        .unwrap()
        .status(&pod("web", 0), "web:1", None);
    assert_eq!(status.restarts, 4);
    assert_eq!(status.last_error.as_deref(), Some("exited with code 1"));
}

#[test]
fn the_last_error_clears_once_the_pod_has_stayed_ready() {
    let web = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let set = rcs(&[&web]);
    let policy = ReconcilePolicy::default();
    let forgive = policy.backoff.reset_after.as_millis() as u64;
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let crash = PodEvent::Exited {
        code: 3,
        oom_killed: false,
    };
    let error = |local: &LocalPods| {
        let id = pod("web", 0);
        local
            .get(&id)
            .unwrap()
            .status(&id, "web:1", None)
            .last_error
    };

    observe(&mut local, 1_000, &web, 0, crash.clone());
    let p = plan(ME, 1_000, &a, &set, &none(), &mut local, &policy);
    assert_eq!(starts(&p.actions), vec![pod("web", 0)]);
    observe(
        &mut local,
        1_500,
        &web,
        0,
        PodEvent::Running { ports: vec![] },
    );
    // Running but not ready yet: the error stays; only the rollout's
    // progress deadline (600 s from the first start) has a clock.
    let p = plan(ME, 1_600, &a, &set, &none(), &mut local, &policy);
    assert_eq!(error(&local).as_deref(), Some("exited with code 3"));
    assert_eq!(p.wake_at, Some(1_000 + 600_000));

    // Ready, then unready before the period ends: the clock starts over.
    observe(&mut local, 2_000, &web, 0, PodEvent::Ready(true));
    let p = plan(ME, 2_000, &a, &set, &none(), &mut local, &policy);
    assert_eq!(p.wake_at, Some(2_000 + forgive), "woken to clear it");
    observe(&mut local, 3_000, &web, 0, PodEvent::Ready(false));
    observe(&mut local, 4_000, &web, 0, PodEvent::Ready(true));
    observe(&mut local, 5_000, &web, 0, PodEvent::Ready(true));
    let p = plan(ME, 2_000 + forgive, &a, &set, &none(), &mut local, &policy);
    assert_eq!(error(&local).as_deref(), Some("exited with code 3"));
    assert_eq!(p.wake_at, Some(4_000 + forgive));

    // Ready throughout the period: the error is gone from the status.
    let p = plan(ME, 4_000 + forgive, &a, &set, &none(), &mut local, &policy);
    assert_eq!(error(&local), None);
    assert_eq!(p.wake_at, None);
    let status = local
        .get(&pod("web", 0))
        .unwrap()
        .status(&pod("web", 0), "web:1", None);
    assert_eq!((status.restarts, status.ready), (1, true));

    // The next crash shows its own error again.
    observe(&mut local, 200_000, &web, 0, crash);
    assert_eq!(error(&local).as_deref(), Some("exited with code 3"));
}

#[test]
fn a_pod_that_stayed_up_long_is_forgiven() {
    let web = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let set = rcs(&[&web]);
    let policy = ReconcilePolicy::default();
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let crash = PodEvent::Exited {
        code: 137,
        oom_killed: true,
    };
    for at in [1_000u64, 2_000, 3_000] {
        observe(
            &mut local,
            at - 100,
            &web,
            0,
            PodEvent::Running { ports: vec![] },
        );
        observe(&mut local, at, &web, 0, crash.clone());
        plan(ME, at + 10_000, &a, &set, &none(), &mut local, &policy);
    }
    observe(
        &mut local,
        20_000,
        &web,
        0,
        PodEvent::Running { ports: vec![] },
    );
    observe(&mut local, 200_000, &web, 0, crash);
    let p = plan(ME, 200_000, &a, &set, &none(), &mut local, &policy);
    assert_eq!(starts(&p.actions), vec![pod("web", 0)]);
    let l = local.get(&pod("web", 0)).unwrap();
    assert_eq!(l.last_error.as_deref(), Some("OOMKilled (exit code 137)"));
}

#[test]
fn restart_policy_decides_which_exits_restart() {
    let cases = [
        (RestartPolicy::Always, 0, true),
        (RestartPolicy::OnFailure, 0, false),
        (RestartPolicy::OnFailure, 2, true),
        (RestartPolicy::Never, 2, false),
        (RestartPolicy::Never, 0, false),
    ];
    for (restart_policy, code, restarts) in cases {
        let mut job = rc("job", 1, "job:1");
        job.template.restart_policy = restart_policy;
        let mut local = LocalPods::new();
        running(&mut local, &job, 0);
        observe(
            &mut local,
            5,
            &job,
            0,
            PodEvent::Exited {
                code,
                oom_killed: false,
            },
        );
        let p = plan(
            ME,
            5,
            &owners(&[("job", 0, ME)]),
            &rcs(&[&job]),
            &none(),
            &mut local,
            &ReconcilePolicy::default(),
        );
        assert_eq!(
            !starts(&p.actions).is_empty(),
            restarts,
            "{restart_policy:?} after exit code {code}"
        );
        if !restarts {
            assert_eq!(local.get(&pod("job", 0)).unwrap().state, LocalState::Exited);
        }
    }
}

#[test]
fn image_errors_are_retried_even_under_never() {
    let mut job = rc("job", 1, "job:1");
    job.template.restart_policy = RestartPolicy::Never;
    let a = owners(&[("job", 0, ME)]);
    let mut local = LocalPods::new();
    let p = plan(
        ME,
        0,
        &a,
        &rcs(&[&job]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(starts(&p.actions), vec![pod("job", 0)]);
    observe(
        &mut local,
        10,
        &job,
        0,
        PodEvent::ImageError("no such image job:1".into()),
    );
    let p = plan(
        ME,
        10,
        &a,
        &rcs(&[&job]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    assert_eq!(starts(&p.actions), vec![pod("job", 0)]);
    let l = local.get(&pod("job", 0)).unwrap();
    assert_eq!(l.last_error.as_deref(), Some("image: no such image job:1"));
}

#[test]
fn stale_events_of_a_replaced_template_are_ignored() {
    let old = rc("web", 1, "web:1");
    let new = rc("web", 1, "web:2");
    let mut local = LocalPods::new();
    let a = owners(&[("web", 0, ME)]);
    plan(
        ME,
        0,
        &a,
        &rcs(&[&new]),
        &none(),
        &mut local,
        &ReconcilePolicy::default(),
    );
    observe(
        &mut local,
        1,
        &old,
        0,
        PodEvent::Exited {
            code: 1,
            oom_killed: false,
        },
    );
    observe(&mut local, 1, &old, 0, PodEvent::Removed);
    let l = local.get(&pod("web", 0)).unwrap();
    assert_eq!(
        (l.state, l.template_hash),
        (LocalState::Starting, new.template.hash())
    );
}

#[test]
fn a_stop_never_confirmed_is_issued_again() {
    let web = rc("web", 1, "web:1");
    let mut local = LocalPods::new();
    running(&mut local, &web, 0);
    let policy = ReconcilePolicy::default();
    let gone = BTreeMap::new();
    // It serves: it drains first (see reconcile_drain.rs), then stops.
    let d = policy.handover_drain_ms;
    let p = plan(
        ME,
        0,
        &Assignment::default(),
        &gone,
        &none(),
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty());
    let p = plan(
        ME,
        d,
        &Assignment::default(),
        &gone,
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
    // Adopted pod of a deleted RC: default grace 10 s + 30 s retry bound.
    assert_eq!(p.wake_at, Some(d + 40_000));
    let p = plan(
        ME,
        d + 39_999,
        &Assignment::default(),
        &gone,
        &none(),
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty());
    let p = plan(
        ME,
        d + 40_000,
        &Assignment::default(),
        &gone,
        &none(),
        &mut local,
        &policy,
    );
    assert_eq!(stops(&p.actions), vec![pod("web", 0)]);
    assert_eq!(p.wake_at, Some(d + 80_000));
    observe(&mut local, 40_001, &web, 0, PodEvent::Removed);
    assert!(local.is_empty());
}
