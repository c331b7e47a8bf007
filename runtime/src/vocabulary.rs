//! What the peer core asks of a container runtime, and what it hears back.
//!
//! Pure data: the core emits [`PodAction`]s and consumes [`PodObservation`]s;
//! the Docker executor (feature `docker`) and the simulator's fake runtime
//! both speak exactly this.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::{PodId, PublishedPort};
use shoal_crdt_state::spec::{PodTemplate, TemplateHash};

/// Container labels that say who owns a container, so each peer manages only
/// its own even when several peers share one engine.
pub mod labels {
    pub const MANAGED: &str = "io.shoal.managed";
    pub const CLUSTER: &str = "io.shoal.cluster";
    pub const NODE: &str = "io.shoal.node";
    pub const RC: &str = "io.shoal.rc";
    pub const REPLICA: &str = "io.shoal.replica";
    pub const TEMPLATE: &str = "io.shoal.template";
    /// Name of the container inside its pod.
    pub const CONTAINER: &str = "io.shoal.container";
    /// Position of the container in the pod's template (0 holds the network namespace).
    pub const CONTAINER_INDEX: &str = "io.shoal.container-index";
    /// Number of containers in the pod, so a listing can tell a complete pod from a partial one.
    pub const POD_SIZE: &str = "io.shoal.pod-size";
}

/// A command to the runtime. Each names one pod; the runtime acts on all its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodAction {
    /// Create and start replica `pod` from `template` (pull the image if absent).
    Start { pod: PodId, template: PodTemplate },
    /// SIGTERM every container of the pod, SIGKILL after `grace`, then remove them.
    Stop {
        pod: PodId,
        template_hash: TemplateHash,
        grace: Duration,
    },
    /// Like `Stop`, for a pod on this engine that another node id started
    /// (a previous identity of this machine, or a node deleted from the
    /// cluster): nobody else will ever stop it. No observation follows;
    /// the next listing of foreign pods shows whether it is gone.
    StopOrphan {
        node: NodeId,
        pod: PodId,
        template_hash: TemplateHash,
        grace: Duration,
    },
}

impl PodAction {
    pub fn pod(&self) -> &PodId {
        match self {
            PodAction::Start { pod, .. }
            | PodAction::Stop { pod, .. }
            | PodAction::StopOrphan { pod, .. } => pod,
        }
    }
}

/// Something the runtime saw happen to a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodObservation {
    pub pod: PodId,
    pub template_hash: TemplateHash,
    pub event: PodEvent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodEvent {
    /// Not started yet, and why it takes time: `ImageTransferring from
    /// node2 (40 MB)`, `ImagePulling`. Sent at most every few seconds.
    Preparing(String),
    /// Containers exist, not started yet.
    Created,
    /// All containers started; `ports` are the host ports actually bound.
    Running { ports: Vec<PublishedPort> },
    /// Readiness changed (probe result, or "running" for pods without a probe).
    Ready(bool),
    /// A container of the pod exited; the pod is down until restarted.
    Exited { code: i64, oom_killed: bool },
    /// The image is missing and could not be pulled (engine's message).
    ImageError(String),
    /// The engine refused to create or start a container (engine's message).
    StartError(String),
    /// The pod's containers are gone (after a stop, or removed from outside).
    Removed,
}

/// A pod found on the engine when listing by labels (adoption after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExistingPod {
    pub pod: PodId,
    pub template_hash: TemplateHash,
    /// All of its containers are running.
    pub running: bool,
    pub ports: Vec<PublishedPort>,
}

/// A pod on this node's engine that carries this cluster's label but
/// another node's id (listed so the peer can decide whether it is orphaned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignPod {
    pub node: NodeId,
    pub pod: ExistingPod,
}

/// Whether the container engine can be used: what a node publishes in its
/// `NodeInfo` (`runtime_healthy`, `runtime_error`) so placement skips it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeHealth {
    Healthy,
    /// The engine is unreachable or refuses us; the message says where and what to do.
    Unhealthy(String),
}

impl RuntimeHealth {
    pub fn is_healthy(&self) -> bool {
        matches!(self, RuntimeHealth::Healthy)
    }

    /// The message to publish as `runtime_error`, if any.
    pub fn error(&self) -> Option<&str> {
        match self {
            RuntimeHealth::Healthy => None,
            RuntimeHealth::Unhealthy(message) => Some(message),
        }
    }
}
