//! A cluster of real peer cores for API and CLI tests, without QUIC or Docker.
//!
//! One task owns N real [`Peer`]s (real SWIM, real CRDT state, real
//! placement and reconcile) in a [`testing::Cluster`] whose clock follows
//! the wall clock: it answers `PeerHandle` requests, wakes the peers at
//! their deadlines, carries datagrams and sync messages between them in
//! memory, and stands in for the container engine by reporting each
//! started pod Running and ready (and each stopped pod removed), as the
//! Docker executor would. Each peer's
//! HTTP API is the real router on a real loopback listener, and reads are
//! served as the real driver serves them: from a [`SnapshotSource`] per
//! peer, noted after every input and before every answer to a write.
#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal::peer::testing;
use shoal::peer::{Peer, PeerConfig, PeerEvent};
use shoal::shell::api::{ApiState, router};
use shoal::shell::events::{ClusterEvents, EventStore, store::EVENTS_KEPT};
use shoal::shell::handle::{PeerHandle, REQUEST_QUEUE, Request};
use shoal::shell::snapshots::SnapshotSource;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::spec::Resources;
use tokio::sync::mpsc;

pub const EXAMPLE: &str = include_str!("../../examples/hello-local.yaml");

/// One peer as a test sees it.
#[derive(Debug, Clone)]
pub struct TestNode {
    pub name: String,
    pub handle: PeerHandle,
    /// `http://127.0.0.1:PORT`, the API's base URL.
    pub url: String,
}

/// Starts `names.len()` peers (the first creates the cluster, the others
/// join through it), each with its API on 127.0.0.1:0. `api_token` protects
/// every API. Returns once every API listens.
pub async fn start_cluster(names: &[&str], api_token: Option<&str>) -> Vec<TestNode> {
    // Messages and engine reports arrive at once, as over loopback.
    let mut cluster = testing::Cluster::new(wall_now(), Duration::ZERO);
    let mut sources = Vec::new();
    let mut nodes = Vec::new();
    let (tagged_tx, tagged_rx) = mpsc::channel::<(usize, Request)>(REQUEST_QUEUE);
    for (i, name) in names.iter().enumerate() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let api = listener.local_addr().expect("listener address");
        let peer_addr: SocketAddr = format!("127.0.0.1:{}", 17_000 + i).parse().unwrap();
        let info = NodeInfo {
            name: (*name).to_owned(),
            peer_addr: peer_addr.to_string(),
            api_addr: api.to_string(),
            capacity: Resources {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
            },
            allocatable: Resources {
                cpu_millis: 2000,
                memory_bytes: 4 << 30,
            },
            labels: [("zone".to_owned(), format!("z{i}"))].into(),
            runtime_healthy: true,
            runtime_error: None,
            version: "test".to_owned(),
            leaving: false,
            // Wall time, as `shoal up` stamps it (the AGE of `get nodes`);
            // nodes start in id order, so ties still break the same way.
            started_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            incarnation: 0,
            images: Default::default(),
            listener_problems: Default::default(),
        };
        let peer = Peer::new(PeerConfig::new(NodeId(i as u64 + 1), peer_addr, info));
        let seeds: Vec<SocketAddr> = cluster
            .peers
            .first()
            .map(Peer::identity)
            .map(|id| id.addr)
            .into_iter()
            .collect();
        let i = cluster.add(peer, &seeds);
        let (source, reader) = SnapshotSource::new(&cluster.peers[i], "test");
        sources.push(source);

        let (tx, mut rx) = mpsc::channel::<Request>(REQUEST_QUEUE);
        let tagged = tagged_tx.clone();
        tokio::spawn(async move {
            while let Some(request) = rx.recv().await {
                if tagged.send((i, request)).await.is_err() {
                    break;
                }
            }
        });
        let handle = PeerHandle::new(tx, reader);
        let state = ApiState {
            handle: handle.clone(),
            runtime: None,
            api_token: api_token.map(str::to_owned),
            cluster_ca: None,
            limits: shoal::shell::api::limits::ClientLimits::new(
                shoal::shell::api::limits::LimitSettings::UNLIMITED,
            ),
            service_dns: Err("this test runs no service plane".to_owned()),
            transfers: Default::default(),
        };
        tokio::spawn(async move {
            axum::serve(listener, router(state))
                .await
                .expect("serve the API");
        });
        nodes.push(TestNode {
            name: (*name).to_owned(),
            handle,
            url: format!("http://{api}"),
        });
    }
    drop(tagged_tx);
    tokio::spawn(world_loop(cluster, sources, tagged_rx));
    nodes
}

fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Owns the peers until every handle is dropped.
async fn world_loop(
    mut cluster: testing::Cluster,
    mut sources: Vec<SnapshotSource>,
    mut requests: mpsc::Receiver<(usize, Request)>,
) {
    loop {
        cluster.run_until(wall_now());
        for (peer, source) in cluster.peers.iter().zip(&mut sources) {
            source.note(peer);
        }
        let sleep = cluster
            .next_event()
            .map_or(Duration::from_secs(3600), |at| {
                at.saturating_sub(wall_now())
            });
        tokio::select! {
            request = requests.recv() => {
                let Some((i, request)) = request else { return };
                cluster.run_until(wall_now());
                answer(&mut cluster, i, &mut sources[i], request);
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

fn answer(cluster: &mut testing::Cluster, i: usize, source: &mut SnapshotSource, request: Request) {
    match request {
        // No disk and no transport here: every write counts as durable
        // (and replicated) as soon as it is applied.
        Request::Command { command, reply, .. } => {
            let outcome = cluster.command(i, command).map_err(Into::into);
            source.note(&cluster.peers[i]);
            let _ = reply.send(outcome);
        }
        Request::Snapshot { reply } => {
            let _ = reply.send(source.current(&cluster.peers[i]));
        }
        // This peer's recorded events (no transport here to ask the others).
        Request::Events { reply, .. } => {
            let name = cluster.peers[i].config().info.name.clone();
            let mut store = EventStore::new(name, EVENTS_KEPT);
            for event in &cluster.logs[i].events {
                if let PeerEvent::Recorded(record) = event {
                    store.record(record.clone());
                }
            }
            let _ = reply.send(ClusterEvents {
                events: store.list(),
                unanswered: Vec::new(),
            });
        }
        // No transport here: its counters stay zero.
        Request::Stats { reply } => {
            let _ = reply.send(shoal::shell::metrics::CoreStats {
                peer: cluster.peers[i].stats(),
                membership: cluster.peers[i].membership_stats(),
                ..Default::default()
            });
        }
    }
}

/// An HTTP client for the test APIs on 127.0.0.1: never through a proxy
/// that the environment names.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Polls `check` every 50 ms until it returns true, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
