//! Pod identity and the status a node reports for each pod it runs.

use serde::{Deserialize, Serialize};

use crate::spec::{Protocol, TemplateHash};

/// Replica `index` of RC `rc`: the unit placement assigns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodId {
    pub rc: String,
    pub index: u32,
}

impl std::fmt::Display for PodId {
    /// `hello-3`: the name `get pods` shows and `logs` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.rc, self.index)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, image or containers being prepared.
    Pending,
    Running,
    /// Exited and waiting for its back-off before a restart.
    BackOff,
    /// Exited, and the restart policy says not to restart.
    Succeeded,
    Failed,
    /// Being stopped (grace period running).
    Terminating,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::BackOff => "CrashLoopBackOff",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Terminating => "Terminating",
        }
    }
}

/// Why a pod whose image may not be fetched (`imagePullPolicy: Never`) is
/// not running, as Kubernetes says it; its last error starts with it.
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";

impl PodStatus {
    /// The status `get pods` shows: the phase, or for a pod backing off
    /// because its image may not be fetched, that reason (as kubectl does).
    pub fn status_text(&self) -> &str {
        let never_pull = self.last_error.as_deref().is_some_and(|e| {
            e.strip_prefix("image: ")
                .is_some_and(|e| e.starts_with(ERR_IMAGE_NEVER_PULL))
        });
        if self.phase == PodPhase::BackOff && never_pull {
            ERR_IMAGE_NEVER_PULL
        } else {
            self.phase.as_str()
        }
    }
}

/// One published port: what a client connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// What a node says about one pod it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodStatus {
    pub id: PodId,
    pub template_hash: TemplateHash,
    pub image: String,
    pub phase: PodPhase,
    pub ready: bool,
    pub restarts: u32,
    pub last_error: Option<String>,
    /// While pending: what is being done before the pod can start
    /// (`ImageTransferring from node2 (40 MB)`).
    pub preparing: Option<String>,
    pub ports: Vec<PublishedPort>,
    /// Set when the reporting node's placement gives it this replica: the
    /// fingerprint of that placement. A node hands a replica over only to a
    /// successor that runs it and claims it under the same placement as its
    /// own, so two nodes whose views briefly disagree (or whose reports are
    /// stale) never both stop their copies.
    pub claim: Option<u64>,
    /// Ready for the RC's `minReadySeconds`, and not leaving: what a
    /// rollout counts (the service endpoints use `ready`).
    pub available: bool,
    /// Set when this pod, of the RC's current template, was not ready
    /// within the progress deadline: why the rollout stopped.
    pub stalled: Option<String>,
    /// When this node started the pod of its current template (Unix ms;
    /// restarts keep it): the pod's age.
    pub started_ms: Option<u64>,
}
