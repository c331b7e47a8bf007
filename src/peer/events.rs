//! What a peer decided or saw, as values a person reads (`shoal get events`).
//!
//! The core emits one [`EventRecord`] per decision or observation worth
//! telling (`Output::Event(PeerEvent::Recorded(..))`), stamped with the `now`
//! it was given; it keeps none of them. The shell stores them (bounded,
//! deduplicated) and serves them: see `shell/events`.
//!
//! Some records are *cluster-wide*: every peer derives them alike from the
//! same replicated inputs (a node going down, a replica that fits nowhere).
//! When the events of several peers are merged, those collapse into one row
//! instead of one per peer; the others belong to the peer that acted.

use shoal_crdt_state::pod::PodId;
use shoal_runtime::vocabulary::{PodEvent, PodObservation};

use crate::reconcile::{LocalPod, LocalState};

/// kubectl's two event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The kinds of objects an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    ReplicationController,
    Pod,
    Node,
    Service,
}

impl ObjectKind {
    /// Kubernetes' `involvedObject.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ReplicationController => "ReplicationController",
            ObjectKind::Pod => "Pod",
            ObjectKind::Node => "Node",
            ObjectKind::Service => "Service",
        }
    }

    /// The short form `--for` and the OBJECT column use (`rc/hello`).
    pub fn short(self) -> &'static str {
        match self {
            ObjectKind::ReplicationController => "rc",
            ObjectKind::Pod => "pod",
            ObjectKind::Node => "node",
            ObjectKind::Service => "svc",
        }
    }
}

/// One thing that happened, at `at_ms` (the `now` of the input that caused it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub at_ms: u64,
    pub kind: EventType,
    /// One CamelCase word, as kubectl shows (`BackOff`, `Killing`).
    pub reason: &'static str,
    pub object: ObjectKind,
    pub name: String,
    /// Stable wording: repeats of one event have the same message, so the
    /// store counts them (`x3 over 2m`) instead of keeping each.
    pub message: String,
    /// When a back-off ends (ms): shown with the message, not part of it.
    pub next_retry_ms: Option<u64>,
    /// Every peer records it alike (see the module docs).
    pub cluster_wide: bool,
}

impl EventRecord {
    pub fn new(
        at_ms: u64,
        kind: EventType,
        reason: &'static str,
        (object, name): (ObjectKind, String),
        message: String,
    ) -> EventRecord {
        EventRecord {
            at_ms,
            kind,
            reason,
            object,
            name,
            message,
            next_retry_ms: None,
            cluster_wide: false,
        }
    }

    pub fn cluster_wide(mut self) -> EventRecord {
        self.cluster_wide = true;
        self
    }
}

pub fn pod(id: &PodId) -> (ObjectKind, String) {
    (ObjectKind::Pod, id.to_string())
}

pub fn rc(name: &str) -> (ObjectKind, String) {
    (ObjectKind::ReplicationController, name.to_owned())
}

pub fn node(name: &str) -> (ObjectKind, String) {
    (ObjectKind::Node, name.to_owned())
}

pub fn service(name: &str) -> (ObjectKind, String) {
    (ObjectKind::Service, name.to_owned())
}

/// What an observation of the runtime is worth telling, given the pod's
/// bookkeeping before and after it: a fact that changed, not a repeat.
pub fn from_observation(
    at_ms: u64,
    obs: &PodObservation,
    before: Option<&LocalPod>,
    after: Option<&LocalPod>,
) -> Option<EventRecord> {
    use EventType::{Normal, Warning};
    // Observations of another template, or of a pod being stopped, change
    // nothing the user asked for.
    let after = after.filter(|l| l.template_hash == obs.template_hash)?;
    if after.state == LocalState::Stopping {
        return None;
    }
    let was = |state: LocalState| before.is_some_and(|b| b.state == state);
    let record = |kind, reason, message: String| {
        Some(EventRecord::new(
            at_ms,
            kind,
            reason,
            pod(&obs.pod),
            message,
        ))
    };
    match &obs.event {
        PodEvent::Preparing(what) => {
            // Progress repeats every few seconds: tell only what started.
            let first_word = |s: &str| s.split_whitespace().next().map(str::to_owned);
            let before_kind = before.and_then(|b| b.preparing.as_deref().and_then(first_word));
            if before_kind == first_word(what) {
                return None;
            }
            // A holder that failed mid-stream is told even when another
            // one then delivers (the pod's error says only the last word).
            if let Some(rest) = what.strip_prefix("ImageTransferFailed ") {
                return record(
                    Warning,
                    "TransferFailed",
                    format!("Image transfer failed {rest}"),
                );
            }
            // Waiting for a holder's announcement is part of the transfer.
            let reason =
                if what.starts_with("ImageTransferring") || what.starts_with("ImageWaiting") {
                    "Transferring"
                } else {
                    "Pulling"
                };
            record(Normal, reason, what.clone())
        }
        PodEvent::Running { .. } if !was(LocalState::Running) => {
            record(Normal, "Started", "Started the pod's containers".into())
        }
        PodEvent::Ready(false) if before.is_some_and(|b| b.ready) => record(
            Warning,
            "Unhealthy",
            "Readiness probe failed: the pod left its services' endpoints".into(),
        ),
        PodEvent::Exited { code, oom_killed } if !was(LocalState::Exited) => {
            let message = if *oom_killed {
                format!("Container killed: out of memory (OOMKilled, exit code {code})")
            } else {
                format!("Container exited with code {code}")
            };
            let kind = if *code == 0 && !oom_killed {
                Normal
            } else {
                Warning
            };
            record(kind, "Exited", message)
        }
        PodEvent::ImageError(msg) if !was(LocalState::Exited) => record(
            Warning,
            "Failed",
            format!("Failed to get image: {}", without_countdown(msg)),
        ),
        PodEvent::StartError(msg) if !was(LocalState::Exited) => record(
            Warning,
            "Failed",
            format!("Failed to start: {}", without_countdown(msg)),
        ),
        _ => None,
    }
}

/// `msg` without the runtime's countdown (`... (back-off: next pull of X
/// in 0.9s)`), which differs at every repeat and would defeat counting.
pub fn without_countdown(msg: &str) -> &str {
    match msg.find(" (back-off: ") {
        Some(at) if msg.ends_with(')') => &msg[..at],
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_crdt_state::spec::TemplateHash;

    fn obs(event: PodEvent) -> PodObservation {
        PodObservation {
            pod: PodId {
                rc: "hello".into(),
                index: 0,
            },
            template_hash: TemplateHash(7),
            event,
        }
    }

    fn local(state: LocalState) -> LocalPod {
        let mut l = LocalPod::starting(TemplateHash(7), 1);
        l.state = state;
        l
    }

    #[test]
    fn a_pull_is_told_once_however_often_its_progress_repeats() {
        let starting = local(LocalState::Starting);
        let mut pulling = starting.clone();
        pulling.preparing = Some("ImagePulling shoal-test/hello:1.0".into());
        let first = from_observation(
            5,
            &obs(PodEvent::Preparing(
                "ImagePulling shoal-test/hello:1.0".into(),
            )),
            Some(&starting),
            Some(&pulling),
        )
        .unwrap();
        assert_eq!((first.reason, first.name.as_str()), ("Pulling", "hello-0"));
        let again = from_observation(
            6,
            &obs(PodEvent::Preparing("ImagePulling 40%".into())),
            Some(&pulling),
            Some(&pulling),
        );
        assert_eq!(again, None);
    }

    #[test]
    fn a_failed_transfer_is_a_warning_and_the_next_holder_is_told_again() {
        let mut transferring = local(LocalState::Starting);
        transferring.preparing = Some("ImageTransferring from node0 (3.0 MB)".into());
        let mut failed = transferring.clone();
        let what = "ImageTransferFailed from node0: connection lost";
        failed.preparing = Some(what.into());
        let told = from_observation(
            5,
            &obs(PodEvent::Preparing(what.into())),
            Some(&transferring),
            Some(&failed),
        )
        .unwrap();
        assert_eq!(told.reason, "TransferFailed");
        assert_eq!(told.kind, EventType::Warning);
        assert!(
            told.message.contains("node0: connection lost"),
            "{}",
            told.message
        );
        let mut again = failed.clone();
        again.preparing = Some("ImageTransferring from node1".into());
        let next = from_observation(
            6,
            &obs(PodEvent::Preparing("ImageTransferring from node1".into())),
            Some(&failed),
            Some(&again),
        )
        .unwrap();
        assert_eq!(next.reason, "Transferring");
    }

    #[test]
    fn waiting_for_a_holder_is_part_of_the_transfer_and_the_holder_is_told_after() {
        let starting = local(LocalState::Starting);
        let mut waiting = starting.clone();
        let what = "ImageWaiting for a peer to announce shoal-test/hello:1.0";
        waiting.preparing = Some(what.into());
        let told = from_observation(
            5,
            &obs(PodEvent::Preparing(what.into())),
            Some(&starting),
            Some(&waiting),
        )
        .unwrap();
        assert_eq!(told.reason, "Transferring");
        let mut transferring = waiting.clone();
        transferring.preparing = Some("ImageTransferring from node0".into());
        let next = from_observation(
            6,
            &obs(PodEvent::Preparing("ImageTransferring from node0".into())),
            Some(&waiting),
            Some(&transferring),
        )
        .unwrap();
        assert_eq!(
            (next.reason, next.message.as_str()),
            ("Transferring", "ImageTransferring from node0")
        );
    }

    #[test]
    fn an_image_error_is_a_warning_and_its_repeat_while_down_is_not_told() {
        let starting = local(LocalState::Starting);
        let down = local(LocalState::Exited);
        let e = obs(PodEvent::ImageError("no such image".into()));
        let told = from_observation(1, &e, Some(&starting), Some(&down)).unwrap();
        assert_eq!((told.kind, told.reason), (EventType::Warning, "Failed"));
        assert!(told.message.contains("no such image"), "{}", told.message);
        let counting = obs(PodEvent::ImageError(
            "no such image (back-off: next pull of x:1 in 0.9s)".into(),
        ));
        let repeat = from_observation(3, &counting, Some(&starting), Some(&down)).unwrap();
        assert_eq!(repeat.message, told.message);
        assert_eq!(from_observation(2, &e, Some(&down), Some(&down)), None);
    }

    #[test]
    fn observations_of_a_stopping_pod_or_another_template_tell_nothing() {
        let stopping = local(LocalState::Stopping);
        let e = obs(PodEvent::Exited {
            code: 137,
            oom_killed: false,
        });
        assert_eq!(
            from_observation(1, &e, Some(&stopping), Some(&stopping)),
            None
        );
        let mut other = local(LocalState::Exited);
        other.template_hash = TemplateHash(8);
        assert_eq!(from_observation(1, &e, None, Some(&other)), None);
    }
}
