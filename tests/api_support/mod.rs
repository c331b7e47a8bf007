//! A cluster of real peer cores for API and CLI tests, without QUIC or Docker.
//!
//! One task owns N real [`Peer`]s (real SWIM, real CRDT state, real
//! placement and reconcile) and plays everything around them: it answers
//! `PeerHandle` requests, delivers timers at their deadlines, carries
//! datagrams and sync messages between the peers in memory, and stands in
//! for the container engine by reporting each started pod Running and ready
//! (and each stopped pod removed), as the Docker executor would. Each peer's
//! HTTP API is the real router on a real loopback listener, and reads are
//! served as the real driver serves them: from a [`SnapshotSource`] per
//! peer, noted after every input and before every answer to a write.
#![allow(dead_code)] // each test binary uses a different part

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal::peer::{Output, Peer, PeerConfig, PeerTimer};
use shoal::shell::api::{ApiState, router};
use shoal::shell::handle::{PeerHandle, REQUEST_QUEUE, Request};
use shoal::shell::snapshots::SnapshotSource;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::spec::Resources;
use shoal_runtime::vocabulary::{PodAction, PodEvent, PodObservation};
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
    let now = wall_now();
    let mut peers = Vec::new();
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
            started_ms: 0,
            incarnation: 0,
            images: Default::default(),
        };
        let mut peer = Peer::new(PeerConfig::new(NodeId(i as u64 + 1), peer_addr, info));
        let seeds: Vec<SocketAddr> = peers
            .first()
            .map(Peer::identity)
            .map(|id| id.addr)
            .into_iter()
            .collect();
        peer.start(now, &seeds, &[]);
        let (source, reader) = SnapshotSource::new(&peer, "test");
        peers.push(peer);
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
    tokio::spawn(world_loop(peers, sources, tagged_rx));
    nodes
}

fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Owns the peers until every handle is dropped.
async fn world_loop(
    mut peers: Vec<Peer>,
    mut sources: Vec<SnapshotSource>,
    mut requests: mpsc::Receiver<(usize, Request)>,
) {
    let mut timers: BinaryHeap<Reverse<(Duration, u64, usize, PeerTimer)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut inbox: Vec<Delivery> = Vec::new();
    for i in 0..peers.len() {
        drain(&mut peers, i, &mut timers, &mut seq, &mut inbox);
    }
    loop {
        deliver(&mut peers, &mut timers, &mut seq, &mut inbox);
        for (peer, source) in peers.iter().zip(&mut sources) {
            source.note(peer);
        }
        let next = timers.peek().map(|Reverse((at, ..))| *at);
        let sleep = next.map_or(Duration::from_secs(3600), |at| {
            at.saturating_sub(wall_now())
        });
        tokio::select! {
            request = requests.recv() => {
                let Some((i, request)) = request else { return };
                answer(&mut peers[i], &mut sources[i], request);
                drain(&mut peers, i, &mut timers, &mut seq, &mut inbox);
            }
            () = tokio::time::sleep(sleep) => {
                let now = wall_now();
                while let Some(Reverse((at, _, i, timer))) = timers.peek().copied() {
                    if at > now {
                        break;
                    }
                    timers.pop();
                    peers[i].handle_timer(now, timer);
                    drain(&mut peers, i, &mut timers, &mut seq, &mut inbox);
                }
            }
        }
    }
}

/// Something one peer produced for another peer, or for its own "engine".
enum Delivery {
    Datagram {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Sync {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Observation {
        to: usize,
        observation: PodObservation,
    },
}

fn answer(peer: &mut Peer, source: &mut SnapshotSource, request: Request) {
    match request {
        // No disk and no transport here: every write counts as durable
        // (and replicated) as soon as it is applied.
        Request::Command { command, reply, .. } => {
            let outcome = peer.handle_command(wall_now(), command).map_err(Into::into);
            source.note(peer);
            let _ = reply.send(outcome);
        }
        Request::Snapshot { reply } => {
            let _ = reply.send(source.current(peer));
        }
    }
}

fn drain(
    peers: &mut [Peer],
    i: usize,
    timers: &mut BinaryHeap<Reverse<(Duration, u64, usize, PeerTimer)>>,
    seq: &mut u64,
    inbox: &mut Vec<Delivery>,
) {
    let from = peers[i].config().addr;
    let index_of =
        |addr: SocketAddr, peers: &[Peer]| peers.iter().position(|p| p.config().addr == addr);
    while let Some(output) = peers[i].poll_output() {
        match output {
            Output::Datagram { to, bytes } => {
                if let Some(to) = index_of(to, peers) {
                    inbox.push(Delivery::Datagram { to, from, bytes });
                }
            }
            Output::Sync { to, bytes } => {
                if let Some(to) = index_of(to, peers) {
                    inbox.push(Delivery::Sync { to, from, bytes });
                }
            }
            Output::Timer { at, timer } => {
                *seq += 1;
                timers.push(Reverse((at, *seq, i, timer)));
            }
            Output::Pod(PodAction::Start { pod, template }) => {
                let template_hash = template.hash();
                for event in [
                    PodEvent::Running { ports: Vec::new() },
                    PodEvent::Ready(true),
                ] {
                    inbox.push(Delivery::Observation {
                        to: i,
                        observation: PodObservation {
                            pod: pod.clone(),
                            template_hash,
                            event,
                        },
                    });
                }
            }
            Output::Pod(PodAction::Stop {
                pod, template_hash, ..
            }) => {
                inbox.push(Delivery::Observation {
                    to: i,
                    observation: PodObservation {
                        pod,
                        template_hash,
                        event: PodEvent::Removed,
                    },
                });
            }
            Output::Pod(PodAction::StopOrphan { .. }) | Output::Persist(_) | Output::Event(_) => {}
        }
    }
}

/// Hands every pending delivery to its peer, draining after each.
fn deliver(
    peers: &mut [Peer],
    timers: &mut BinaryHeap<Reverse<(Duration, u64, usize, PeerTimer)>>,
    seq: &mut u64,
    inbox: &mut Vec<Delivery>,
) {
    while !inbox.is_empty() {
        for delivery in std::mem::take(inbox) {
            let now = wall_now();
            let to = match delivery {
                Delivery::Datagram { to, from, bytes } => {
                    peers[to].handle_datagram(now, from, &bytes);
                    to
                }
                Delivery::Sync { to, from, bytes } => {
                    peers[to].handle_sync(now, from, &bytes);
                    to
                }
                Delivery::Observation { to, observation } => {
                    peers[to].handle_observation(now, &observation);
                    to
                }
            };
            drain(peers, to, timers, seq, inbox);
        }
    }
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
