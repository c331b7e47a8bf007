//! Which template changes make an outdated pod wait `move_settle_ms`
//! before it goes (`plan`'s settle wait): a change mid-rollout (an undo, a
//! second update) waits, a plain rolling update does not. The wait is
//! judged once, when the pod is first seen outdated against the new
//! template, whichever path lets it go later (in place, a moved copy).

mod reconcile_support;

use std::collections::BTreeMap;

use reconcile_support::*;
use shoal::placement::Assignment;
use shoal::reconcile::{LocalPods, ReconcilePolicy, plan};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::{PodPhase, PodStatus};
use shoal_crdt_state::spec::{Allowance, RcSpec, RestartPolicy};

const THIRD: NodeId = NodeId(3);

/// `web` with `replicas`, no surge, `unavailable` replicas allowed down.
fn web(replicas: u32, unavailable: u32, image: &str) -> RcSpec {
    let mut spec = rc("web", replicas, image);
    spec.update_strategy.max_surge = Allowance::Count(0);
    spec.update_strategy.max_unavailable = Allowance::Count(unavailable);
    spec
}

fn phase(local: &LocalPods, index: u32) -> Option<PodPhase> {
    local
        .get(&pod("web", index))
        .map(|l| l.status(&pod("web", index), "", None).phase)
}

/// Replica 0 here (running `local`), replica 1 on `OTHER` as `other`
/// reports it, both claimed.
fn two_replicas(
    local_spec: &RcSpec,
    other: &RcSpec,
) -> (LocalPods, Assignment, BTreeMap<NodeId, Vec<PodStatus>>) {
    let mut local = LocalPods::new();
    running(&mut local, local_spec, 0);
    let a = owners(&[("web", 0, ME), ("web", 1, OTHER)]);
    let reported = BTreeMap::from([(
        OTHER,
        vec![claimed(status(other, 1, PodPhase::Running, true), &a)],
    )]);
    (local, a, reported)
}

/// A→B seen while paused (replica 0 not replaced yet), undone to A before
/// it was, then a plain A→C: replica 0 drains in the first pass. It had
/// kept B as the template it was outdated against, so C read as a second
/// change mid-rollout and waited 2 s.
#[test]
fn after_an_undo_a_plain_rollout_does_not_wait() {
    let a_spec = web(2, 1, "web:a");
    let mut b_spec = web(2, 1, "web:b");
    b_spec.paused = true;
    let c_spec = web(2, 1, "web:c");
    let (mut local, a, reported) = two_replicas(&a_spec, &a_spec);
    let policy = ReconcilePolicy::default();

    let p = plan(
        ME,
        1_000,
        &a,
        &rcs(&[&b_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "{p:?}");
    let p = plan(
        ME,
        2_000,
        &a,
        &rcs(&[&a_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "{p:?}");

    plan(
        ME,
        10_000,
        &a,
        &rcs(&[&c_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert_eq!(
        phase(&local, 0),
        Some(PodPhase::Terminating),
        "drains at once"
    );
}

/// A→B seen while paused, undone to A, then B again while pods of B serve
/// (replica 1 runs it): a change mid-rollout, so replica 0 waits
/// `move_settle_ms`. It had kept B from the first time, so the redo read
/// as no change at all and replica 0 drained at once.
#[test]
fn a_redo_while_the_new_template_serves_waits_to_settle() {
    let a_spec = web(2, 1, "web:a");
    let b_spec = web(2, 1, "web:b");
    let mut b_paused = b_spec.clone();
    b_paused.paused = true;
    let (mut local, a, before) = two_replicas(&a_spec, &a_spec);
    let policy = ReconcilePolicy::default();
    plan(
        ME,
        1_000,
        &a,
        &rcs(&[&b_paused]),
        &before,
        &mut local,
        &policy,
    );
    plan(
        ME,
        2_000,
        &a,
        &rcs(&[&a_spec]),
        &before,
        &mut local,
        &policy,
    );

    let (_, _, b_serves) = two_replicas(&a_spec, &b_spec);
    let redo = 10_000;
    let p = plan(
        ME,
        redo,
        &a,
        &rcs(&[&b_spec]),
        &b_serves,
        &mut local,
        &policy,
    );
    assert_eq!(phase(&local, 0), Some(PodPhase::Running), "{p:?}");
    assert_eq!(p.wake_at, Some(redo + policy.move_settle_ms));
    plan(
        ME,
        redo + policy.move_settle_ms,
        &a,
        &rcs(&[&b_spec]),
        &b_serves,
        &mut local,
        &policy,
    );
    assert_eq!(phase(&local, 0), Some(PodPhase::Terminating));
}

/// restartPolicy `Never` keeps an exited pod of an older template for
/// good (replica 2 failed on template 0). A plain rolling update A→C
/// later is no second change: replica 0 drains in the first pass, where
/// counting the exited pod's template made it wait 2 s.
#[test]
fn an_exited_pod_of_an_older_template_does_not_make_a_rollout_wait() {
    let never = |image: &str| {
        let mut spec = web(3, 2, image);
        spec.template.restart_policy = RestartPolicy::Never;
        spec
    };
    let (zero, a_spec, c_spec) = (never("web:0"), never("web:a"), never("web:c"));
    let mut local = LocalPods::new();
    running(&mut local, &a_spec, 0);
    let a = owners(&[("web", 0, ME), ("web", 1, OTHER), ("web", 2, OTHER)]);
    let reported = BTreeMap::from([(
        OTHER,
        vec![
            claimed(status(&a_spec, 1, PodPhase::Running, true), &a),
            claimed(status(&zero, 2, PodPhase::Failed, false), &a),
        ],
    )]);
    let policy = ReconcilePolicy::default();
    plan(
        ME,
        1_000,
        &a,
        &rcs(&[&a_spec]),
        &reported,
        &mut local,
        &policy,
    );
    plan(
        ME,
        2_000,
        &a,
        &rcs(&[&c_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert_eq!(
        phase(&local, 0),
        Some(PodPhase::Terminating),
        "drains at once"
    );
}

/// Replica 0 moved from here to `OTHER`, which reports its copy of `a_spec`
/// still starting; replica 1 on `THIRD` reports `r1`. Planned with `a_spec`
/// from 1 s to past the handover bound, this copy stays (the owner's copy
/// is not ready).
fn kept_past_the_bound(
    a_spec: &RcSpec,
    r1: &RcSpec,
    r1_ready: bool,
) -> (LocalPods, Assignment, BTreeMap<NodeId, Vec<PodStatus>>, u64) {
    let mut local = LocalPods::new();
    running(&mut local, a_spec, 0);
    let a = owners(&[("web", 0, OTHER), ("web", 1, THIRD)]);
    let reported = BTreeMap::from([
        (
            OTHER,
            vec![claimed(status(a_spec, 0, PodPhase::Pending, false), &a)],
        ),
        (
            THIRD,
            vec![claimed(status(r1, 1, PodPhase::Running, r1_ready), &a)],
        ),
    ]);
    let policy = ReconcilePolicy::default();
    plan(
        ME,
        1_000,
        &a,
        &rcs(&[a_spec]),
        &reported,
        &mut local,
        &policy,
    );
    let past = 2_000 + policy.handover_bound_ms;
    let p = plan(
        ME,
        past,
        &a,
        &rcs(&[a_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(p.actions.is_empty(), "relied on: {p:?}");
    assert_eq!(phase(&local, 0), Some(PodPhase::Running));
    (local, a, reported, past)
}

/// A template change outdates a moved copy kept past the handover bound
/// because the owner's copy is still starting: it is a pod of the rollout
/// now, not stopped outright in that pass. With no room in the budget
/// (replica 1 not serving) it keeps serving; with room it drains first.
#[test]
fn a_kept_moved_copy_outdated_by_a_change_goes_only_within_the_budget() {
    let a_spec = web(2, 1, "web:a");
    let b_spec = web(2, 1, "web:b");
    let policy = ReconcilePolicy::default();

    let (mut local, a, reported, past) = kept_past_the_bound(&a_spec, &a_spec, false);
    let p = plan(
        ME,
        past + 1_000,
        &a,
        &rcs(&[&b_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(stops(&p.actions).is_empty(), "{p:?}");
    assert_eq!(phase(&local, 0), Some(PodPhase::Running), "no room");

    let (mut local, a, reported, past) = kept_past_the_bound(&a_spec, &a_spec, true);
    let p = plan(
        ME,
        past + 1_000,
        &a,
        &rcs(&[&b_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(stops(&p.actions).is_empty(), "{p:?}");
    assert_eq!(
        phase(&local, 0),
        Some(PodPhase::Terminating),
        "drains first"
    );
}

/// The same when the change comes mid-rollout (pods of the new template
/// serve): the copy waits `move_settle_ms` as an in-place pod does, then
/// drains within the budget.
#[test]
fn a_kept_moved_copy_outdated_mid_rollout_waits_to_settle_then_drains() {
    let a_spec = web(2, 1, "web:a");
    let b_spec = web(2, 1, "web:b");
    let policy = ReconcilePolicy::default();
    let (mut local, a, reported, past) = kept_past_the_bound(&a_spec, &b_spec, true);
    let changed = past + 1_000;
    let p = plan(
        ME,
        changed,
        &a,
        &rcs(&[&b_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(stops(&p.actions).is_empty(), "{p:?}");
    assert_eq!(phase(&local, 0), Some(PodPhase::Running), "{p:?}");
    assert!(
        p.wake_at
            .is_some_and(|at| at <= changed + policy.move_settle_ms)
    );
    let settled = changed + policy.move_settle_ms;
    let p = plan(
        ME,
        settled,
        &a,
        &rcs(&[&b_spec]),
        &reported,
        &mut local,
        &policy,
    );
    assert!(stops(&p.actions).is_empty(), "{p:?}");
    assert_eq!(phase(&local, 0), Some(PodPhase::Terminating));
}

/// A replica that moved away while its rollout was paused: its copy is
/// first seen outdated when the plain A→B is seen (paused), before pods
/// of B serve. Resumed once they do, the copy goes at once (the RC fills
/// `replicas + maxSurge`, so the new owner waits for it). Recorded only
/// when the move path first weighed it, after the resume, B serving read
/// as a rollback and it waited 2 s.
#[test]
fn a_moved_copy_seen_outdated_while_paused_goes_at_once_on_resume() {
    let mut a_spec = web(2, 1, "web:a");
    a_spec.update_strategy.max_surge = Allowance::Count(1);
    let mut b_spec = a_spec.clone();
    b_spec.template.containers[0].image = "web:b".into();
    let mut b_paused = b_spec.clone();
    b_paused.paused = true;
    let mut local = LocalPods::new();
    running(&mut local, &a_spec, 0);
    let a = Assignment::with_surge(
        [(pod("web", 0), OTHER), (pod("web", 1), THIRD)],
        [(pod("web", 2), THIRD)],
    );
    let policy = ReconcilePolicy::default();
    let before = BTreeMap::from([(
        THIRD,
        vec![claimed(status(&a_spec, 1, PodPhase::Running, true), &a)],
    )]);
    plan(
        ME,
        1_000,
        &a,
        &rcs(&[&b_paused]),
        &before,
        &mut local,
        &policy,
    );
    assert_eq!(phase(&local, 0), Some(PodPhase::Running));

    let b_serves = BTreeMap::from([(
        THIRD,
        vec![
            claimed(status(&b_spec, 1, PodPhase::Running, true), &a),
            claimed(status(&b_spec, 2, PodPhase::Running, true), &a),
        ],
    )]);
    plan(
        ME,
        5_000,
        &a,
        &rcs(&[&b_spec]),
        &b_serves,
        &mut local,
        &policy,
    );
    assert_eq!(
        phase(&local, 0),
        Some(PodPhase::Terminating),
        "goes at once"
    );
}
