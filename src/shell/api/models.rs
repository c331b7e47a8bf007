//! The JSON the API speaks. These shapes are a promise to scripts and to the
//! CLI (which deserializes them): add fields, never rename or remove one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Outcome of one object in a `POST /rcs` or `POST /services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedJson {
    /// `replicationcontroller` or `service` (kubectl's resource word).
    #[serde(default = "rc_kind")]
    pub kind: String,
    pub name: String,
    /// kubectl's word: created, configured, unchanged.
    pub outcome: String,
}

fn rc_kind() -> String {
    "replicationcontroller".to_owned()
}

/// Response of `POST /rcs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResponse {
    pub applied: Vec<AppliedJson>,
    /// Harmless findings (ignored fields, renamed ids), one line each.
    pub warnings: Vec<String>,
}

/// Response of scale, rolling-update and delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResponse {
    pub name: String,
    pub outcome: String,
}

/// Body of `POST /tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreateRequest {
    /// `admin` or `read-only`.
    pub role: String,
    /// A DNS label; the peer picks `token-XXXXXXXX` when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Lifetime from now; absent: never expires.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// Answer of `POST /tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub name: String,
    pub role: String,
    pub secret: String,
    /// RFC 3339 UTC; absent: never.
    pub expires: Option<String>,
}

/// Body of `POST /tokens/join/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRotateRequest {
    /// How long the join token current until now still admits peers.
    pub grace_secs: u64,
}

/// Answer of `POST /tokens/join/rotate`: the new join token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRotated {
    pub token: String,
    /// The cluster's id (unchanged by rotations).
    pub cluster_id: String,
    /// When the previous token stops admitting peers (RFC 3339 UTC).
    pub previous_until: String,
}

/// One row of `GET /tokens` (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    /// RFC 3339 UTC, and the same in ms since the epoch.
    pub created: String,
    pub created_ms: u64,
    pub expires: Option<String>,
    pub expires_ms: Option<u64>,
    /// `active`, `expired` (by this peer's clock) or `revoked`.
    pub status: String,
}

/// Body of `PUT /rcs/{name}/scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    pub replicas: u32,
}

/// Body of `POST /rcs/{name}/rolling-update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingUpdateRequest {
    pub image: String,
    /// Container to change; the first one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// One row of `GET /nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeJson {
    pub name: String,
    /// Node id, 16 hex digits.
    pub id: String,
    /// Peer (QUIC) address.
    pub address: String,
    /// Address of the node's HTTP API.
    pub api_address: String,
    /// In this peer's SWIM view: Alive, Suspect, Down, or Unknown (never seen by SWIM).
    pub state: String,
    /// Cordoned: placement puts no replica there (`shoal cordon`, `drain`).
    pub cordoned: bool,
    /// The node's container engine is reachable, as reported by a node this
    /// peer sees Alive; false when the engine is down or the node is not
    /// Alive (then `runtime` says `Unknown`).
    pub ready: bool,
    /// The RUNTIME column: `Ready`, `NotReady`, or `Unknown` when the node is
    /// Suspect, Down or unknown to SWIM, so its last report cannot be vouched
    /// for (kubectl's `Unknown` for a lost kubelet). Empty from older peers.
    #[serde(default)]
    pub runtime: String,
    /// Pods the node reports.
    pub pods: usize,
    pub labels: BTreeMap<String, String>,
    /// Allocatable CPU, Kubernetes quantity (`2`, `500m`).
    pub cpu: String,
    /// Allocatable memory, Kubernetes quantity (`4Gi`).
    pub memory: String,
    /// When the node's peer started, ms since the UNIX epoch (its clock);
    /// 0 when unknown. The AGE column.
    #[serde(default)]
    pub started_ms: u64,
    /// The images of the cluster's RCs the node holds: reference to image ID.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
}

impl NodeJson {
    /// The RUNTIME word: `runtime` as the peer sent it, else (an older peer)
    /// derived from `state` and `ready`.
    pub fn runtime_word(&self) -> &str {
        if self.runtime.is_empty() {
            runtime_status(&self.state, self.ready)
        } else {
            &self.runtime
        }
    }
}

/// The RUNTIME of a node in SWIM `state` whose last report says its engine
/// is (`reported_healthy`) or is not reachable: only an Alive node's report
/// is current; a Suspect or Down node may have lost its engine since.
pub fn runtime_status(state: &str, reported_healthy: bool) -> &'static str {
    match (state, reported_healthy) {
        ("Alive", true) => "Ready",
        ("Alive", false) => "NotReady",
        _ => "Unknown",
    }
}

/// `GET /nodes/{name}`: the row plus everything `describe node` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDetail {
    #[serde(flatten)]
    pub node: NodeJson,
    pub capacity_cpu: String,
    pub capacity_memory: String,
    pub runtime_error: Option<String>,
    pub version: String,
    /// Pods the node reports, in name order.
    pub pod_list: Vec<PodJson>,
}

/// One row of `GET /rcs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcJson {
    pub name: String,
    /// Declared count.
    pub replicas: u32,
    /// Pods of the RC in phase Running, reported by nodes alive in this peer's view.
    pub running: u32,
    /// Of those, the ones passing their readiness probe.
    pub ready: u32,
    /// The first container's image.
    pub image: String,
    pub selector: BTreeMap<String, String>,
    /// When the RC was created (or recreated after a delete), ms since the
    /// UNIX epoch on the writer's clock; 0 when unknown. The AGE column.
    #[serde(default)]
    pub created_ms: u64,
}

/// A template the RC ran before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionJson {
    /// When the next template replaced it, ms since the UNIX epoch (writer's clock).
    pub replaced_at_ms: u64,
    /// When this template was written (applied or rolled out).
    #[serde(default)]
    pub written_at_ms: u64,
    pub template_hash: String,
    pub images: Vec<String>,
}

/// A replica placement could not put anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnplacedJson {
    pub pod: String,
    pub reason: String,
}

/// `GET /rcs/{name}`: spec and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcDetail {
    #[serde(flatten)]
    pub rc: RcJson,
    /// Hash of the current template: pods carrying it run the latest version.
    pub template_hash: String,
    /// Running and ready pods on the current template (alive nodes only):
    /// a rolling update is done when this equals `replicas` and `pods` holds
    /// no other pod.
    pub updated_ready: u32,
    /// Pods of the RC on any template, from nodes alive in this view.
    pub total_pods: u32,
    /// `container=image`, in template order.
    pub images: Vec<String>,
    /// Rollout history, newest first.
    pub history: Vec<RevisionJson>,
    /// Number of the current template's revision (`rollout history`).
    #[serde(default)]
    pub revision: u64,
    /// The rollout is paused (`rollout pause`).
    #[serde(default)]
    pub paused: bool,
    pub unplaced: Vec<UnplacedJson>,
    /// Set when a new pod was not ready within the progress deadline: the
    /// rollout holds (old replicas keep serving) and this says why.
    #[serde(default)]
    pub rollout_stopped: Option<String>,
    pub pods: Vec<PodJson>,
    /// The normalized spec as a v1 ReplicationController.
    pub spec: serde_json::Value,
}

/// One published port of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortJson {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: String,
}

impl std::fmt::Display for PortJson {
    /// `8080->80/tcp`, as `docker ps` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// One row of `GET /pods`: a pod as the node running it reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodJson {
    /// `rc-index`, what `logs` takes.
    pub name: String,
    pub rc: String,
    /// Name of the reporting node.
    pub node: String,
    /// Host part of the reporting node's peer address: where `ports` are published.
    pub ip: String,
    pub image: String,
    /// Running, Pending, CrashLoopBackOff, ...; `Unknown` when the reporting
    /// node is not alive in this peer's view (its report may be stale).
    pub phase: String,
    /// Passing its readiness probe; false when `phase` is `Unknown`.
    pub ready: bool,
    /// Containers of its RC's current template (1 once the RC is deleted),
    /// as the kube API lists them: `get pods` shows READY as
    /// `{ready}/{containers}`, as kubectl does. 1 from peers that predate it.
    #[serde(default = "one_container")]
    pub containers: u32,
    pub restarts: u32,
    pub ports: Vec<PortJson>,
    pub last_error: Option<String>,
    /// While pending: what is done before it can start
    /// (`ImageTransferring from node2 (40.1 MB)`).
    #[serde(default)]
    pub preparing: Option<String>,
    pub template_hash: String,
    /// Runs the RC's current template (false during a rollout, or for pods of a deleted RC).
    pub current: bool,
    /// When its node started it (Unix ms; restarts keep it), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
}

fn one_container() -> u32 {
    1
}

impl PodJson {
    /// kubectl's READY column: ready containers / containers. Readiness is
    /// the pod's (its probe), so every container counts as it does.
    pub fn ready_column(&self) -> String {
        let ready = if self.ready { self.containers } else { 0 };
        format!("{ready}/{}", self.containers)
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub node: String,
    pub id: String,
    pub cluster: String,
    pub members: usize,
}

/// One port of a service, as `get svc` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePortJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    /// A number or a container port's name, as declared.
    pub target_port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
    pub protocol: String,
}

impl std::fmt::Display for ServicePortJson {
    /// kubectl's form: `8080/TCP`, `8080:30080/TCP` with a node port.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.node_port {
            Some(node_port) => write!(f, "{}:{node_port}/{}", self.port, self.protocol),
            None => write!(f, "{}/{}", self.port, self.protocol),
        }
    }
}

/// One row of `GET /services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceJson {
    pub name: String,
    /// ClusterIP or NodePort.
    #[serde(rename = "type")]
    pub service_type: String,
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePortJson>,
    /// `v1` or `v2` when endpoints get a PROXY protocol header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// Endpoints the load balancer may use now.
    pub endpoints_ready: usize,
    /// Every pod the selector matches, ready or not.
    pub endpoints_total: usize,
    /// Ports this service lost to an older service that claimed them
    /// concurrently (`port 8080 is held by service "web"`); empty normally.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// When the service was created (or recreated after a delete), ms since
    /// the UNIX epoch on the writer's clock; 0 when unknown. The AGE column.
    #[serde(default)]
    pub created_ms: u64,
}

/// One pod behind a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointJson {
    pub pod: String,
    pub node: String,
    /// Where each service port reaches the pod (`127.0.0.12:32768`), in
    /// service-port order; empty when the pod publishes none.
    pub addresses: Vec<String>,
    pub ready: bool,
}

/// `GET /services/{name}`: the row and each endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDetail {
    #[serde(flatten)]
    pub service: ServiceJson,
    pub endpoints: Vec<EndpointJson>,
    /// Listeners of this service that a node's load balancer cannot open,
    /// as `NODE: why` (the other nodes keep serving).
    #[serde(default)]
    pub listener_problems: Vec<String>,
}

/// One row of `GET /images`: an image the cluster's RCs use, and which
/// nodes hold it (peers fetch it from those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageJson {
    /// As the RCs spell it.
    pub image: String,
    /// Node name to the image ID it holds the image as.
    pub holders: BTreeMap<String, String>,
    /// Nodes alive in this peer's view that do not hold it.
    pub missing: Vec<String>,
    /// The transfers of it this peer has under way, live.
    #[serde(default)]
    pub transfers: Vec<TransferJson>,
    /// Other active nodes fetching it: node name to their waiting pod's
    /// progress as last replicated (`ImageTransferring from node0 (…)`).
    #[serde(default)]
    pub transferring_elsewhere: BTreeMap<String, String>,
}

pub use crate::shell::images::transfers::TransferJson;

/// One image `POST /images/load` put into the peer's engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImageJson {
    /// As the archive tags it; `None` for an untagged image.
    pub reference: Option<String>,
    pub id: String,
}

/// One revision of `GET /rcs/{name}/rollout/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRevisionJson {
    /// Stable number, the same at every peer (see `shoal_crdt_state::revisions`).
    pub revision: u64,
    /// When this template was first written, ms since the UNIX epoch (writer's clock).
    pub written_at_ms: u64,
    pub template_hash: String,
    /// `container=image`, in template order.
    pub images: Vec<String>,
    /// The template the RC runs now.
    pub current: bool,
}

/// `GET /rcs/{name}/rollout/history`: revisions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutHistoryJson {
    pub name: String,
    pub revisions: Vec<RolloutRevisionJson>,
}

/// Body of `POST /rcs/{name}/rollout/undo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRequest {
    /// Revision to return to; the one before the current one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<u64>,
}

/// A pod of the new template that does not come up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailingPodJson {
    pub pod: String,
    pub node: String,
    pub phase: String,
    pub restarts: u32,
    /// The pod's last error (`image: ... not found`), if it reported one.
    pub error: Option<String>,
}

/// `GET /rcs/{name}/rollout`: where the rollout of the current template stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatusJson {
    pub name: String,
    /// Number of the current template's revision.
    pub revision: u64,
    pub template_hash: String,
    pub replicas: u32,
    /// Pods on the current template (alive nodes only), in any phase.
    pub updated: u32,
    /// Of those, the ones running and ready.
    pub updated_ready: u32,
    /// Pods on any template, running and ready.
    pub ready: u32,
    /// Pods on any template (alive nodes only).
    pub total_pods: u32,
    /// `shoal rollout pause`: running pods are not replaced.
    pub paused: bool,
    /// Every replica runs the current template and is ready, and no other pod is left.
    pub complete: bool,
    /// Pods of the current template that are failing (crash loop, image missing, ...).
    pub failing: Vec<FailingPodJson>,
    /// Replicas placement could not put anywhere.
    pub unplaced: Vec<UnplacedJson>,
}

#[cfg(test)]
mod tests {
    use super::runtime_status;

    #[test]
    fn only_an_alive_node_vouches_for_its_engine() {
        assert_eq!(runtime_status("Alive", true), "Ready");
        assert_eq!(runtime_status("Alive", false), "NotReady");
        for state in ["Suspect", "Down", "Unknown"] {
            for healthy in [true, false] {
                assert_eq!(runtime_status(state, healthy), "Unknown", "{state}");
            }
        }
    }
}
