//! What a pending pod says it waits for (an image transfer, a pull), and
//! that the note goes once the pod starts or fails.

mod reconcile_support;

use reconcile_support::*;
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::pod::PodPhase;
use shoal_runtime::vocabulary::PodEvent;

#[test]
fn a_pending_pod_reports_what_it_waits_for_until_it_runs_or_fails() {
    let web = rc("web", 1, "web:1");
    let a = owners(&[("web", 0, ME)]);
    let set = rcs(&[&web]);
    let policy = ReconcilePolicy::default();
    let mut local = LocalPods::new();
    let reported = |local: &LocalPods| {
        let s = local
            .get(&pod("web", 0))
            .unwrap()
            .status(&pod("web", 0), "web:1", None);
        (s.phase, s.preparing)
    };
    let transferring = || PodEvent::Preparing("ImageTransferring from two (4.0 MB)".into());

    plan(ME, 0, &a, &set, &none(), &mut local, &policy);
    assert_eq!(reported(&local), (PodPhase::Pending, None));
    observe(&mut local, 10, &web, 0, transferring());
    assert_eq!(
        reported(&local),
        (
            PodPhase::Pending,
            Some("ImageTransferring from two (4.0 MB)".into())
        )
    );
    observe(&mut local, 20, &web, 0, PodEvent::Running { ports: vec![] });
    assert_eq!(reported(&local), (PodPhase::Running, None));
    // A late report of a start that already happened changes nothing.
    observe(&mut local, 30, &web, 0, transferring());
    assert_eq!(reported(&local), (PodPhase::Running, None));

    // The next start fails after a transfer: the error, not the transfer.
    let crash = PodEvent::Exited {
        code: 1,
        oom_killed: false,
    };
    observe(&mut local, 1_000, &web, 0, crash);
    plan(ME, 1_000, &a, &set, &none(), &mut local, &policy);
    observe(&mut local, 1_010, &web, 0, transferring());
    observe(
        &mut local,
        1_020,
        &web,
        0,
        PodEvent::ImageError("no peer holds web:1".into()),
    );
    let status = local
        .get(&pod("web", 0))
        .unwrap()
        .status(&pod("web", 0), "web:1", None);
    assert_eq!(status.preparing, None);
    assert_eq!(
        status.last_error.as_deref(),
        Some("image: no peer holds web:1")
    );
}
