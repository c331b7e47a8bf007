//! The rolling-update gate: may the owner of replica i replace it now?
//!
//! **Mechanism.** A replica is replaced in place by its owner: stop the pod
//! of the old template, and once the runtime reports it removed, start the
//! pod of the new template under the same `PodId`. Two pods of one replica
//! never coexist on a node, so no surge pod identity is needed. Each
//! replacement therefore makes exactly one replica unavailable until the new
//! pod is ready.
//!
//! **Budget.** Every peer evaluates the same rule on the same cluster view
//! (each node's reported pods; this node's own from its local bookkeeping):
//!
//! - `budget = max(maxUnavailable, 1)`: with `maxUnavailable = 0` the surge
//!   allowance pays for one replica at a time (a rollout must make progress);
//! - `slots = budget − (replicas currently not available)`, where available
//!   means running and ready, and a replaced pod that is not ready yet counts
//!   as unavailable — this is the readiness gate;
//! - the available, not-yet-updated replicas are ranked by index and only
//!   the first `slots` may be replaced;
//! - a replica that is already down (crashed, starting) may be replaced at
//!   any time: it costs no availability;
//! - nothing is replaced while the RC has more than `replicas + maxSurge`
//!   pods cluster-wide (handovers or scale-downs still in flight).
//!
//! **Guarantee.** With the same view everywhere, at most `budget` replicas of
//! the RC are unavailable because of the rollout, replicas move to the new
//! template in index order, and the next one starts only when the previous
//! ones are ready. Views that lag each other (gossip delay) can let the
//! rollout briefly run ahead by the number of decisions taken on stale views;
//! it never deadlocks, since every input it waits on is eventually reported.

use std::collections::BTreeMap;

use shoal_crdt_state::spec::{RcSpec, TemplateHash};

/// One pod of a replica somewhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodView {
    pub template_hash: TemplateHash,
    /// Running and ready.
    pub available: bool,
}

/// All pods of one RC, by replica index, across the cluster.
pub type RcView = BTreeMap<u32, Vec<PodView>>;

/// True when the owner of replica `index` may replace its outdated pod now.
pub fn may_replace(rc: &RcSpec, current: TemplateHash, view: &RcView, index: u32) -> bool {
    let available = |j: u32| {
        view.get(&j)
            .is_some_and(|pods| pods.iter().any(|p| p.available))
    };
    let updated = |j: u32| {
        view.get(&j)
            .is_some_and(|pods| pods.iter().any(|p| p.template_hash == current))
    };
    let pods: u64 = view.values().map(|p| p.len() as u64).sum();
    if pods > u64::from(rc.replicas) + u64::from(rc.update_strategy.max_surge) {
        return false;
    }
    if index >= rc.replicas {
        return false;
    }
    if !available(index) {
        return true;
    }
    let budget = u64::from(rc.update_strategy.max_unavailable.max(1));
    let unavailable = (0..rc.replicas).filter(|j| !available(*j)).count() as u64;
    let slots = budget.saturating_sub(unavailable);
    let rank = (0..index).filter(|j| available(*j) && !updated(*j)).count() as u64;
    rank < slots
}
