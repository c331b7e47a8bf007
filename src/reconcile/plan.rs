//! `plan`: from the assignment and what runs, the container actions of this node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus};
use shoal_crdt_state::spec::{PartitionPolicy, RcSpec, RestartPolicy, TemplateHash};
use shoal_runtime::backoff::RestartBackoff;
use shoal_runtime::vocabulary::PodAction;

use super::local::{ExitKind, LocalPod, LocalPods, LocalState};
use super::rollout::{
    PodView, RcView, Slot, may_replace, may_start_move, may_start_surge, serves_template, slot_of,
    surge_needed, templates_besides,
};
use crate::placement::Assignment;

/// What every node reports about its pods, as `plan` reads it. Implemented
/// for the replicated [`ObservedState`] (no copy per reconcile) and for a
/// plain map (tests, tools).
pub trait ClusterPods {
    /// The pods `node` reports; empty for a node without a report.
    fn reported_by(&self, node: NodeId) -> &[PodStatus];
    /// Every node's report, in node order.
    fn each_node(&self) -> Box<dyn Iterator<Item = (NodeId, &[PodStatus])> + '_>;
}

impl ClusterPods for BTreeMap<NodeId, Vec<PodStatus>> {
    fn reported_by(&self, node: NodeId) -> &[PodStatus] {
        self.get(&node).map_or(&[], Vec::as_slice)
    }

    fn each_node(&self) -> Box<dyn Iterator<Item = (NodeId, &[PodStatus])> + '_> {
        Box::new(self.iter().map(|(n, pods)| (*n, pods.as_slice())))
    }
}

impl ClusterPods for ObservedState {
    fn reported_by(&self, node: NodeId) -> &[PodStatus] {
        self.get(node).map_or(&[], |r| r.pods.as_slice())
    }

    fn each_node(&self) -> Box<dyn Iterator<Item = (NodeId, &[PodStatus])> + '_> {
        Box::new(self.nodes().map(|(n, r)| (n, r.pods.as_slice())))
    }
}

/// Knobs of the reconciler, plus the one membership fact it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilePolicy {
    pub backoff: RestartBackoff,
    /// A replica that moved to another node is stopped here after this long
    /// even if its new owner never reports it running (owner gone, or stuck).
    pub handover_bound_ms: u64,
    /// Once its new owner serves a replica that moved away, the old copy
    /// runs this much longer, so that every peer's load balancer has seen
    /// the new one ready and dropped the old one from the service's
    /// endpoints before it stops (drain first). Covers a gossip round and
    /// the data plane's table refresh (50-250 ms after a change, see
    /// `shell::services::feed_delay`). A serving pod stopped by a
    /// scale-down or a rollout first reports `Terminating` for as long.
    pub handover_drain_ms: u64,
    /// Grace for stopping a pod whose template is unknown (adopted, RC deleted).
    pub default_grace_secs: u32,
    /// A stop the runtime has not confirmed (`Removed`) within the grace
    /// period plus this long is issued again: the engine may have failed it,
    /// and a pod stuck in `Stopping` would never be started again here.
    pub stop_retry_ms: u64,
    /// This peer sees a majority of the last known members. Set on every
    /// call from the member view; `AtMostDeclared` RCs start nothing without it.
    pub sees_majority: bool,
    /// A draining pod stops this long after every member is known to hold
    /// a record that says it drains (and so its load balancer's feed has
    /// dropped it: 50-250 ms, `shell::services::feed_delay`, plus requests
    /// already forwarded), when that comes before `handover_drain_ms`.
    pub drain_after_seen_ms: u64,
    /// A replica or surge slot that placement moved here from a node that
    /// is still up starts only this long after the move: the report of a
    /// pod its old node started or began replacing just before (which
    /// counts in the budget) reaches this node by gossip within about a
    /// second at 100 peers; without the wait both ran it (one copy over
    /// `replicas + maxSurge`, seen in the simulator under a concurrent
    /// scale or a crash elsewhere). A move is make-before-break, so the
    /// replica keeps serving meanwhile.
    pub move_settle_ms: u64,
    /// The newest of this node's published records that every member is
    /// known to hold. Set on every call from the peer's view of what the
    /// members hold (`peer::record_acks`); `None`: not known, the drain
    /// lasts `handover_drain_ms`.
    pub seen_by_all: Option<SeenByAll>,
}

/// A publication of this node's record that every member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenByAll {
    /// When the record was published (ms, the caller's clock).
    pub published_ms: u64,
    /// When the last member was known to hold it (or a newer one).
    pub known_ms: u64,
}

impl ReconcilePolicy {
    /// When a pod draining since `since` may stop: `handover_drain_ms`
    /// later, or `drain_after_seen_ms` after every member is known to
    /// hold a record published after `since`, whichever is first.
    pub fn drain_ends_at(&self, since: u64) -> u64 {
        let bound = since.saturating_add(self.handover_drain_ms);
        match self.seen_by_all {
            Some(seen) if seen.published_ms > since => {
                bound.min(seen.known_ms.saturating_add(self.drain_after_seen_ms))
            }
            _ => bound,
        }
    }
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            backoff: RestartBackoff::default(),
            handover_bound_ms: 30_000,
            handover_drain_ms: 2_000,
            default_grace_secs: 10,
            stop_retry_ms: 30_000,
            sees_majority: true,
            drain_after_seen_ms: 500,
            move_settle_ms: 2_000,
            seen_by_all: None,
        }
    }
}

/// What to do now, and when to ask again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In order: stops of strays, stops of replicas no longer declared
    /// (highest index first), then the rest in `PodId` order.
    pub actions: Vec<PodAction>,
    /// Call `plan` again at this time (ms) even if nothing is observed: the
    /// earliest back-off expiry, handover bound or unconfirmed-stop retry.
    pub wake_at: Option<u64>,
    /// Exited pods this call put in back-off, with when they restart (ms).
    pub backoffs: Vec<(PodId, u64)>,
}

/// This node's actions, given the assignment every peer computed and what
/// every node reports. Pure: `now` is in milliseconds on the caller's clock.
/// `local` is updated with the actions issued (starts become `Starting`,
/// stops `Stopping`), so repeated calls do not repeat actions.
///
/// `cluster_pods` is what each node reports; this node's own entry is
/// ignored in favour of `local`, which is never older.
pub fn plan(
    me: NodeId,
    now: u64,
    assignment: &Assignment,
    rcs: &BTreeMap<String, RcSpec>,
    cluster_pods: &impl ClusterPods,
    local: &mut LocalPods,
    policy: &ReconcilePolicy,
) -> Plan {
    let mut out = Plan::default();
    for (pod, template_hash) in std::mem::take(&mut local.strays) {
        let grace = secs(policy.default_grace_secs);
        out.actions.push(PodAction::Stop {
            pod,
            template_hash,
            grace,
        });
    }

    let mut pods: BTreeSet<PodId> = local.iter().map(|(p, _)| p.clone()).collect();
    pods.extend(assignment.pods_for(me).cloned());
    pods.extend(assignment.surge_for(me).cloned());

    let mut undeclared: Vec<PodAction> = Vec::new();
    let mut rest: Vec<PodAction> = Vec::new();
    let mut views: BTreeMap<String, RcView> = BTreeMap::new();
    let mut wake = |at: u64| out.wake_at = Some(out.wake_at.map_or(at, |w| w.min(at)));
    // Before deciding: the rollout's view of this node's pods is current.
    track_progress(rcs, local, now, &mut wake);
    note_template_changes(me, rcs, cluster_pods, local, now);

    for id in pods {
        if let Some(l) = local
            .get_mut(&id)
            .filter(|l| l.state == LocalState::Stopping)
        {
            let issued = *l.stop_issued_at.get_or_insert(now);
            if now >= issued.saturating_add(stop_wait(l, policy)) {
                l.stop_issued_at = Some(now);
                rest.push(PodAction::Stop {
                    pod: id.clone(),
                    template_hash: l.template_hash,
                    grace: secs(l.grace_secs.unwrap_or(policy.default_grace_secs)),
                });
            }
            continue;
        }
        let spec = rcs.get(&id.rc);
        let slot = spec.map_or(Slot::Undeclared, |rc| slot_of(rc, id.index));
        let rc = spec.filter(|_| slot != Slot::Undeclared);
        let owner = assignment.owner(&id);
        let Some(rc) = rc else {
            // RC deleted or scaled below this index.
            if let Some(stop) = drain_then_stop(&id, local, None, policy, now, &mut wake) {
                undeclared.push(stop);
            }
            continue;
        };
        let may_start =
            policy.sees_majority || rc.partition_policy != PartitionPolicy::AtMostDeclared;
        let current = rc.template.hash();
        if slot == Slot::Surge {
            let view = views
                .entry(id.rc.clone())
                .or_insert_with(|| rc_view(me, &id.rc, current, cluster_pods, local));
            let Some(l) = local.get(&id) else {
                // A paused rollout (`shoal rollout pause`) starts no surge pod either.
                if owner == Some(me)
                    && may_start
                    && !rc.paused
                    && may_start_surge(rc, current, view, id.index)
                    && let Some(started) =
                        start_once_settled(&id, rc, local, policy, now, &mut wake)
                {
                    rest.push(started);
                    views.remove(&id.rc);
                }
                continue;
            };
            let done = !surge_needed(rc, current, view) && l.state != LocalState::Stopping;
            let (state, draining, mine) = (l.state, l.draining_since.is_some(), l.template_hash);
            if !done && owner != Some(me) {
                // The slot moved (membership changed): the pod stays while
                // the rollout needs it. Stopping it would take a serving pod
                // out of the budget (the ready floor), and starting the slot
                // first on its new owner would exceed `replicas + maxSurge`;
                // the new owner starts nothing while this copy is reported.
                // It goes once a copy on the new owner serves (both sides
                // of a healed partition ran one) or once it is down; a
                // drain once begun runs to its stop.
                let successor = owner.is_some_and(|o| {
                    successor_serves(
                        cluster_pods.reported_by(o),
                        &id,
                        rc,
                        mine,
                        assignment.fingerprint(),
                    )
                });
                if let Some(l) = local.get_mut(&id) {
                    l.moved_away_at.get_or_insert(now);
                }
                if successor || state == LocalState::Exited || draining {
                    rest.extend(drain_then_stop(
                        &id,
                        local,
                        Some(rc),
                        policy,
                        now,
                        &mut wake,
                    ));
                    views.remove(&id.rc);
                }
                continue;
            }
            if let Some(l) = local.get_mut(&id) {
                l.moved_away_at = None;
            }
            if done
                && let Some(until) = local
                    .get(&id)
                    .and_then(|l| change_settles_at(l, now, policy))
            {
                wake(until);
                continue;
            }
            if done {
                // The rollout is done: the surge leaves.
                rest.extend(drain_then_stop(
                    &id,
                    local,
                    Some(rc),
                    policy,
                    now,
                    &mut wake,
                ));
                views.remove(&id.rc);
                continue;
            }
        }
        let release = releases_move(
            me,
            &id,
            rc,
            owner,
            assignment,
            cluster_pods,
            local,
            &mut views,
            (now, policy),
            &mut wake,
        );
        let Some(l) = local.get_mut(&id) else {
            if owner == Some(me) && may_start {
                // A copy still running elsewhere makes this a move: it
                // shares the surge budget with the rollout.
                let view = views
                    .entry(id.rc.clone())
                    .or_insert_with(|| rc_view(me, &id.rc, current, cluster_pods, local));
                if may_start_move(rc, current, view, id.index)
                    && let Some(started) =
                        start_once_settled(&id, rc, local, policy, now, &mut wake)
                {
                    rest.push(started);
                    views.remove(&id.rc);
                }
            }
            continue;
        };
        if l.draining_since.is_some() {
            if l.template_hash == current && owner.is_none_or(|o| o == me) {
                // Declared here again (scaled back up) before it stopped.
                l.draining_since = None;
            } else {
                rest.extend(drain_then_stop(
                    &id,
                    local,
                    Some(rc),
                    policy,
                    now,
                    &mut wake,
                ));
                continue;
            }
        }
        match owner {
            Some(other) if other != me => {
                let since = *l.moved_away_at.get_or_insert(now);
                let deadline = since.saturating_add(policy.handover_bound_ms);
                let serves = successor_serves(
                    cluster_pods.reported_by(other),
                    &id,
                    rc,
                    l.template_hash,
                    assignment.fingerprint(),
                );
                let drained = match (serves, l.successor_serves_at) {
                    (false, _) => {
                        l.successor_serves_at = None;
                        None
                    }
                    (true, Some(at)) => Some(at.saturating_add(policy.handover_drain_ms)),
                    (true, None) => {
                        l.successor_serves_at = Some(now);
                        Some(now.saturating_add(policy.handover_drain_ms))
                    }
                };
                // The owner replaces an outdated copy at once when this
                // current one serves the replica (`rollout::may_replace`):
                // while this copy serves and the owner's current copy is
                // still starting, this one stays past the bound, or the
                // replica would go unserved — up to the rollout's progress
                // deadline, so a copy that never becomes ready there does
                // not keep the RC above its ceiling for good. An owner that
                // reports no copy, or one that failed, gets the bound as
                // before. Once the owner's copy serves, this one drains
                // first (`drained`), even past the bound. A copy kept so
                // that a template change outdated is a pod of the rollout:
                // it waits as an in-place one does (`change_settles_at`),
                // then goes within the rollout's budget (`may_replace`),
                // drained, never stopped outright at the bound.
                let extended = since
                    .saturating_add(
                        u64::from(rc.update_strategy.progress_deadline_secs).saturating_mul(1_000),
                    )
                    .max(deadline);
                let reported = cluster_pods.reported_by(other);
                let keeps = l.available()
                    && now < extended
                    && (owner_prepares_replica(reported, &id, current)
                        || owner_prepares_replica(reported, &id, l.template_hash));
                let outdated = l.template_hash != current;
                let settles = change_settles_at(l, now, policy).filter(|_| outdated);
                let relied_on = keeps && (!outdated || settles.is_some());
                let replaced = keeps && !relied_on && now >= deadline;
                let bound_passed = now >= deadline && !keeps && !serves;
                let budget_allows = replaced && !rc.paused && {
                    let view = views
                        .entry(id.rc.clone())
                        .or_insert_with(|| rc_view(me, &id.rc, current, cluster_pods, local));
                    may_replace(rc, current, view, id.index, surge_placed(rc, assignment))
                };
                let Some(l) = local.get_mut(&id) else {
                    continue;
                };
                if l.state == LocalState::Exited
                    || drained.is_some_and(|at| now >= at)
                    || bound_passed
                {
                    rest.extend(stop(&id, local, Some(rc), policy, now));
                } else if release || budget_allows {
                    // Not a handover any more: the rollout replaces this
                    // copy (break before make, within its budget).
                    l.moved_away_at = None;
                    l.successor_serves_at = None;
                    rest.extend(drain_then_stop(
                        &id,
                        local,
                        Some(rc),
                        policy,
                        now,
                        &mut wake,
                    ));
                    views.remove(&id.rc);
                } else if relied_on || replaced {
                    // A report of the owner's ready copy, or of a drain
                    // that frees the budget, wakes the plan.
                    let until = drained.into_iter().chain(settles).fold(extended, u64::min);
                    wake(until);
                } else {
                    // Past the bound only a drain under way is left to wait for.
                    let bound = (now < deadline).then_some(deadline);
                    if let Some(at) = drained.into_iter().chain(bound).min() {
                        wake(at);
                    }
                }
            }
            _ => {
                l.moved_away_at = None;
                l.successor_serves_at = None;
                if l.state == LocalState::Exited {
                    // Unplaced replicas that crashed stay down: no node fits them.
                    if owner == Some(me) && may_start {
                        let fresh = l.next_restart_at.is_none();
                        match restart_due(l, now, rc.template.restart_policy, &policy.backoff) {
                            Some(at) if at <= now => {
                                let restarts = l.restarts.saturating_add(1);
                                rest.push(start(&id, rc, local, Some(restarts), now));
                            }
                            Some(at) => {
                                if fresh {
                                    out.backoffs.push((id.clone(), at));
                                }
                                wake(at);
                            }
                            None => {}
                        }
                    }
                } else if l.template_hash != current && owner == Some(me) && may_start {
                    if rc.paused {
                        continue; // `shoal rollout pause`: the rollout holds here.
                    }
                    if let Some(until) = change_settles_at(l, now, policy) {
                        wake(until);
                        continue;
                    }
                    let view = views
                        .entry(id.rc.clone())
                        .or_insert_with(|| rc_view(me, &id.rc, current, cluster_pods, local));
                    if may_replace(rc, current, view, id.index, surge_placed(rc, assignment)) {
                        rest.extend(drain_then_stop(
                            &id,
                            local,
                            Some(rc),
                            policy,
                            now,
                            &mut wake,
                        ));
                        // Later replicas of this RC must see this one as down.
                        views.remove(&id.rc);
                    }
                }
            }
        }
    }

    // A pod healthy for as long as the back-off takes to forgive its
    // crashes no longer shows why it last went down.
    let forgive = policy.backoff.reset_after.as_millis() as u64;
    for (_, l) in local.iter_mut() {
        if let (Some(since), Some(_), true) = (l.ready_since, &l.last_error, l.available()) {
            let at = since.saturating_add(forgive);
            if now >= at {
                l.last_error = None;
            } else {
                wake(at);
            }
        }
    }

    for (_, l) in local
        .iter()
        .filter(|(_, l)| l.state == LocalState::Stopping)
    {
        if let Some(issued) = l.stop_issued_at {
            wake(issued.saturating_add(stop_wait(l, policy)));
        }
    }

    undeclared.sort_by(|a, b| {
        let (a, b) = (a.pod(), b.pod());
        a.rc.cmp(&b.rc).then(b.index.cmp(&a.index))
    });
    out.actions.extend(undeclared);
    out.actions.extend(rest);
    out
}

/// How long a stop may go unconfirmed before it is issued again.
fn stop_wait(l: &LocalPod, policy: &ReconcilePolicy) -> u64 {
    let grace = l.grace_secs.unwrap_or(policy.default_grace_secs);
    (u64::from(grace) * 1_000).saturating_add(policy.stop_retry_ms)
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Issue a start of `rc`'s current template and record it. `restarts` is the
/// new restart count when this replaces an exited pod of the same replica.
fn start(
    id: &PodId,
    rc: &RcSpec,
    local: &mut LocalPods,
    restarts: Option<u32>,
    now: u64,
) -> PodAction {
    let template = rc.template.clone();
    let mut fresh = LocalPod::starting(template.hash(), template.termination_grace_period_secs);
    fresh.started_at = Some(now);
    // Reported while pending: placement keeps these host ports for the pod
    // during its start (and every restart), not only once they are bound.
    fresh.ports = template.host_port_bindings();
    if let (Some(restarts), Some(old)) = (restarts, local.get(id)) {
        fresh.restarts = restarts;
        fresh.consecutive_failures = old.consecutive_failures;
        fresh.last_error = old.last_error.clone();
        if old.template_hash == fresh.template_hash {
            // A crash loop does not reset the progress deadline.
            fresh.started_at = old.started_at.or(fresh.started_at);
            fresh.stalled = old.stalled.clone();
        }
    }
    local.insert(id.clone(), fresh);
    PodAction::Start {
        pod: id.clone(),
        template,
    }
}

/// Starts `id` unless placement moved it here from a node still up less
/// than `move_settle_ms` ago; then `wake` gets the moment it may.
fn start_once_settled(
    id: &PodId,
    rc: &RcSpec,
    local: &mut LocalPods,
    policy: &ReconcilePolicy,
    now: u64,
    wake: &mut impl FnMut(u64),
) -> Option<PodAction> {
    let settled_at = local.settled_at(id, now, policy.move_settle_ms);
    if now < settled_at {
        wake(settled_at);
        return None;
    }
    Some(start(id, rc, local, None, now))
}

/// Stop a local pod that no peer should route to any more: one that
/// serves is first published as leaving (`Terminating`, not ready) and
/// stopped only once every peer's load balancer has dropped it from the
/// endpoints ([`ReconcilePolicy::drain_ends_at`]), before its container
/// stops (drain first); any other is stopped at once. `wake` gets the
/// drain's end.
fn drain_then_stop(
    id: &PodId,
    local: &mut LocalPods,
    rc: Option<&RcSpec>,
    policy: &ReconcilePolicy,
    now: u64,
    wake: &mut impl FnMut(u64),
) -> Option<PodAction> {
    let l = local.get_mut(id)?;
    if l.state == LocalState::Running {
        let since = match l.draining_since {
            Some(since) => Some(since),
            None if l.ready => Some(*l.draining_since.insert(now)),
            None => None,
        };
        if let Some(until) = since.map(|s| policy.drain_ends_at(s))
            && now < until
        {
            wake(until);
            return None;
        }
    }
    stop(id, local, rc, policy, now)
}

/// Issue a stop of the local pod, unless it is already stopping.
fn stop(
    id: &PodId,
    local: &mut LocalPods,
    rc: Option<&RcSpec>,
    policy: &ReconcilePolicy,
    now: u64,
) -> Option<PodAction> {
    let l = local.get_mut(id)?;
    if l.state == LocalState::Stopping {
        return None;
    }
    l.state = LocalState::Stopping;
    l.ready = false;
    l.stop_issued_at = Some(now);
    let grace = l
        .grace_secs
        .or(rc.map(|rc| rc.template.termination_grace_period_secs))
        .unwrap_or(policy.default_grace_secs);
    l.grace_secs = Some(grace);
    Some(PodAction::Stop {
        pod: id.clone(),
        template_hash: l.template_hash,
        grace: secs(grace),
    })
}

/// When the exited pod may start again, or `None` if its policy says never.
/// Sets the back-off expiry once per exit, forgiving a pod that had stayed up.
fn restart_due(
    l: &mut LocalPod,
    now: u64,
    policy: RestartPolicy,
    backoff: &RestartBackoff,
) -> Option<u64> {
    let allowed = match (policy, l.last_exit) {
        (_, Some(ExitKind::StartFailed)) | (RestartPolicy::Always, _) => true,
        (RestartPolicy::OnFailure, kind) => kind != Some(ExitKind::Succeeded),
        (RestartPolicy::Never, _) => false,
    };
    if !allowed {
        return None;
    }
    if let Some(at) = l.next_restart_at {
        return Some(at);
    }
    let exited_at = l.exited_at.unwrap_or(now);
    let reset_after = backoff.reset_after.as_millis() as u64;
    if l.running_since
        .is_some_and(|since| exited_at.saturating_sub(since) >= reset_after)
    {
        l.consecutive_failures = 1;
    }
    let delay = backoff.delay(l.consecutive_failures).as_millis() as u64;
    let at = exited_at.saturating_add(delay);
    l.next_restart_at = Some(at);
    Some(at)
}

/// The new owner reports the replica running, and ready when readiness is
/// known to matter (it runs a template with a probe, or one we cannot see).
fn successor_serves(
    reported: &[PodStatus],
    id: &PodId,
    rc: &RcSpec,
    mine: TemplateHash,
    placement: u64,
) -> bool {
    let current = rc.template.hash();
    let probe_free = rc
        .template
        .containers
        .iter()
        .all(|c| c.readiness_probe.is_none());
    reported.iter().any(|s| {
        s.id == *id
            && s.claim == Some(placement)
            && s.phase == PodPhase::Running
            && (s.ready || (probe_free && s.template_hash == current))
            // Never trade a copy of the current template for an outdated one
            // that its owner is about to replace (rolling update in place).
            && (s.template_hash == current || mine != current)
    })
}

/// The owner reports a copy of replica `id` of the `current` template that
/// is still starting: pending, or running but not ready yet.
fn owner_prepares_replica(reported: &[PodStatus], id: &PodId, current: TemplateHash) -> bool {
    reported.iter().any(|s| {
        s.id == *id
            && s.template_hash == current
            && match s.phase {
                PodPhase::Pending => true,
                PodPhase::Running => !s.ready,
                _ => false,
            }
    })
}

/// Every pod of RC `name` in the cluster by replica: other nodes as they
/// report, this node from its own bookkeeping.
fn rc_view(
    me: NodeId,
    name: &str,
    current: TemplateHash,
    cluster_pods: &impl ClusterPods,
    local: &LocalPods,
) -> RcView {
    let mut view = RcView::default();
    for (node, statuses) in cluster_pods.each_node() {
        if node == me {
            continue;
        }
        for s in statuses.iter().filter(|s| s.id.rc == name) {
            let serving = s.phase == PodPhase::Running && s.ready;
            let pod = PodView {
                template_hash: s.template_hash,
                serving,
                available: serving && s.available,
                live: matches!(s.phase, PodPhase::Pending | PodPhase::Running),
            };
            view.push(s.id.index, pod, s.stalled.as_deref(), current);
        }
    }
    for (id, l) in local.iter().filter(|(id, _)| id.rc == name) {
        let live = match l.state {
            LocalState::Starting => true,
            LocalState::Running => l.draining_since.is_none(),
            LocalState::Exited | LocalState::Stopping => false,
        };
        let pod = PodView {
            template_hash: l.template_hash,
            serving: l.available(),
            available: l.rollout_available(),
            live,
        };
        view.push(id.index, pod, l.stalled.as_deref(), current);
    }
    view
}

/// Whether this node lets its copy of a replica that moved away go before
/// the new owner runs it: the copy is outdated (a rollout would replace it
/// anyway), the new owner cannot start yet because the RC's pods fill the
/// surge budget ([`may_start_move`]), and the rollout's own gate
/// ([`may_replace`]) lets it go now. Then it drains and stops within the
/// unavailability budget, as an in-place replacement would, and the new
/// owner starts in its place; otherwise it would hold the rollout for the
/// whole handover bound. A copy that a change of the current template
/// mid-rollout made outdated waits as an in-place replacement does
/// ([`change_settles_at`]); `wake` gets the wait's end.
#[allow(clippy::too_many_arguments)]
fn releases_move(
    me: NodeId,
    id: &PodId,
    rc: &RcSpec,
    owner: Option<NodeId>,
    assignment: &Assignment,
    cluster_pods: &impl ClusterPods,
    local: &mut LocalPods,
    views: &mut BTreeMap<String, RcView>,
    (now, policy): (u64, &ReconcilePolicy),
    wake: &mut impl FnMut(u64),
) -> bool {
    let current = rc.template.hash();
    let Some(l) = local.get(id) else {
        return false;
    };
    let moved = owner.is_some_and(|o| o != me);
    if !moved
        || rc.paused
        || l.template_hash == current
        || l.state != LocalState::Running
        || l.draining_since.is_some()
    {
        return false;
    }
    let view = views
        .entry(id.rc.clone())
        .or_insert_with(|| rc_view(me, &id.rc, current, cluster_pods, local));
    // The new owner runs it already: the handover takes its course.
    let successor_started =
        owner.is_some_and(|o| cluster_pods.reported_by(o).iter().any(|s| s.id == *id));
    if successor_started || may_start_move(rc, current, view, id.index) {
        return false;
    }
    if let Some(until) = local
        .get(id)
        .and_then(|l| change_settles_at(l, now, policy))
    {
        wake(until);
        return false;
    }
    may_replace(rc, current, view, id.index, surge_placed(rc, assignment))
}

/// Until when a pod that a change of the current template mid-rollout
/// made outdated stays put, if it must ([`note_template_changes`] sets
/// the clock). Peers that have not seen the change yet still replace pods
/// against the same budget, ranking another set of pods as outdated (those
/// of the template they hold current), so their drains and this one would
/// draw on the budget twice; and until those drains reach this node's view
/// its own count is stale (`rollout-undo` and `rollout-partition-undo` went
/// 1 below the floor that way, `rollout-twice` 2). After `move_settle_ms`
/// the change has reached them (they take back drains of pods it made
/// current again, or rank alike) and their drains have reached this view.
fn change_settles_at(l: &LocalPod, now: u64, policy: &ReconcilePolicy) -> Option<u64> {
    l.changed_mid_rollout_at
        .map(|at| at.saturating_add(policy.move_settle_ms))
        .filter(|&until| now < until)
}

/// Records, for every local pod, when it was first seen outdated against
/// its RC's current template, and whether that change came mid-rollout;
/// a pod current again forgets both, so a later change is judged afresh.
/// Done once per call, before any decision, so every path that lets an
/// outdated pod go (in place, a surge slot, a move) reads the same clock
/// from the same first sight, whichever of them runs first or at all.
///
/// The change is mid-rollout when, as the pod is first seen outdated
/// against the new current template: it was already outdated against
/// another one (a second change while it still waited to be replaced);
/// pods of the new template already serve (a rollback, `rollout undo`);
/// or the view's live pods run two or more other templates (A→B→C: this
/// node cannot tell which of A and B a lagging peer holds current, so
/// pods of either wait). A plain rollout (one older template, no pod of
/// the new one serving) does not wait; nor does a resume, which changes no
/// template: the clock runs while paused.
fn note_template_changes(
    me: NodeId,
    rcs: &BTreeMap<String, RcSpec>,
    cluster_pods: &impl ClusterPods,
    local: &mut LocalPods,
    now: u64,
) {
    // Once per RC: a template's hash encodes it.
    let mut currents: BTreeMap<&str, TemplateHash> = BTreeMap::new();
    for (id, _) in local.iter() {
        if let Some((name, rc)) = rcs.get_key_value(&id.rc) {
            currents
                .entry(name.as_str())
                .or_insert_with(|| rc.template.hash());
        }
    }
    let current_of = |id: &PodId| currents.get(id.rc.as_str()).copied();
    let mut first_seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for (id, l) in local.iter() {
        if let Some(current) = current_of(id)
            && l.template_hash != current
            && l.outdated_against != Some(current)
            && !first_seen.contains_key(&id.rc)
        {
            let view = rc_view(me, &id.rc, current, cluster_pods, local);
            let change = (
                serves_template(&view, current),
                templates_besides(&view, current) > 1,
            );
            first_seen.insert(id.rc.clone(), change);
        }
    }
    for (id, l) in local.iter_mut() {
        let Some(current) = current_of(id) else {
            continue;
        };
        if l.template_hash == current {
            l.outdated_against = None;
            l.changed_mid_rollout_at = None;
        } else if l.outdated_against != Some(current)
            && let Some(&(new_serves, many_others)) = first_seen.get(&id.rc)
        {
            let mid_rollout = l.outdated_against.is_some() || new_serves || many_others;
            l.outdated_against = Some(current);
            l.changed_mid_rollout_at = mid_rollout.then_some(now);
        }
    }
}

/// Whether placement gave any of `rc`'s surge slots a node.
fn surge_placed(rc: &RcSpec, assignment: &Assignment) -> bool {
    let (surge, _) = rc.update_strategy.resolve(rc.replicas);
    (rc.replicas..rc.replicas.saturating_add(surge)).any(|index| {
        let slot = PodId {
            rc: rc.name.clone(),
            index,
        };
        assignment.owner(&slot).is_some()
    })
}

/// The clocks of the rollout on this node's pods: ready for
/// `minReadySeconds` makes a pod available; a pod of the current template
/// not ready `progressDeadlineSeconds` after its first start is stalled,
/// with the reason every peer will read in its status.
fn track_progress(
    rcs: &BTreeMap<String, RcSpec>,
    local: &mut LocalPods,
    now: u64,
    wake: &mut impl FnMut(u64),
) {
    for (id, l) in local.iter_mut() {
        let Some(rc) = rcs.get(&id.rc) else {
            l.stalled = None;
            continue;
        };
        let strategy = &rc.update_strategy;
        let started = *l.started_at.get_or_insert(now);
        match (l.available(), l.ready_since) {
            (true, Some(since)) => {
                let at = since.saturating_add(u64::from(strategy.min_ready_secs) * 1_000);
                l.min_ready_met = now >= at;
                if !l.min_ready_met {
                    wake(at);
                }
            }
            _ => l.min_ready_met = false,
        }
        let current = l.template_hash == rc.template.hash();
        if !current || l.ready || matches!(l.state, LocalState::Stopping) {
            l.stalled = None;
            continue;
        }
        let secs = strategy.progress_deadline_secs;
        let deadline = started.saturating_add(u64::from(secs) * 1_000);
        if now < deadline {
            wake(deadline);
        } else if l.stalled.is_none() {
            let why = l
                .last_error
                .as_deref()
                .or(l.preparing.as_deref())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            l.stalled = Some(format!("pod {id} not ready after {secs}s{why}"));
        }
    }
}
