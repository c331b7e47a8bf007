//! The Docker executor: runs the core's [`PodAction`]s on a real engine
//! through bollard and reports what happens as [`PodObservation`]s.
//!
//! - this file: configuration, errors, the public handle [`DockerRuntime`];
//! - [`naming`]: container names, ownership labels, image references;
//! - [`create`]: pod template → engine container definitions, bound ports;
//! - [`pod_ops`]: start (create/adopt/restart) and stop of one pod;
//! - [`events`]: the engine's event stream and the re-list after a reconnect;
//! - [`probe`]: readiness probes (httpGet, tcpSocket, exec);
//! - [`health`]: engine reachability, published by the node;
//! - [`images`]: images held, exported and loaded (peers as a registry).
//!
//! Promises: [`DockerRuntime::execute`] returns at once and never blocks on
//! another pod (one task per action, a bounded number at a time, actions on
//! the same pod version run in order). Every outcome, including failures of
//! the engine, arrives as an observation, never as a panic. The executor only
//! lists and touches containers labelled with its cluster id and node id, so
//! peers can share an engine. It reports; restart decisions belong to the core.

mod create;
mod events;
mod health;
mod image_policy;
mod images;
mod naming;
mod order;
mod pod_ops;
mod probe;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ContainerSummary;
use bollard::query_parameters::{ListContainersOptions, LogsOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::vocabulary::{ExistingPod, ForeignPod, PodAction, PodObservation, RuntimeHealth};
use naming::{Owner, PodKey};
use pod_ops::Tracked;

pub use images::{ImageArchive, ImageSource, LoadError, LoadedImage, Progress};

/// Least time between two progress reports of one pod's start: each one
/// changes the node's record, which every peer receives.
const PREPARING_EVERY: Duration = Duration::from_secs(2);

/// What the executor needs to know about its node.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Cluster id: containers of other clusters on the same engine are invisible.
    pub cluster: String,
    /// This node: containers of other nodes on the same engine are invisible.
    pub node: NodeId,
    /// Address ports are published on (127.0.0.1 keeps pods local, 0.0.0.0 exposes them).
    pub publish_ip: IpAddr,
    /// Engine address; `None` means `DOCKER_HOST`, or the platform's default socket.
    pub docker_host: Option<String>,
    /// Pod actions running against the engine at once (pulls and grace periods included).
    pub max_concurrent_actions: usize,
    /// How often the engine is pinged to keep [`DockerRuntime::health`] current.
    pub health_interval: Duration,
    /// Capacity of the observation channel; a slow consumer slows the executor down.
    pub observation_capacity: usize,
}

impl RuntimeConfig {
    /// Defaults for a node: publish on loopback, engine from `DOCKER_HOST`.
    pub fn new(cluster: impl Into<String>, node: NodeId) -> Self {
        RuntimeConfig {
            cluster: cluster.into(),
            node,
            publish_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            docker_host: None,
            max_concurrent_actions: 16,
            health_interval: Duration::from_secs(2),
            observation_capacity: 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "cannot use engine address {host:?}: {source}; set DOCKER_HOST to unix:///path/to/docker.sock or tcp://host:port"
    )]
    InvalidHost { host: String, source: BollardError },
    #[error(
        "cannot reach the Docker engine at {host}: {message}; start dockerd or point DOCKER_HOST at a running engine"
    )]
    Unreachable { host: String, message: String },
    #[error("the Docker engine at {host} refused to {what}: {message}")]
    Engine {
        host: String,
        what: String,
        message: String,
    },
    #[error("pod {pod} has no container {container:?} on this node")]
    NoSuchPod { pod: String, container: String },
}

/// The resolver pods use: the peer's DNS server for services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDns {
    /// `HostConfig.dns`: the nameservers of the pod's resolv.conf.
    pub servers: Vec<IpAddr>,
    /// `HostConfig.dns_search`: its search domains.
    pub search: Vec<String>,
}

/// Where this node's running pods are reached without the engine's port
/// publishing: for each published TCP host port, the container's own
/// address (its IP on its network, the container port). A load balancer on
/// this host connects there and skips the engine's userland proxy.
pub type DirectAddresses = BTreeMap<u16, SocketAddr>;

/// A byte stream of a container's output (stdout and stderr interleaved as the engine saw them).
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, RuntimeError>> + Send>>;

/// Handle on the executor. Dropping it stops its background tasks (event
/// watch, health checks, probes); containers keep running, to be adopted.
#[derive(Debug)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
    background: Vec<JoinHandle<()>>,
}

/// State shared by the handle and its tasks.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The engine client; `None` while a unix socket does not exist yet
    /// (bollard refuses to build a client for it), retried on every use.
    client: Mutex<Option<Docker>>,
    owner: Owner,
    /// The engine address as resolved, for error messages.
    host: String,
    publish_ip: IpAddr,
    /// Set once the peer's DNS server runs; pods created before use the
    /// engine's default resolver.
    pod_dns: OnceLock<PodDns>,
    observations: mpsc::Sender<PodObservation>,
    health: watch::Sender<RuntimeHealth>,
    /// Bounds concurrent actions against the engine.
    actions: Semaphore,
    /// What we believe about each pod version we started or adopted; decides
    /// which engine events become observations (no duplicates, none for our own stops).
    pods: Mutex<BTreeMap<PodKey, Tracked>>,
    /// The direct addresses of the pods that are up, republished with `pods`.
    direct: watch::Sender<Arc<DirectAddresses>>,
    /// Runs the actions on one pod version one at a time, in hand-over order.
    order: order::Queues<PodKey>,
    /// Consecutive failed pulls per image, for the pull back-off.
    pulls: Mutex<BTreeMap<String, image_policy::PullFailures>>,
    /// Asked for a missing image before the registry (peers that hold it).
    image_source: std::sync::OnceLock<Arc<dyn ImageSource>>,
}

impl DockerRuntime {
    /// Connects to the engine (`config.docker_host`, else `DOCKER_HOST`, else
    /// the default socket), negotiates the API version and starts watching.
    ///
    /// An unreachable engine is not an error here: the node must come up and
    /// report itself unhealthy ([`DockerRuntime::health`]) until the engine
    /// returns. Only an unusable address is.
    pub async fn connect(
        config: RuntimeConfig,
    ) -> Result<(DockerRuntime, mpsc::Receiver<PodObservation>), RuntimeError> {
        let host = config
            .docker_host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let docker = match Docker::connect_with_host(&host) {
            Ok(docker) => Some(docker),
            // The engine may come later: report unhealthy until it does.
            Err(BollardError::SocketNotFoundError(_)) => None,
            Err(source) => {
                return Err(RuntimeError::InvalidHost {
                    host: host.clone(),
                    source,
                });
            }
        };
        let (tx, rx) = mpsc::channel(config.observation_capacity.max(1));
        let (health_tx, _) = watch::channel(RuntimeHealth::Unhealthy("not checked yet".into()));
        let inner = Arc::new(Inner {
            client: Mutex::new(docker),
            owner: Owner {
                cluster: config.cluster,
                node: config.node,
            },
            host,
            publish_ip: config.publish_ip,
            pod_dns: OnceLock::new(),
            observations: tx,
            health: health_tx,
            actions: Semaphore::new(config.max_concurrent_actions.max(1)),
            pods: Mutex::new(BTreeMap::new()),
            direct: watch::channel(Arc::new(DirectAddresses::new())).0,
            order: order::Queues::default(),
            pulls: Mutex::new(BTreeMap::new()),
            image_source: std::sync::OnceLock::new(),
        });
        inner.check_health().await;
        let background = vec![
            tokio::spawn(health::health_loop(inner.clone(), config.health_interval)),
            tokio::spawn(events::events_loop(inner.clone())),
        ];
        Ok((DockerRuntime { inner, background }, rx))
    }

    /// Carries out `action` in the background; its outcome arrives as
    /// observations. Idempotent: starting a pod that runs adopts it, stopping
    /// one that is gone reports `Removed`.
    pub fn execute(&self, action: PodAction) {
        let inner = self.inner.clone();
        // The place in line is taken here, in call order, not in the task.
        let turn = inner.order.turn(&Inner::key_of(&action));
        tokio::spawn(async move { inner.run_action(action, turn).await });
    }

    /// The engine's reachability as of the last check (every `health_interval`).
    pub fn health(&self) -> RuntimeHealth {
        self.inner.health.borrow().clone()
    }

    /// Containers created from now on resolve names through `dns`. Only
    /// the first call counts; returns whether it did.
    pub fn set_pod_dns(&self, dns: PodDns) -> bool {
        self.inner.pod_dns.set(dns).is_ok()
    }

    /// The gateway of the engine's default bridge network (`docker0`'s
    /// address): where containers reach the host. The engine reports it,
    /// or only the subnet, whose first address the engine gives the bridge.
    pub async fn default_bridge_gateway(&self) -> Result<Option<IpAddr>, RuntimeError> {
        let what = "describe its default bridge network";
        let host = &self.inner.host;
        let docker = self.inner.docker().map_err(|e| error_for(host, what, e))?;
        let network = docker
            .inspect_network("bridge", None)
            .await
            .map_err(|e| error_for(host, what, e))?;
        let configs = network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default();
        Ok(configs.iter().find_map(|c| {
            c.gateway
                .as_deref()
                .and_then(|g| g.parse().ok())
                .or_else(|| c.subnet.as_deref().and_then(first_host))
        }))
    }

    /// The [`DirectAddresses`] of the pods this node runs, as they change.
    pub fn direct_addresses(&self) -> watch::Receiver<Arc<DirectAddresses>> {
        self.inner.direct.subscribe()
    }

    /// Changes of [`DockerRuntime::health`], for a node that publishes them.
    pub fn health_watch(&self) -> watch::Receiver<RuntimeHealth> {
        self.inner.health.subscribe()
    }

    /// Pings the engine now (re-negotiating the API version after an outage).
    pub async fn check_health(&self) -> RuntimeHealth {
        self.inner.check_health().await
    }

    /// The pods this node already runs on the engine (after a restart of the
    /// peer): one entry per pod version, sorted. Starting one of them with the
    /// same template adopts it.
    pub async fn list_existing(&self) -> Result<Vec<ExistingPod>, RuntimeError> {
        let containers = self.inner.list(self.inner.owner.filters()).await?;
        Ok(pod_ops::group_existing(&containers))
    }

    /// Pods of this cluster on the engine that another node id started,
    /// sorted by node then pod: a previous identity of this machine (its
    /// node.json was lost) or a node deleted from the cluster left them.
    pub async fn list_foreign(&self) -> Result<Vec<ForeignPod>, RuntimeError> {
        let me = self.inner.owner.node;
        let containers = self.inner.list(self.inner.owner.cluster_filters()).await?;
        let mut by_node: BTreeMap<NodeId, Vec<ContainerSummary>> = BTreeMap::new();
        for c in containers {
            let node = c.labels.as_ref().and_then(naming::node_of);
            if let Some(node) = node.filter(|n| *n != me) {
                by_node.entry(node).or_default().push(c);
            }
        }
        Ok(by_node
            .into_iter()
            .flat_map(|(node, containers)| {
                pod_ops::group_existing(&containers)
                    .into_iter()
                    .map(move |pod| ForeignPod { node, pod })
            })
            .collect())
    }

    /// Output of a pod's container (`container` by name, or the first), of the
    /// newest version of the pod on this node; `follow` keeps streaming.
    pub async fn logs(
        &self,
        pod: &PodId,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream, RuntimeError> {
        let range = LogRange {
            follow,
            ..LogRange::default()
        };
        self.logs_in(pod, container, &range).await
    }

    /// Like [`DockerRuntime::logs`], for the part of the output `range` says.
    pub async fn logs_in(
        &self,
        pod: &PodId,
        container: Option<&str>,
        range: &LogRange,
    ) -> Result<LogStream, RuntimeError> {
        let inner = &self.inner;
        let mut candidates: Vec<ContainerSummary> = inner
            .list(inner.owner.pod_filters(pod))
            .await?
            .into_iter()
            .filter(|c| {
                let labels_of = c.labels.clone().unwrap_or_default();
                match container {
                    Some(name) => {
                        labels_of
                            .get(crate::vocabulary::labels::CONTAINER)
                            .map(String::as_str)
                            == Some(name)
                    }
                    None => create::is_first(&labels_of),
                }
            })
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.created.unwrap_or(0)));
        let id = candidates
            .first()
            .and_then(|c| c.id.clone())
            .ok_or_else(|| RuntimeError::NoSuchPod {
                pod: pod.to_string(),
                container: container.unwrap_or("(first)").to_string(),
            })?;
        let options = LogsOptions {
            follow: range.follow,
            stdout: true,
            stderr: true,
            since: range
                .since_unix
                .map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)),
            timestamps: range.timestamps,
            tail: range
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let host = inner.host.clone();
        let docker = inner
            .docker()
            .map_err(|e| error_for(&inner.host, "stream logs", e))?;
        let stream = docker.logs(&id, Some(options)).map(move |item| match item {
            Ok(output) => Ok(output.into_bytes()),
            Err(e) => Err(error_for(&host, "stream logs", e)),
        });
        Ok(Box::pin(stream))
    }
}

/// Which part of a container's output [`DockerRuntime::logs_in`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRange {
    /// Keep streaming new output.
    pub follow: bool,
    /// Only the last this many lines; all when `None`.
    pub tail: Option<u64>,
    /// Only output since this time (seconds since the UNIX epoch).
    pub since_unix: Option<i64>,
    /// Prefix each line with its RFC 3339 time, as the engine records it.
    pub timestamps: bool,
}

impl Drop for DockerRuntime {
    fn drop(&mut self) {
        for task in &self.background {
            task.abort();
        }
        self.inner.abort_probes();
    }
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → `172.17.0.1`).
fn first_host(subnet: &str) -> Option<IpAddr> {
    let (net, _) = subnet.split_once('/')?;
    let net: Ipv4Addr = net.parse().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(u32::from(net).checked_add(1)?)))
}

impl Inner {
    /// The engine client, created on first use when the socket appeared late.
    fn docker(&self) -> Result<Docker, BollardError> {
        let mut client = self.client.lock().expect("client mutex poisoned");
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let docker = Docker::connect_with_host(&self.host)?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    /// Lists our containers matching `filters`, running or not.
    async fn list(
        &self,
        filters: std::collections::HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        self.docker()
            .map_err(|e| error_for(&self.host, "list containers", e))?
            .list_containers(Some(options))
            .await
            .map_err(|e| error_for(&self.host, "list containers", e))
    }

    /// Sends an observation; a consumer that went away is not our failure.
    /// Reports what a start is doing while it waits (an image transfer), at
    /// most every [`PREPARING_EVERY`] per step ([`PreparingThrottle`]);
    /// never waits for the channel.
    fn preparing(&self, key: &PodKey) -> images::Progress {
        let tx = self.observations.clone();
        let key = key.clone();
        let throttle = Mutex::new(PreparingThrottle::default());
        Arc::new(move |what: String| {
            let now = std::time::Instant::now();
            let mut throttle = throttle.lock().expect("progress mutex poisoned");
            if !throttle.admits(now, &what) {
                return;
            }
            let _ = tx.try_send(PodObservation {
                pod: key.0.clone(),
                template_hash: key.1,
                event: crate::vocabulary::PodEvent::Preparing(what),
            });
        })
    }

    async fn observe(&self, key: &PodKey, event: crate::vocabulary::PodEvent) {
        tracing::debug!(pod = %key.0, template = %key.1, ?event, "observation");
        let _ = self
            .observations
            .send(PodObservation {
                pod: key.0.clone(),
                template_hash: key.1,
                event,
            })
            .await;
    }
}

/// Sorts an engine failure into "engine said no" (with its message) and
/// "could not talk to the engine".
pub(crate) fn error_for(host: &str, what: &str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError { message, .. } => RuntimeError::Engine {
            host: host.to_string(),
            what: what.to_string(),
            message,
        },
        other => RuntimeError::Unreachable {
            host: host.to_string(),
            message: other.to_string(),
        },
    }
}

/// The engine's own words for a failure, for pod statuses.
pub(crate) fn engine_message(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// True for "no such container/image": the thing is already gone.
pub(crate) fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Which reports of a waiting start go out: one per [`PREPARING_EVERY`]
/// within a step, and a new step at once. A step is the report's first
/// word and whether it carries figures: a pull after a failed transfer is
/// a new step, and so are the first figures of a transfer after the report
/// naming its source (else a transfer shorter than the period would never
/// show them).
#[derive(Debug, Default)]
struct PreparingThrottle {
    last: Option<(std::time::Instant, (String, bool))>,
}

impl PreparingThrottle {
    fn admits(&mut self, now: std::time::Instant, what: &str) -> bool {
        let step = (
            what.split(' ').next().unwrap_or_default().to_owned(),
            what.contains(" ("),
        );
        if self.last.as_ref().is_some_and(|(at, last_step)| {
            *last_step == step && now.duration_since(*at) < PREPARING_EVERY
        }) {
            return false;
        }
        self.last = Some((now, step));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_start_reports_each_step_at_once_and_figures_at_most_every_period() {
        let start = std::time::Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut t = PreparingThrottle::default();
        assert!(t.admits(at(0), "ImagePulling hello:1.0"));
        assert!(t.admits(at(10), "ImageTransferring from node0"));
        // The first figures follow the source's name at once...
        assert!(t.admits(at(20), "ImageTransferring from node0 (0.8 MB)"));
        // ...then at most every period.
        assert!(!t.admits(at(1_000), "ImageTransferring from node0 (60 MB)"));
        assert!(t.admits(at(2_020), "ImageTransferring from node0 (120 MB)"));
        // Another source after a failure: a new step.
        assert!(t.admits(at(2_100), "ImageTransferring from node2"));
        assert!(t.admits(at(2_200), "ImagePulling hello:1.0"));
    }
    use super::first_host;

    #[test]
    fn the_bridge_gateway_is_the_first_host_of_its_subnet() {
        assert_eq!(
            first_host("172.17.0.0/16"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(
            first_host("10.40.3.0/24"),
            Some("10.40.3.1".parse().unwrap())
        );
        assert_eq!(first_host("fd00::/64"), None);
        assert_eq!(first_host("nonsense"), None);
    }
}
