//! The rolling-update gate: which pod of an RC may move to the new template
//! now. Pure: every peer evaluates it on its own view of what every node
//! reports, and peers with the same view take the same decisions.
//!
//! **Surge slots, make-before-break.** A replica is still replaced in place
//! by its owner (drain, stop, start the new template under the same
//! `PodId`), so a node never holds two pods of one replica and a node's
//! report keeps one status per `PodId`. The surge is extra replicas:
//! placement gives every RC `maxSurge` *surge slots*, indices
//! `replicas..replicas + maxSurge`, placed after all replicas (so they
//! never move one) with the weights replica `replicas + k` would have. While
//! a rollout runs, the slots start pods of the new template; once those are
//! available, the old replicas are replaced one budget at a time, each
//! leaving the service endpoints and draining before it stops; once every
//! replica runs the new template and is available, the slots drain and stop.
//! Why not two pods per replica (old and new side by side)? Every layer —
//! the node report, the runtime's adoption, handovers, `get pods` — holds
//! one pod per `PodId`; surge slots need none of them to change, cost one
//! extra start per slot per rollout, and a scale-up during a rollout simply
//! keeps a surge pod as the replica it already is.
//!
//! **Budget**, with `surge, unavailable = strategy.resolve(replicas)`
//! (percentages: surge rounds up, unavailable down, both 0 → 1 unavailable):
//!
//! - *available* = running, ready for `minReadySeconds`, not draining;
//! - a replica (or slot) whose pod is available but outdated may be replaced
//!   when its rank among such pods, in index order, is below
//!   `available − (replicas − unavailable)`: ready never drops below
//!   `replicas − unavailable`;
//! - one that does not serve (down, starting) may be replaced at once: it
//!   costs nothing; nor does one whose replica a pod of the current
//!   template serves (available) on another node, and it takes no rank
//!   from the others. After a partition heal the side that lost a replica
//!   may run it on the current template while its owner runs an outdated
//!   copy: the owner replaces its copy at once, the other copy hands over
//!   to the new one, and the RC is back within `replicas + maxSurge` after
//!   a drain and a start rather than the handover bound (the other copy
//!   never trades a current copy for an outdated one);
//! - surge slot `k` starts only while an outdated replica remains and the
//!   RC's pods plus the empty slots before `k` stay below
//!   `replicas + surge`: running never exceeds `replicas + surge`;
//! - a slot keeps its pod while some replica lacks an available pod of the
//!   new template, even when a membership change moves the slot to another
//!   node: moving it would either stop a serving pod outside the budget or
//!   run the slot twice. The slot starts nowhere while a copy of it is
//!   reported; a second copy (both sides of a healed partition ran one)
//!   leaves once the owner's serves;
//! - a replica that moves while an outdated copy of it still runs
//!   elsewhere (placement changed under a crash, a cordon or a suspicion)
//!   shares that budget ([`may_start_move`]): its new owner starts only
//!   while the RC's copies, with every declared replica holding its place
//!   even between the stop and the start of an in-place replacement, stay
//!   below `replicas + surge`; meanwhile the old owner lets its copy go
//!   when [`may_replace`] would (`plan`), so the move is a replacement
//!   within the unavailability budget. A move away from a copy of the
//!   current template is a plain handover and starts at once;
//! - a surge slot starts only while the same rule would keep it, so an
//!   outdated copy lingering next to an updated, available one (a
//!   handover) cannot make it start and stop in turn.
//!
//! **Stop on failure.** The node running a pod of the current template
//! that is not ready `progressDeadlineSeconds` after its start reports it
//! `stalled` with the reason. Every peer reading that report stops
//! starting surge pods and replacing replicas (the old ones keep serving):
//! the decision depends only on replicated reports, so peers agree on it
//! without comparing clocks. [`stopped`] gives the reason to show. With
//! `shoal.io/auto-rollback: "true"` the node whose pod stalled writes the
//! previous template back ([`rollback_template`]); that is a rollout too.
//!
//! **Views.** Pods of nodes placement counts as gone (declared down) are
//! not in the view: they serve nobody, and their outdated ones are not left
//! to replace. With the same view everywhere the bounds hold at every
//! instant. Views that lag each other (gossip delay) can let the rollout
//! run ahead by the decisions taken on stale views, and each peer's own
//! pods are always current in its view. A template change mid-rollout
//! (`rollout undo`, or a second rolling update) breaks the common order:
//! peers that have not seen it rank another template's pods against the
//! same budget, so a pod the change made outdated waits for it to spread
//! (`plan`), in place or moving away. It never deadlocks: every input it
//! waits on is eventually reported.

use std::collections::BTreeMap;

use shoal_crdt_state::Revision;
use shoal_crdt_state::spec::{PodTemplate, RcSpec, TemplateHash};

/// One pod of a replica somewhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodView {
    pub template_hash: TemplateHash,
    /// Running, ready and not draining: in the service's endpoints.
    pub serving: bool,
    /// Serving for `minReadySeconds`: what the budget counts.
    pub available: bool,
    /// Starting or running, not draining: a pod of a rollout still under
    /// way. Not an exited one (restartPolicy `Never` keeps it for good)
    /// nor a drained one: neither says which template a peer holds current.
    pub live: bool,
}

/// All pods of one RC across the cluster, and the first stall reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcView {
    pub pods: BTreeMap<u32, Vec<PodView>>,
    /// The stall reported by the lowest-index pod of the current template.
    pub stalled: Option<String>,
    stalled_index: Option<u32>,
}

impl RcView {
    /// Adds a pod at `index`; `stalled` counts only for the current template.
    pub fn push(&mut self, index: u32, pod: PodView, stalled: Option<&str>, current: TemplateHash) {
        if pod.template_hash == current
            && let Some(why) = stalled
            && self.stalled_index.is_none_or(|i| index < i)
        {
            self.stalled = Some(why.to_owned());
            self.stalled_index = Some(index);
        }
        self.pods.entry(index).or_default().push(pod);
    }
}

/// The role of index `index` of `rc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Replica,
    /// A surge slot: runs a pod only while a rollout needs it.
    Surge,
    /// Beyond the replicas and the surge: scaled down.
    Undeclared,
}

pub fn slot_of(rc: &RcSpec, index: u32) -> Slot {
    let (surge, _) = rc.update_strategy.resolve(rc.replicas);
    if index < rc.replicas {
        Slot::Replica
    } else if index < rc.replicas.saturating_add(surge) {
        Slot::Surge
    } else {
        Slot::Undeclared
    }
}

/// Why the rollout of `rc` stopped, if it did.
pub fn stopped(view: &RcView) -> Option<&str> {
    view.stalled.as_deref()
}

fn serving(view: &RcView, j: u32) -> bool {
    view.pods
        .get(&j)
        .is_some_and(|pods| pods.iter().any(|p| p.serving))
}

/// Whether some pod of `template` serves (in the endpoints) in `view`.
pub fn serves_template(view: &RcView, template: TemplateHash) -> bool {
    view.pods
        .values()
        .flatten()
        .any(|p| p.serving && p.template_hash == template)
}

/// How many distinct templates other than `current` the live pods of
/// `view` run.
pub fn templates_besides(view: &RcView, current: TemplateHash) -> usize {
    let mut others: Vec<TemplateHash> = view
        .pods
        .values()
        .flatten()
        .filter(|p| p.live)
        .map(|p| p.template_hash)
        .filter(|&t| t != current)
        .collect();
    others.sort_unstable_by_key(|t| t.0);
    others.dedup();
    others.len()
}

fn available(view: &RcView, j: u32) -> bool {
    view.pods
        .get(&j)
        .is_some_and(|pods| pods.iter().any(|p| p.available))
}

fn outdated(view: &RcView, current: TemplateHash, j: u32) -> bool {
    view.pods
        .get(&j)
        .is_some_and(|pods| pods.iter().any(|p| p.template_hash != current))
}

fn updated_and_available(view: &RcView, current: TemplateHash, j: u32) -> bool {
    view.pods.get(&j).is_some_and(|pods| {
        pods.iter()
            .any(|p| p.available && p.template_hash == current)
    })
}

/// True when the owner of index `index` (a replica or a surge slot) may
/// replace its outdated pod now: it does not serve, a current copy serves
/// the index elsewhere, or its rank fits the unavailability budget. `surge_placed` says whether placement
/// found a node for any surge slot: without one (a full cluster, a host
/// port on a single node) the rollout falls back to replacing one replica
/// at a time in place rather than waiting for a surge that cannot come.
pub fn may_replace(
    rc: &RcSpec,
    current: TemplateHash,
    view: &RcView,
    index: u32,
    surge_placed: bool,
) -> bool {
    if stopped(view).is_some() || slot_of(rc, index) == Slot::Undeclared {
        return false;
    }
    if !serving(view, index) || updated_and_available(view, current, index) {
        return true;
    }
    let (surge, mut unavailable) = rc.update_strategy.resolve(rc.replicas);
    if !surge_placed {
        unavailable = unavailable.max(1);
    }
    let end = rc.replicas.saturating_add(surge);
    let serving = (0..end).filter(|j| available(view, *j)).count() as u64;
    let floor = u64::from(rc.replicas.saturating_sub(unavailable));
    let slots = serving.saturating_sub(floor);
    let rank = (0..index)
        .filter(|j| costs_budget(view, current, *j))
        .count() as u64;
    rank < slots
}

/// Whether replacing index `j`'s outdated copy takes a serving replica
/// away: not when a copy of the current template serves it elsewhere.
fn costs_budget(view: &RcView, current: TemplateHash, j: u32) -> bool {
    available(view, j) && outdated(view, current, j) && !updated_and_available(view, current, j)
}

/// True when surge slot `index` may start a pod of the current template.
pub fn may_start_surge(rc: &RcSpec, current: TemplateHash, view: &RcView, index: u32) -> bool {
    if stopped(view).is_some() || slot_of(rc, index) != Slot::Surge {
        return false;
    }
    if view.pods.contains_key(&index) {
        // Still running where the slot was placed before: a surge pod
        // stays put while the rollout needs it (see `plan`).
        return false;
    }
    // The same rule that keeps a running surge pod (`surge_needed`), or a
    // slot would start and stop in turn while an outdated copy lingers
    // next to an available updated one (a handover not yet done).
    let rolling = (0..rc.replicas).any(|j| outdated(view, current, j));
    if !rolling || !surge_needed(rc, current, view) {
        return false;
    }
    let (surge, _) = rc.update_strategy.resolve(rc.replicas);
    let empty_before = (rc.replicas..index)
        .filter(|j| !view.pods.contains_key(j))
        .count() as u64;
    occupied(rc, view) + empty_before < u64::from(rc.replicas) + u64::from(surge)
}

/// The running copies the budget counts: every declared replica holds its
/// place even while it has no pod (its owner is between the stop and the
/// start of an in-place replacement, or a start is on its way), plus every
/// extra copy of it and every surge or scaled-down pod. Counting only the
/// pods reported would let a surge start or a move fill the place of a
/// replica being replaced, and running would exceed `replicas + maxSurge`
/// once that replica's new pod starts.
fn occupied(rc: &RcSpec, view: &RcView) -> u64 {
    let held = (0..rc.replicas)
        .filter(|j| view.pods.get(j).is_none_or(Vec::is_empty))
        .count() as u64;
    let pods: u64 = view.pods.values().map(|p| p.len() as u64).sum();
    pods + held
}

/// True when the new owner of replica `index` may start it now, given the
/// copies other nodes still report. A replica that moves while its old
/// copy runs (its node was cordoned, placement changed under a membership
/// change, or the old owner's rollout drain is under way there) is a
/// make-before-break move, and it draws on the same `maxSurge` budget as
/// the rollout's surge slots: the start waits while the RC's pods already
/// fill `replicas + maxSurge`. The old copy then leaves on its own (its
/// drain ends, or the handover bound passes), and the start follows. A
/// replica with no copy elsewhere (its node died and is counted gone)
/// starts at once: that costs no budget. Replicas without a pod hold
/// their place (see [`occupied`]).
///
/// Weaker than the rollout's own bound: only a move away from outdated
/// copies waits (the rollout's gate lets those go, see `plan`); a move of a
/// current copy starts at once, one copy over the budget until its
/// handover ends. With `maxSurge` 0 a move still starts first (the handover would
/// otherwise wait its full bound with the replica unserved): such an RC may
/// run one copy over `replicas` per moving replica.
pub fn may_start_move(rc: &RcSpec, current: TemplateHash, view: &RcView, index: u32) -> bool {
    let Some(copies) = view.pods.get(&index).filter(|c| !c.is_empty()) else {
        return true;
    };
    if copies.iter().any(|p| p.template_hash == current) {
        // A copy of the current template elsewhere is a plain handover
        // (make-before-break, its old copy leaves once this one serves):
        // the rollout will not replace it, so waiting would only hold it
        // for the handover bound and then stop it unserved. After a
        // partition heal, where the split's extra copies fill any budget,
        // that stopped both sides' copies at once.
        return true;
    }
    let (surge, _) = rc.update_strategy.resolve(rc.replicas);
    if surge == 0 {
        return true;
    }
    occupied(rc, view) < u64::from(rc.replicas) + u64::from(surge)
}

/// True while surge pods are still needed: some replica lacks an available
/// pod of the current template.
pub fn surge_needed(rc: &RcSpec, current: TemplateHash, view: &RcView) -> bool {
    !(0..rc.replicas).all(|j| updated_and_available(view, current, j))
}

/// The template a stalled rollout of `rc` returns to when it asks for
/// auto-rollback: the newest earlier template (history is newest first).
pub fn rollback_template<'h>(rc: &RcSpec, history: &'h [Revision]) -> Option<&'h PodTemplate> {
    if !rc.update_strategy.auto_rollback {
        return None;
    }
    history
        .iter()
        .map(|rev| &rev.template)
        .find(|t| **t != rc.template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_crdt_state::spec::{Allowance, ContainerSpec, PodTemplate, UpdateStrategy};

    fn rc(replicas: u32, surge: Allowance, unavailable: Allowance) -> RcSpec {
        RcSpec {
            name: "web".into(),
            replicas,
            selector: BTreeMap::new(),
            template: PodTemplate {
                labels: BTreeMap::new(),
                containers: vec![ContainerSpec::new("main", "web:2")],
                node_selector: BTreeMap::new(),
                restart_policy: Default::default(),
                termination_grace_period_secs: 1,
            },
            update_strategy: UpdateStrategy {
                max_surge: surge,
                max_unavailable: unavailable,
                ..UpdateStrategy::default()
            },
            partition_policy: Default::default(),
            paused: false,
        }
    }

    const OLD: TemplateHash = TemplateHash(1);
    const NEW: TemplateHash = TemplateHash(2);

    /// `pods[i]` = (template, available) of index i; `None` = no pod.
    fn view(pods: &[Option<(TemplateHash, bool)>]) -> RcView {
        let mut v = RcView::default();
        for (i, p) in pods.iter().enumerate() {
            if let Some((template_hash, available)) = p {
                let pod = PodView {
                    template_hash: *template_hash,
                    serving: *available,
                    available: *available,
                    live: true,
                };
                v.push(i as u32, pod, None, NEW);
            }
        }
        v
    }

    /// The outdated pods the gate lets go now (plan asks only for those).
    fn replaceable(rc: &RcSpec, v: &RcView) -> Vec<u32> {
        let end = rc.replicas + rc.update_strategy.resolve(rc.replicas).0;
        (0..end)
            .filter(|i| outdated(v, NEW, *i) && may_replace(rc, NEW, v, *i, true))
            .collect()
    }

    #[test]
    fn with_surge_and_no_unavailability_nothing_moves_before_the_surge_pod_is_available() {
        let rc = rc(4, Allowance::Count(1), Allowance::Count(0));
        let old = Some((OLD, true));
        let all_old = view(&[old, old, old, old]);
        assert!(replaceable(&rc, &all_old).is_empty());
        assert!(may_start_surge(&rc, NEW, &all_old, 4));
        assert!(!may_start_surge(&rc, NEW, &all_old, 5), "only one slot");
        let starting = view(&[old, old, old, old, Some((NEW, false))]);
        assert!(replaceable(&rc, &starting).is_empty());
        assert!(!may_start_surge(&rc, NEW, &starting, 4), "already running");
        let surged = view(&[old, old, old, old, Some((NEW, true))]);
        assert_eq!(
            replaceable(&rc, &surged),
            [0],
            "one replica, in index order"
        );
    }

    #[test]
    fn a_replaced_replica_holds_the_next_until_its_new_pod_is_available() {
        let rc = rc(4, Allowance::Count(1), Allowance::Count(0));
        let (old, surge) = (Some((OLD, true)), Some((NEW, true)));
        let restarting = view(&[Some((NEW, false)), old, old, old, surge]);
        assert!(replaceable(&rc, &restarting).is_empty());
        let done = view(&[Some((NEW, true)), old, old, old, surge]);
        assert_eq!(replaceable(&rc, &done), [1]);
        assert!(surge_needed(&rc, NEW, &done));
        let all_new = view(&[surge, surge, surge, surge, surge]);
        assert!(
            !surge_needed(&rc, NEW, &all_new),
            "the surge leaves at the end"
        );
        assert!(!may_start_surge(&rc, NEW, &all_new, 4));
    }

    #[test]
    fn percentages_resolve_like_kubernetes_and_bound_both_sides() {
        // 10 replicas, 25%/25%: surge 3 (rounded up), unavailable 2 (down).
        let rc = rc(10, Allowance::Percent(25), Allowance::Percent(25));
        let old = Some((OLD, true));
        let mut pods = vec![old; 10];
        assert_eq!(replaceable(&rc, &view(&pods)), [0, 1], "2 unavailable");
        let starts: Vec<u32> = (10..14)
            .filter(|i| may_start_surge(&rc, NEW, &view(&pods), *i))
            .collect();
        assert_eq!(starts, [10, 11, 12], "3 surge slots");
        pods.extend([Some((NEW, true)); 3]);
        assert_eq!(replaceable(&rc, &view(&pods)), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_down_replica_may_always_be_replaced_and_a_crowd_blocks_the_surge() {
        let rc = rc(3, Allowance::Count(1), Allowance::Count(0));
        let old = Some((OLD, true));
        let v = view(&[old, Some((OLD, false)), old]);
        assert_eq!(replaceable(&rc, &v), [1]);
        // A handover leaves two pods of replica 0: already at replicas + surge.
        let mut crowded = view(&[old, old, old]);
        crowded.push(
            0,
            PodView {
                template_hash: OLD,
                serving: true,
                available: true,
                live: true,
            },
            None,
            NEW,
        );
        assert!(!may_start_surge(&rc, NEW, &crowded, 3));
    }

    #[test]
    fn a_stalled_new_pod_stops_the_rollout_and_only_the_current_template_counts() {
        let rc = rc(4, Allowance::Count(1), Allowance::Count(1));
        let old = Some((OLD, true));
        let mut v = view(&[old, old, old, old]);
        let stuck = PodView {
            template_hash: NEW,
            serving: false,
            available: false,
            live: true,
        };
        v.push(
            4,
            stuck,
            Some("pod web-4 not ready after 30s: image: not found"),
            NEW,
        );
        assert_eq!(
            stopped(&v),
            Some("pod web-4 not ready after 30s: image: not found")
        );
        assert!(replaceable(&rc, &v).is_empty(), "old replicas keep serving");
        assert!(!may_start_surge(&rc, NEW, &v, 4));

        let mut rolled_back = view(&[old, old, old, old]);
        rolled_back.push(4, stuck, Some("an older rollout's stall"), OLD);
        assert_eq!(stopped(&rolled_back), None);
    }

    #[test]
    fn a_pod_serving_but_not_yet_min_ready_is_not_replaced_for_free() {
        let rc = rc(2, Allowance::Count(0), Allowance::Count(1));
        let mut v = view(&[None, Some((OLD, true))]);
        let warming = PodView {
            template_hash: OLD,
            serving: true,
            available: false,
            live: true,
        };
        v.push(0, warming, None, NEW);
        assert!(!may_replace(&rc, NEW, &v, 0, true), "1 available, floor 1");
        assert!(
            !may_replace(&rc, NEW, &v, 1, true),
            "replacing 1 would leave 0"
        );
    }

    #[test]
    fn without_a_placed_surge_slot_one_replica_moves_in_place() {
        let rc = rc(3, Allowance::Count(1), Allowance::Count(0));
        let old = Some((OLD, true));
        let v = view(&[old, old, old]);
        assert!(!may_replace(&rc, NEW, &v, 0, true), "waits for the surge");
        assert!(may_replace(&rc, NEW, &v, 0, false));
        assert!(!may_replace(&rc, NEW, &v, 1, false), "one at a time");
    }

    #[test]
    fn a_slot_still_running_elsewhere_or_a_lingering_old_copy_starts_no_surge() {
        let rc = rc(3, Allowance::Count(1), Allowance::Count(0));
        let old = Some((OLD, true));
        // Slot 3 moved: its pod still runs on the node it started on.
        let moved = view(&[old, old, old, Some((NEW, true))]);
        assert!(!may_start_surge(&rc, NEW, &moved, 3));
        // Every replica has an available new pod; replica 2's old copy is
        // still being handed over.
        let new = Some((NEW, true));
        let mut lingering = view(&[new, new, new]);
        lingering.push(
            2,
            PodView {
                template_hash: OLD,
                serving: true,
                available: true,
                live: true,
            },
            None,
            NEW,
        );
        assert!(!surge_needed(&rc, NEW, &lingering));
        assert!(!may_start_surge(&rc, NEW, &lingering, 3));
    }

    #[test]
    fn a_moving_replica_starts_only_within_the_surge_budget() {
        let rc = rc(4, Allowance::Count(1), Allowance::Count(1));
        let (old, new) = (Some((OLD, true)), Some((NEW, true)));
        // Replica 1's old copy drains on the node that lost it; the surge
        // slot runs: 5 pods already, the new owner waits.
        let full = view(&[new, Some((OLD, false)), old, old, new]);
        assert!(!may_start_move(&rc, NEW, &full, 1));
        // Without the surge pod there is room for the move.
        let room = view(&[new, Some((OLD, false)), old, old]);
        assert!(may_start_move(&rc, NEW, &room, 1));
        // No copy elsewhere (its node died): nothing to wait for.
        let lost = view(&[new, None, old, old, new]);
        assert!(may_start_move(&rc, NEW, &lost, 1));
        // Replica 2 is between the stop and the start of its in-place
        // replacement: it holds its place, so neither the move nor a
        // surge pod takes it (rollout-crash seed 33 ran 14 of 13).
        let replacing = view(&[new, Some((OLD, false)), None, old]);
        assert!(
            may_start_move(&rc, NEW, &replacing, 1),
            "4 places + the move = 5"
        );
        let mut moving = replacing.clone();
        moving.push(
            1,
            PodView {
                template_hash: NEW,
                serving: false,
                available: false,
                live: true,
            },
            None,
            NEW,
        );
        assert!(!may_start_surge(&rc, NEW, &moving, 4), "5 already");
    }

    #[test]
    fn an_outdated_copy_whose_replica_a_current_copy_serves_elsewhere_goes_at_once() {
        // After a heal: every replica serves its outdated copy on its owner
        // and a current copy on the side that lost it. Nothing unavailable,
        // no surge pod: the floor leaves no slot, yet replacing an outdated
        // copy takes no replica out of service.
        let rc = rc(4, Allowance::Count(1), Allowance::Count(0));
        let old = Some((OLD, true));
        let current = |available| PodView {
            template_hash: NEW,
            serving: true,
            available,
            live: true,
        };
        let mut healed = view(&[old, old, old, old]);
        for i in [1, 2] {
            healed.push(i, current(true), None, NEW);
        }
        assert_eq!(replaceable(&rc, &healed), [1, 2]);
        // Such a replica takes no rank from the others: with one slot (a
        // surge pod), replica 0 and the doubled ones go, replica 3 waits.
        let mut surged = healed.clone();
        surged.push(4, current(true), None, NEW);
        assert_eq!(replaceable(&rc, &surged), [0, 1, 2]);
        // A current copy that is not yet available does not count.
        let mut warming = view(&[old, old, old, old]);
        warming.push(1, current(false), None, NEW);
        assert!(replaceable(&rc, &warming).is_empty());
    }

    #[test]
    fn slots_follow_the_resolved_surge() {
        let rc = rc(4, Allowance::Percent(50), Allowance::Count(0));
        let slots: Vec<Slot> = (3..7).map(|i| slot_of(&rc, i)).collect();
        assert_eq!(
            slots,
            [Slot::Replica, Slot::Surge, Slot::Surge, Slot::Undeclared]
        );
    }
}
