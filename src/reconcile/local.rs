//! What this node runs or is starting: the reconciler's own bookkeeping.
//!
//! Fed by the runtime's observations ([`LocalPods::handle_observation`]) and,
//! once at start-up, by the pods found on the engine ([`LocalPods::adopt`]).
//! [`super::plan`] reads it and records the actions it issues, so calling
//! `plan` again before the runtime answers never issues an action twice.

use std::collections::BTreeMap;

use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus, PublishedPort};
use shoal_crdt_state::spec::TemplateHash;
use shoal_runtime::vocabulary::{ExistingPod, PodEvent, PodObservation};

/// Where a local pod is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    /// Start issued (or containers created), not yet running.
    Starting,
    Running,
    /// Down: exited, or failed to start. Restarted per policy and back-off.
    Exited,
    /// Stop issued; the entry goes away when the runtime reports `Removed`.
    Stopping,
}

/// Why the last run ended: decides `OnFailure` restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit or OOM kill.
    Failed,
    /// Image missing or the engine refused to create/start: always retried.
    StartFailed,
}

/// One pod this node runs, started, or is stopping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    /// Template version the pod runs (or is starting with).
    pub template_hash: TemplateHash,
    pub state: LocalState,
    /// Last readiness the runtime reported; false whenever not running.
    pub ready: bool,
    /// Restarts issued for this replica on this node (shown by `get pods`).
    pub restarts: u32,
    /// Exits since the pod last stayed up for the back-off's `reset_after`.
    pub consecutive_failures: u32,
    /// Why the last run ended or failed to start; cleared once the pod has
    /// been ready for the back-off's `reset_after` (its crashes forgiven).
    pub last_error: Option<String>,
    /// When it last became ready, while it still is (the clock that
    /// clears `last_error`).
    pub ready_since: Option<u64>,
    /// What the runtime is doing before the start (see `PodEvent::Preparing`).
    pub preparing: Option<String>,
    /// How the last run ended, while `state` is `Exited`.
    pub last_exit: Option<ExitKind>,
    /// When it last reached running (to forgive a pod that stayed up).
    pub running_since: Option<u64>,
    pub exited_at: Option<u64>,
    /// Back-off expiry, set by `plan` when it decides to restart.
    pub next_restart_at: Option<u64>,
    /// When placement first gave this replica to another node (handover clock).
    pub moved_away_at: Option<u64>,
    /// When this peer first saw the new owner serve it (drain clock).
    pub successor_serves_at: Option<u64>,
    /// When `plan` decided to stop this pod while it served (scale-down,
    /// rollout): from then it reports `Terminating` and not ready, so every
    /// peer's load balancer drops it, and the stop follows the drain delay.
    pub draining_since: Option<u64>,
    /// When the last stop was issued, while `Stopping` (retry clock).
    pub stop_issued_at: Option<u64>,
    /// Grace period of the template it was started with, if known.
    pub grace_secs: Option<u32>,
    /// Host ports the pod publishes: those its template asks for while it
    /// starts, those the runtime bound once running, kept while it waits
    /// to restart (placement holds them for it), dropped when the engine
    /// refused the start (it never got them).
    pub ports: Vec<PublishedPort>,
    /// Found running on the engine at start-up and not yet handed to the
    /// runtime, which must take it over (watch it, probe its readiness).
    pub unattached: bool,
    /// When this template's pod was first started here (restarts keep it):
    /// the progress deadline runs from it.
    pub started_at: Option<u64>,
    /// Ready for the RC's `minReadySeconds` (set by `plan`, which has the clock).
    pub min_ready_met: bool,
    /// Not ready within the progress deadline, and why (set by `plan`).
    pub stalled: Option<String>,
    /// The current template `plan` last saw this pod outdated against:
    /// a different one later means the template changed mid-rollout.
    /// Cleared once the pod runs the current template again (an undo).
    pub outdated_against: Option<TemplateHash>,
    /// When `plan` saw the current template change under a rollout in
    /// progress (a rollback, `rollout undo`, or a second rolling update),
    /// which peers that have not seen it yet still roll the other way:
    /// the pod stays until then plus `move_settle_ms`.
    pub changed_mid_rollout_at: Option<u64>,
}

impl LocalPod {
    pub fn starting(template_hash: TemplateHash, grace_secs: u32) -> Self {
        LocalPod {
            template_hash,
            state: LocalState::Starting,
            ready: false,
            restarts: 0,
            consecutive_failures: 0,
            last_error: None,
            ready_since: None,
            preparing: None,
            last_exit: None,
            running_since: None,
            exited_at: None,
            next_restart_at: None,
            moved_away_at: None,
            successor_serves_at: None,
            draining_since: None,
            stop_issued_at: None,
            grace_secs: Some(grace_secs),
            ports: Vec::new(),
            unattached: false,
            started_at: None,
            min_ready_met: false,
            stalled: None,
            outdated_against: None,
            changed_mid_rollout_at: None,
        }
    }

    /// Available and ready for `minReadySeconds`: what a rollout counts.
    pub fn rollout_available(&self) -> bool {
        self.available() && self.min_ready_met
    }

    /// Running, ready and not draining: counts as available.
    pub fn available(&self) -> bool {
        self.state == LocalState::Running && self.ready && self.draining_since.is_none()
    }

    /// The status this node reports for the pod; `claim` is the fingerprint
    /// of this node's placement when it gives the node the replica.
    pub fn status(&self, id: &PodId, image: &str, claim: Option<u64>) -> PodStatus {
        let phase = match (self.state, self.last_exit) {
            (LocalState::Starting, _) => PodPhase::Pending,
            (LocalState::Running, _) if self.draining_since.is_some() => PodPhase::Terminating,
            (LocalState::Running, _) => PodPhase::Running,
            (LocalState::Stopping, _) => PodPhase::Terminating,
            (LocalState::Exited, _) if self.next_restart_at.is_some() => PodPhase::BackOff,
            (LocalState::Exited, Some(ExitKind::Succeeded)) => PodPhase::Succeeded,
            (LocalState::Exited, _) => PodPhase::Failed,
        };
        PodStatus {
            id: id.clone(),
            template_hash: self.template_hash,
            image: image.to_owned(),
            phase,
            ready: self.available(),
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            preparing: self
                .preparing
                .clone()
                .filter(|_| self.state == LocalState::Starting),
            ports: self.ports.clone(),
            claim,
            available: self.rollout_available(),
            stalled: self.stalled.clone(),
            started_ms: self.started_at,
        }
    }
}

/// Every pod of this node, by replica, plus strays to stop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPods {
    pods: BTreeMap<PodId, LocalPod>,
    /// Pods found on the engine that duplicate a tracked replica (a second
    /// template of the same replica): `plan` stops them.
    pub(super) strays: Vec<(PodId, TemplateHash)>,
    /// Replicas and surge slots a placement change moved here from a node
    /// that is still up, with when (ms): `plan` starts none before
    /// `move_settle_ms` has passed.
    moved_in: BTreeMap<PodId, u64>,
}

impl LocalPods {
    pub fn new() -> Self {
        LocalPods::default()
    }

    pub fn get(&self, pod: &PodId) -> Option<&LocalPod> {
        self.pods.get(pod)
    }

    pub(super) fn get_mut(&mut self, pod: &PodId) -> Option<&mut LocalPod> {
        self.pods.get_mut(pod)
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&PodId, &mut LocalPod)> + '_ {
        self.pods.iter_mut()
    }

    pub(super) fn insert(&mut self, pod: PodId, local: LocalPod) {
        self.pods.insert(pod, local);
    }

    /// Placement moved replica or surge slot `pod` here at `now` (ms) from
    /// a node that is still up. That node may have started (or begun to
    /// replace) its pod a moment ago, and its report may not be here yet:
    /// starting at once could run the pod twice, one copy over `replicas +
    /// maxSurge`. (A pod of a node that went down moves without waiting.)
    pub fn moved_in(&mut self, pod: PodId, now: u64) {
        self.moved_in.insert(pod, now);
    }

    /// When `pod` may start here: `settle_ms` after its move here, or now;
    /// forgets moves older than that.
    pub(super) fn settled_at(&mut self, pod: &PodId, now: u64, settle_ms: u64) -> u64 {
        self.moved_in
            .retain(|_, at| now < at.saturating_add(settle_ms));
        self.moved_in
            .get(pod)
            .map_or(now, |at| at.saturating_add(settle_ms))
    }

    /// Running pods adopted at start-up that the runtime does not watch yet.
    pub fn unattached(&self) -> impl Iterator<Item = (PodId, TemplateHash)> + '_ {
        self.pods
            .iter()
            .filter(|(_, l)| l.unattached && l.state == LocalState::Running)
            .map(|(id, l)| (id.clone(), l.template_hash))
    }

    /// The runtime was asked to take `pod` over.
    pub fn mark_attached(&mut self, pod: &PodId) {
        if let Some(l) = self.pods.get_mut(pod) {
            l.unattached = false;
        }
    }

    /// Every local pod in `PodId` order.
    pub fn iter(&self) -> impl Iterator<Item = (&PodId, &LocalPod)> + '_ {
        self.pods.iter()
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Take over the pods found on the engine at start-up (listed by Shoal's
    /// labels). A replica already tracked, or listed twice, is never started
    /// again: the first copy is kept and any other template of it is queued
    /// for a stop. Readiness starts false until the runtime re-probes: a
    /// running one stays [`LocalPod::unattached`] until the peer hands it
    /// to the runtime.
    pub fn adopt(&mut self, existing: &[ExistingPod]) {
        for e in existing {
            match self.pods.get(&e.pod) {
                Some(known) if known.template_hash == e.template_hash => {}
                Some(_) => self.strays.push((e.pod.clone(), e.template_hash)),
                None => {
                    let mut local = LocalPod::starting(e.template_hash, 0);
                    local.grace_secs = None;
                    local.ports = e.ports.clone();
                    local.unattached = e.running;
                    local.state = if e.running {
                        LocalState::Running
                    } else {
                        local.last_exit = Some(ExitKind::Failed);
                        LocalState::Exited
                    };
                    self.pods.insert(e.pod.clone(), local);
                }
            }
        }
    }

    /// Record what the runtime saw. Observations about another template of
    /// a tracked replica are stale (that pod was stopped) and ignored; a pod
    /// the node did not know about is taken over, as in [`Self::adopt`].
    pub fn handle_observation(&mut self, now: u64, obs: &PodObservation) {
        let Some(local) = self.pods.get_mut(&obs.pod) else {
            self.observe_unknown(now, obs);
            return;
        };
        if local.template_hash != obs.template_hash {
            return;
        }
        match &obs.event {
            PodEvent::Removed => {
                self.pods.remove(&obs.pod);
            }
            _ if local.state == LocalState::Stopping => {}
            PodEvent::Preparing(what) => {
                if local.state == LocalState::Starting {
                    local.preparing = Some(what.clone());
                }
            }
            PodEvent::Created => {
                local.state = LocalState::Starting;
                local.preparing = None;
            }
            PodEvent::Running { ports } => {
                local.state = LocalState::Running;
                local.preparing = None;
                local.ports = ports.clone();
                local.running_since = Some(now);
                local.exited_at = None;
                local.next_restart_at = None;
                local.last_exit = None;
            }
            PodEvent::Ready(ready) => {
                local.ready = *ready && local.state == LocalState::Running;
                local.ready_since = local.ready.then(|| local.ready_since.unwrap_or(now));
                if !local.ready {
                    local.min_ready_met = false;
                }
            }
            PodEvent::Exited { code, oom_killed } => {
                let (kind, error) = match (*code, *oom_killed) {
                    (_, true) => (ExitKind::Failed, format!("OOMKilled (exit code {code})")),
                    (0, false) => (ExitKind::Succeeded, "exited with code 0".to_owned()),
                    (c, false) => (ExitKind::Failed, format!("exited with code {c}")),
                };
                record_down(local, now, kind, error);
            }
            PodEvent::ImageError(msg) => {
                record_down(local, now, ExitKind::StartFailed, format!("image: {msg}"));
            }
            PodEvent::StartError(msg) => {
                if local.state != LocalState::Exited {
                    local.ports.clear();
                }
                record_down(local, now, ExitKind::StartFailed, format!("start: {msg}"));
            }
        }
    }

    fn observe_unknown(&mut self, now: u64, obs: &PodObservation) {
        let state = match &obs.event {
            PodEvent::Removed | PodEvent::Ready(_) | PodEvent::Preparing(_) => return,
            PodEvent::Created => LocalState::Starting,
            PodEvent::Running { .. } => LocalState::Running,
            PodEvent::Exited { .. } | PodEvent::ImageError(_) | PodEvent::StartError(_) => {
                LocalState::Exited
            }
        };
        let mut local = LocalPod::starting(obs.template_hash, 0);
        local.grace_secs = None;
        self.pods.insert(obs.pod.clone(), local);
        if state != LocalState::Starting {
            // Replays the event on the fresh entry so exits are counted alike.
            self.handle_observation(now, obs);
        }
    }
}

/// The pod went down: count the failure (forgiving a long run first).
fn record_down(local: &mut LocalPod, now: u64, kind: ExitKind, error: String) {
    if local.state == LocalState::Exited {
        return;
    }
    local.state = LocalState::Exited;
    local.preparing = None;
    local.ready = false;
    local.ready_since = None;
    local.min_ready_met = false;
    local.exited_at = Some(now);
    local.last_exit = Some(kind);
    local.last_error = Some(error);
    local.consecutive_failures = local.consecutive_failures.saturating_add(1);
    local.next_restart_at = None;
}
