//! `shoal up`: assemble a peer from its flags and data dir, then run it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::spec::Resources;
use shoal_gossip::Preset;
use shoal_gossip::quic::{ClusterIdentity, JoinToken, NodeKey, QuicConfig, QuicTransport};
use shoal_runtime::docker::{DockerRuntime, RuntimeConfig};
use tokio::sync::{mpsc, oneshot, watch};

use super::cluster_identity::Learn;
use super::driver::{Driver, foreign_scan_loop, wall_now};
use super::events::{EventStore, store::EVENTS_KEPT};
use super::handle::{PeerHandle, REQUEST_QUEUE};
use super::images::transfers::Transfers;
use super::images::{PeerImages, holdings_loop};
use super::join_watch::JoinWatch;
use super::key_book::KeyBook;
use super::persist::{DataDir, NodeIdentity, Writer};
use super::services::{
    Services, ServicesConfig, default_service_ip, report_listener_problems, start_services,
};
use super::snapshots::SnapshotSource;
use crate::peer::{NodeKeys, Peer, PeerConfig};

/// Everything `shoal up` is told on its command line.
#[derive(Debug, Clone)]
pub struct UpConfig {
    pub listen: SocketAddr,
    /// Address other peers reach us on ([`super::addresses::choose`]).
    pub advertise: SocketAddr,
    pub api: SocketAddr,
    pub data_dir: PathBuf,
    pub join: Vec<SocketAddr>,
    /// The cluster's join token; required to join, generated for a new cluster.
    pub join_token: Option<String>,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Where pods publish their ports; default: the advertised IP.
    pub publish_ip: Option<IpAddr>,
    /// Bearer token the HTTP API requires (mandatory off loopback).
    pub api_token: Option<String>,
    /// Per-client request rate and connection caps on the API.
    pub api_limits: crate::shell::api::limits::LimitSettings,
    /// Per-client connection caps and new-connection rate on the load balancer.
    pub lb_limits: crate::shell::client_limits::LimitSettings,
    /// Serve the API over TLS even on loopback (off loopback it always is).
    pub api_tls: bool,
    /// Lifetime of this node's certificates (QUIC and API); renewed at half.
    pub cert_validity: Duration,
    pub preset: Preset,
    /// Wait for the disk before acknowledging writes. Off only for
    /// benchmarks: an acknowledged write may then be lost in a crash.
    pub fsync: bool,
    /// A fresh peer whose seeds do not answer gives up after this long.
    pub join_timeout: Duration,
    /// ... unless this is set: it then runs alone until a seed answers.
    pub start_alone: bool,
    /// A node absent this long is forgotten everywhere.
    pub forget_down_after: Duration,
    /// Tombstones are collected once this old (and held everywhere).
    pub gc_grace: Duration,
    /// Where pods reach services and DNS; default: the gateway of the
    /// engine's default bridge.
    pub service_address: Option<IpAddr>,
    /// The DNS server's port, at the service and the advertised address.
    pub dns_port: u16,
}

/// A running peer: its API handle and how to stop it.
#[derive(Debug)]
pub struct Running {
    pub handle: PeerHandle,
    pub runtime: Arc<DockerRuntime>,
    pub identity: NodeIdentity,
    /// The join token this node started with.
    pub token: JoinToken,
    /// The join token admitting new members when the peer started: after
    /// `shoal token rotate`, the rotated one, not [`Running::token`].
    pub join_token: String,
    /// The cluster's id and API CA, whatever token this node joined with.
    pub cluster: ClusterIdentity,
    pub advertise: SocketAddr,
    pub shutdown: watch::Sender<bool>,
    pub driver: tokio::task::JoinHandle<()>,
    /// Says why the peer must stop on its own (a join that cannot complete).
    pub fatal: oneshot::Receiver<String>,
    /// The load balancer and DNS server for services.
    pub services: Services,
    /// The image transfers this peer has under way.
    pub transfers: Transfers,
}

/// A peer's data dir with its identity, loaded (or created) before the
/// peer starts: its logs name the node from their first line.
#[derive(Debug)]
pub struct Opened {
    data: DataDir,
    pub identity: NodeIdentity,
}

/// Opens the data dir and loads or creates the node identity.
pub fn open(config: &UpConfig) -> anyhow::Result<Opened> {
    let data = DataDir::open(&config.data_dir)?;
    let identity = load_identity(&data, config)?;
    Ok(Opened { data, identity })
}

/// Binds the transport, connects to the engine, adopts running pods and
/// starts the driver task.
pub async fn start(config: &UpConfig, opened: Opened) -> anyhow::Result<Running> {
    super::metrics::install();
    let Opened { data, mut identity } = opened;
    let token: JoinToken = identity
        .token
        .parse()
        .context("the join token in the data dir is malformed")?;
    let advertise = config.advertise;

    // The QUIC certificates are made for the node's signing key and name
    // its id; peers' are checked against the bindings the state holds.
    let node = NodeId(identity.node_id);
    let node_seed = data.node_key_seed()?;
    let persisted = data.load()?;
    // Bindings known from the last run are checked from the first
    // handshake on, not only once the peer is built.
    let mut key_book = KeyBook::default();
    if let Some(persisted) = &persisted {
        key_book.copy(&persisted.state);
    }
    let mut quic = QuicConfig::new(config.listen, token.clone());
    quic.advertise = Some(advertise.ip());
    quic.cert_validity = config.cert_validity;
    quic.node_key = Some(NodeKey {
        node,
        seed: node_seed,
    });
    quic.key_bindings = Some(key_book.bindings());
    super::join_rotation::configure(&mut quic, &identity);
    let (transport, inbound) = QuicTransport::bind(quic)
        .with_context(|| format!("cannot listen for peers on {}", config.listen))?;

    // A fresh member that joins may hold a rotated token: the members it
    // joins through tell it the cluster's identity.
    let learn = (identity.cluster.is_none() && persisted.is_none() && !config.join.is_empty())
        .then(|| Learn {
            transport: &transport,
            seeds: &config.join,
            within: super::cluster_identity::ASK_WITHIN,
        });
    let settled = super::cluster_identity::settle(&data, &mut identity, &token, learn).await?;
    let cluster = settled.cluster;

    let mut runtime_config = RuntimeConfig::new(cluster.cluster_id(), node);
    runtime_config.publish_ip = config.publish_ip.unwrap_or(advertise.ip());
    let (runtime, observations) = DockerRuntime::connect(runtime_config).await?;
    let runtime = Arc::new(runtime);
    let existing = match runtime.list_existing().await {
        Ok(pods) => pods,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list existing pods; none adopted");
            Vec::new()
        }
    };

    let service_ip = match config.service_address {
        Some(ip) => ip,
        None => default_service_ip(&runtime, advertise.ip()).await,
    };

    let info = node_info(config, &identity, advertise);
    let mut peer_config = PeerConfig::new(node, advertise, info);
    peer_config.keys = NodeKeys::from_seed(&node_seed);
    peer_config.first_join_token = identity.token.clone();
    peer_config.incarnation = identity.incarnation;
    peer_config.preset = config.preset;
    peer_config.rng_seed = rand::random();
    peer_config.forget_down_after = config.forget_down_after;
    peer_config.gc_grace = config.gc_grace;
    let mut peer = match persisted {
        Some(persisted) => Peer::resume(peer_config, persisted),
        None => Peer::new(peer_config),
    };
    // Connections accepted since the bind were checked against the
    // persisted bindings; the peer's own may differ.
    if key_book.refresh(peer.state(), peer.node_decision_changes()) {
        transport.recheck_peers();
    }
    let join_token =
        super::join_rotation::admitting_token(&identity, peer.state().desired.join_secrets().get())
            .to_owned();
    let writer = Writer::spawn(&data, config.fsync)?;
    peer.start(wall_now(), &config.join, &existing);
    // A restarted peer keeps trying the members it remembers (its site may
    // still be booting); a fresh one gives up on seeds that never answer.
    let join_watch = (!config.join.is_empty() || peer.remembers_members()).then(|| {
        let give_up = !(peer.remembers_members() || config.start_alone);
        JoinWatch::new(wall_now(), give_up.then_some(config.join_timeout))
    });
    let (fatal_tx, fatal) = oneshot::channel();
    let (foreign_tx, foreign) = mpsc::channel(1);
    // Ends when the driver (the receiver) is gone.
    tokio::spawn(foreign_scan_loop(runtime.clone(), foreign_tx));

    let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let (shutdown, shutdown_rx) = watch::channel(false);
    if settled.unconfirmed {
        // Ends after its bound, at an answer or at shutdown.
        tokio::spawn(super::cluster_identity::recheck(
            transport.clone(),
            config.join.clone(),
            cluster.clone(),
            shutdown_rx.clone(),
        ));
    }
    let (snapshots, reader) = SnapshotSource::new(&peer, &cluster.cluster_id());
    let handle = PeerHandle::new(requests_tx, reader);
    let images = PeerImages::new(
        transport.clone(),
        handle.clone(),
        &runtime,
        &peer.config().info.name,
    );
    let transfers = images.transfers();
    runtime.set_image_source(images.clone());
    let (holdings_tx, holdings) = mpsc::channel(1);
    // Ends when the driver (the receiver) is gone.
    tokio::spawn(holdings_loop(images.clone(), holdings_tx));
    let (problems_tx, listener_problems) = mpsc::channel(1);
    let events = EventStore::new(peer.config().info.name.clone(), EVENTS_KEPT);
    let driver = Driver {
        events,
        peer,
        snapshots,
        transport,
        inbound,
        runtime: runtime.clone(),
        observations,
        requests,
        writer,
        join_watch,
        fatal: Some(fatal_tx),
        foreign,
        images,
        holdings,
        listener_problems,
        join_trust: super::join_rotation::JoinTrust::new(data.clone(), identity.clone()),
        cluster_answer: super::cluster_identity::answer(&cluster),
        key_book,
    };
    // Before the driver starts pods: they get the DNS server if it runs.
    let services = start_services(
        ServicesConfig {
            node_ip: advertise.ip(),
            service_ip,
            dns_port: config.dns_port,
            lb_limits: config.lb_limits,
        },
        &cluster.cluster_id(),
        handle.clone(),
        &runtime,
        shutdown_rx.clone(),
    )
    .await;
    // Ends when the driver (the receiver) or the load balancer is gone.
    tokio::spawn(report_listener_problems(services.status(), problems_tx));
    let driver = tokio::spawn(driver.run(shutdown_rx));
    if !existing.is_empty() {
        tracing::info!(pods = existing.len(), "adopted running pods");
    }
    Ok(Running {
        handle,
        runtime,
        identity,
        token,
        join_token,
        cluster,
        advertise,
        shutdown,
        driver,
        fatal,
        services,
        transfers,
    })
}

fn load_identity(data: &DataDir, config: &UpConfig) -> anyhow::Result<NodeIdentity> {
    let identity = match data.load_identity()? {
        Some(mut known) => {
            if config.join_token.as_ref().is_some_and(|t| {
                !super::join_rotation::admits(&known, t, std::time::SystemTime::now())
            }) {
                bail!(
                    "{} belongs to another cluster (its join token differs from --join-token \
                     or SHOAL_JOIN_TOKEN); use another --data-dir to join a different cluster",
                    data.path().display()
                );
            }
            known.incarnation += 1;
            if let Some(name) = &config.name {
                known.name = name.clone();
            }
            known
        }
        None => {
            let token = match (&config.join_token, config.join.is_empty()) {
                (Some(token), _) => token.clone(),
                (None, true) => JoinToken::from_seed(rand::random()).to_string(),
                (None, false) => bail!(
                    "joining a cluster needs its join token: pass --join-token (or \
                     SHOAL_JOIN_TOKEN) with the join token the first peer printed"
                ),
            };
            token
                .parse::<JoinToken>()
                .context("--join-token is not a Shoal join token")?;
            let node_id: u64 = rand::random();
            NodeIdentity {
                node_id,
                incarnation: 0,
                name: config.name.clone().unwrap_or_else(|| default_name(node_id)),
                token,
                join_secrets: None,
                cluster: None,
            }
        }
    };
    data.save_identity(&identity)?;
    Ok(identity)
}

fn default_name(node_id: u64) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        format!("node-{:08x}", node_id >> 32)
    } else {
        format!("{host}-{:04x}", node_id >> 48)
    }
}

fn node_info(config: &UpConfig, identity: &NodeIdentity, advertise: SocketAddr) -> NodeInfo {
    let capacity = Resources {
        cpu_millis: config.cpu_millis.unwrap_or_else(detect_cpu_millis),
        memory_bytes: config.memory_bytes.unwrap_or_else(detect_memory_bytes),
    };
    NodeInfo {
        name: identity.name.clone(),
        peer_addr: advertise.to_string(),
        api_addr: config.api.to_string(),
        capacity,
        allocatable: capacity,
        labels: config.labels.clone(),
        runtime_healthy: false,
        runtime_error: Some("not checked yet".into()),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        leaving: false,
        started_ms: u64::try_from(wall_now().as_millis()).unwrap_or(u64::MAX),
        incarnation: 0,
        images: Default::default(),
        listener_problems: Default::default(),
    }
}

fn detect_cpu_millis() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64) * 1000
}

/// `MemTotal` of /proc/meminfo; 1 GiB where it cannot be read.
fn detect_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(1 << 30, |kb| kb * 1024)
}
