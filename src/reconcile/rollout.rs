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
//! - one that is not available may be replaced at once (costs nothing);
//! - surge slot `k` starts only while an outdated replica remains and the
//!   RC's pods plus the empty slots before `k` stay below
//!   `replicas + surge`: running never exceeds `replicas + surge`;
//! - a slot keeps its pod while some replica lacks an available pod of the
//!   new template.
//!
//! **Stop on failure.** The node running a pod of the current template
//! that is not ready `progressDeadlineSeconds` after its start reports it
//! `stalled` with the reason. Every peer reading that report stops
//! starting surge pods and replacing replicas (the old ones keep serving):
//! the decision depends only on replicated reports, so peers agree on it
//! without comparing clocks. [`stopped`] gives the reason to show.
//!
//! **Views.** With the same view everywhere the bounds hold at every
//! instant. Views that lag each other (gossip delay) can let the rollout
//! run ahead by the decisions taken on stale views, and each peer's own
//! pods are always current in its view. It never deadlocks: every input it
//! waits on is eventually reported.

use std::collections::BTreeMap;

use shoal_crdt_state::spec::{RcSpec, TemplateHash};

/// One pod of a replica somewhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodView {
    pub template_hash: TemplateHash,
    /// Running, ready for `minReadySeconds`, not draining.
    pub available: bool,
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
/// replace its outdated pod now.
pub fn may_replace(rc: &RcSpec, current: TemplateHash, view: &RcView, index: u32) -> bool {
    if stopped(view).is_some() || slot_of(rc, index) == Slot::Undeclared {
        return false;
    }
    if !available(view, index) {
        return true;
    }
    let (surge, unavailable) = rc.update_strategy.resolve(rc.replicas);
    let end = rc.replicas.saturating_add(surge);
    let serving = (0..end).filter(|j| available(view, *j)).count() as u64;
    let floor = u64::from(rc.replicas.saturating_sub(unavailable));
    let slots = serving.saturating_sub(floor);
    let rank = (0..index)
        .filter(|j| available(view, *j) && outdated(view, current, *j))
        .count() as u64;
    rank < slots
}

/// True when surge slot `index` may start a pod of the current template.
pub fn may_start_surge(rc: &RcSpec, current: TemplateHash, view: &RcView, index: u32) -> bool {
    if stopped(view).is_some() || slot_of(rc, index) != Slot::Surge {
        return false;
    }
    let rolling = (0..rc.replicas).any(|j| outdated(view, current, j));
    if !rolling {
        return false;
    }
    let (surge, _) = rc.update_strategy.resolve(rc.replicas);
    let pods: u64 = view.pods.values().map(|p| p.len() as u64).sum();
    let empty_before = (rc.replicas..index)
        .filter(|j| !view.pods.contains_key(j))
        .count() as u64;
    pods + empty_before < u64::from(rc.replicas) + u64::from(surge)
}

/// True while surge pods are still needed: some replica lacks an available
/// pod of the current template.
pub fn surge_needed(rc: &RcSpec, current: TemplateHash, view: &RcView) -> bool {
    !(0..rc.replicas).all(|j| updated_and_available(view, current, j))
}
