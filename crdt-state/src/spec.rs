//! The ReplicationController spec: one internal type, whatever the input format.
//!
//! `manifest` turns YAML/JSON (2014 `v1beta1` or Kubernetes `v1`) into these
//! types; everything else in Shoal (state, placement, runtime) speaks only
//! these. Maps are `BTreeMap` so encoding and hashing are deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pod::PublishedPort;

/// Labels and selectors: ordered so two peers hash and encode them alike.
pub type Labels = BTreeMap<String, String>;

/// "Keep `replicas` copies of `template` running, in pods matched by `selector`."
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RcSpec {
    /// DNS-1123 label, unique in the cluster.
    pub name: String,
    pub replicas: u32,
    /// Must match `template.labels` (the Kubernetes API server's rule).
    pub selector: Labels,
    pub template: PodTemplate,
    pub update_strategy: UpdateStrategy,
    pub partition_policy: PartitionPolicy,
    /// Rollout paused (`shoal rollout pause`): no running pod is replaced
    /// by the current template. Not part of a manifest: the RC record keeps
    /// it in a register of its own, which `apply` leaves alone.
    pub paused: bool,
}

/// What one replica runs: a pod of one or more containers sharing a network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodTemplate {
    pub labels: Labels,
    pub containers: Vec<ContainerSpec>,
    /// Only nodes carrying all these labels are eligible.
    pub node_selector: Labels,
    pub restart_policy: RestartPolicy,
    /// SIGTERM, then this long, then SIGKILL.
    pub termination_grace_period_secs: u32,
}

impl PodTemplate {
    /// A fixed, explicit hash of the template: the same on every peer and
    /// every build, so pods can be told apart by template version.
    pub fn hash(&self) -> TemplateHash {
        let bytes = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .expect("encoding a template into memory cannot fail");
        TemplateHash(xxhash_rust::xxh3::xxh3_64(&bytes))
    }

    /// Sum of the containers' requests: what placement must find room for.
    pub fn requests(&self) -> Resources {
        self.containers
            .iter()
            .fold(Resources::default(), |acc, c| Resources {
                cpu_millis: acc.cpu_millis + c.resources.cpu_millis,
                memory_bytes: acc.memory_bytes + c.resources.memory_bytes,
            })
    }

    /// Host ports the pod binds: two pods with a common one cannot share a node.
    pub fn host_ports(&self) -> impl Iterator<Item = (u16, Protocol)> + '_ {
        self.containers
            .iter()
            .flat_map(|c| &c.ports)
            .filter_map(|p| p.host_port.map(|h| (h, p.protocol)))
    }

    /// The host ports the pod binds, as it publishes them once running.
    pub fn host_port_bindings(&self) -> Vec<PublishedPort> {
        self.containers
            .iter()
            .flat_map(|c| &c.ports)
            .filter_map(|p| {
                Some(PublishedPort {
                    container_port: p.container_port,
                    host_port: p.host_port?,
                    protocol: p.protocol,
                })
            })
            .collect()
    }

    /// The container port called `name` in any container of the pod.
    pub fn named_port(&self, name: &str) -> Option<u16> {
        self.containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| p.name.is_some_and(|n| n.as_str() == name))
            .map(|p| p.container_port)
    }

    /// The first container's image: what `get rc` shows.
    pub fn primary_image(&self) -> &str {
        self.containers.first().map_or("", |c| c.image.as_str())
    }
}

/// Version of a pod template, carried on every pod so rollouts can tell old from new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TemplateHash(pub u64);

impl std::fmt::Display for TemplateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:010x}", self.0 >> 24)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when non-empty.
    pub command: Vec<String>,
    /// Replaces the image's cmd when non-empty.
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub ports: Vec<PortSpec>,
    pub resources: Resources,
    pub readiness_probe: Option<Probe>,
    /// When the node asks a registry for `image` (Kubernetes' `imagePullPolicy`).
    pub image_pull_policy: PullPolicy,
}

impl ContainerSpec {
    /// A container running `image` as built: its own command, no env,
    /// ports, requests or probe. Fill in the rest with struct update syntax.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> ContainerSpec {
        let image = image.into();
        ContainerSpec {
            name: name.into(),
            image: image.clone(),
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            ports: Vec::new(),
            resources: Resources::default(),
            readiness_probe: None,
            image_pull_policy: PullPolicy::default_for(&image),
        }
    }
}

/// When a node asks a registry for a container's image (`imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Ask the registry at every start, even when the engine holds the image
    /// (a moving tag like `:latest`). An unreachable registry falls back to
    /// the local image or the peers, so an offline site keeps running.
    Always,
    /// Use the engine's image; only a missing one is fetched (peers, then registry).
    IfNotPresent,
    /// Only the engine's image: no registry, no peers (`ErrImageNeverPull` when absent).
    Never,
}

impl PullPolicy {
    /// The three names a manifest may use, as Kubernetes spells them.
    pub const NAMES: [&'static str; 3] = ["Always", "IfNotPresent", "Never"];

    /// Kubernetes' default: `Always` for `:latest` or no tag (and no
    /// digest), `IfNotPresent` otherwise.
    pub fn default_for(image: &str) -> PullPolicy {
        match crate::image_ref::parse(image) {
            Ok(r) if r.tag == Some("latest") || (r.tag.is_none() && r.digest.is_none()) => {
                PullPolicy::Always
            }
            _ => PullPolicy::IfNotPresent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }

    /// The policy a manifest names (exact spelling, as Kubernetes requires).
    pub fn from_name(name: &str) -> Option<PullPolicy> {
        match name {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    pub container_port: u16,
    /// Fixed host port; `None` lets the engine pick one (reported in pod status).
    pub host_port: Option<u16>,
    pub protocol: Protocol,
    /// What a Service's `targetPort` may call it (`http`).
    pub name: Option<PortName>,
}

/// A container port's name: an IANA service name, at most 15 characters,
/// kept inline so that ports stay `Copy`. Encoded as a plain string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortName {
    len: u8,
    bytes: [u8; PortName::MAX_LEN],
}

impl PortName {
    pub const MAX_LEN: usize = 15;

    /// `None` for an empty or longer name, or one that is not ASCII.
    pub fn new(name: &str) -> Option<PortName> {
        if name.is_empty() || name.len() > Self::MAX_LEN || !name.is_ascii() {
            return None;
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Some(PortName {
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Built only from ASCII in `new`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for PortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for PortName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PortName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PortName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PortName::new(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "port name {text:?} is not 1 to 15 ASCII characters"
            ))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Requests (or, for a node, capacity): millicores and bytes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Resources {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Resources {
    /// True when `request` fits in `self`.
    pub fn fits(&self, request: &Resources) -> bool {
        request.cpu_millis <= self.cpu_millis && request.memory_bytes <= self.memory_bytes
    }

    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
        }
    }
}

/// When a container counts as ready to serve.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Probe {
    pub action: ProbeAction,
    pub initial_delay_secs: u32,
    pub period_secs: u32,
    pub timeout_secs: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProbeAction {
    HttpGet { path: String, port: u16 },
    TcpSocket { port: u16 },
    Exec { command: Vec<String> },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// A rolling-update allowance: a number of replicas or a percentage of
/// `replicas`, as Kubernetes' `intstr` (`1` or `"25%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Allowance {
    Count(u32),
    Percent(u32),
}

impl Allowance {
    /// Replicas this allows for an RC of `replicas`: a percentage rounds up
    /// for surge and down for unavailability (Kubernetes' rule).
    pub fn of(self, replicas: u32, round_up: bool) -> u32 {
        match self {
            Allowance::Count(n) => n,
            Allowance::Percent(p) => {
                let scaled = u64::from(replicas) * u64::from(p);
                let n = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(n).unwrap_or(u32::MAX)
            }
        }
    }

    /// True when it allows nothing whatever the replica count.
    pub fn is_zero(self) -> bool {
        matches!(self, Allowance::Count(0) | Allowance::Percent(0))
    }
}

impl std::fmt::Display for Allowance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allowance::Count(n) => write!(f, "{n}"),
            Allowance::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// How a changed template rolls out (Kubernetes Deployment's
/// `strategy.rollingUpdate`, `minReadySeconds`, `progressDeadlineSeconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UpdateStrategy {
    /// Extra pods allowed above `replicas` during a rollout.
    pub max_surge: Allowance,
    /// Pods allowed below `replicas` (not available) during a rollout.
    pub max_unavailable: Allowance,
    /// A new pod counts as available once ready for this long.
    pub min_ready_secs: u32,
    /// A new pod not ready this long after its start stops the rollout.
    pub progress_deadline_secs: u32,
    /// A stopped rollout returns to the previous template instead of waiting.
    pub auto_rollback: bool,
}

/// Kubernetes' default progress deadline.
pub const DEFAULT_PROGRESS_DEADLINE_SECS: u32 = 600;

impl Default for UpdateStrategy {
    /// Kubernetes Deployment defaults: 25% surge, 25% unavailable.
    fn default() -> Self {
        UpdateStrategy {
            max_surge: Allowance::Percent(25),
            max_unavailable: Allowance::Percent(25),
            min_ready_secs: 0,
            progress_deadline_secs: DEFAULT_PROGRESS_DEADLINE_SECS,
            auto_rollback: false,
        }
    }
}

impl UpdateStrategy {
    /// `(surge, unavailable)` in replicas for an RC of `replicas`. When both
    /// come to 0 one replica may be unavailable, or nothing could move
    /// (Kubernetes' fencepost rule).
    pub fn resolve(&self, replicas: u32) -> (u32, u32) {
        let surge = self.max_surge.of(replicas, true);
        let unavailable = self.max_unavailable.of(replicas, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }
}

/// What a side of a partition does about replicas it can no longer see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartitionPolicy {
    /// Every side keeps the declared count running (may exceed it while split).
    #[default]
    Available,
    /// A side that cannot see a majority of the last known members starts no replacements.
    AtMostDeclared,
}
