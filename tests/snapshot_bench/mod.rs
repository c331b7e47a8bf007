//! The cluster `tests/bench_snapshots.rs` measures, in process: peer 0, a
//! full peer core with 10,000 RCs × 3 replicas and ten nodes' records, on
//! a driver of its own shaped like `shell/driver.rs`; and nine light
//! stand-ins for the other nodes.
//!
//! **Why stand-ins.** Ten full peers at this size in one process (each
//! reconciling 30,000 replicas on every change, each shipping 3,000-pod
//! records) need more than the two shared cores of our machines: the
//! first attempt declared members down falsely for minutes and never
//! settled. The figures are about peer 0's driver, so the other nodes only
//! do what peer 0 sees of them: real peer cores with an empty state answer
//! its SWIM traffic (so its member view and placement count them alive),
//! their records are in peer 0's state from the start, and their changes
//! arrive as sync pushes of whole records, as a real node sends them. Sync
//! messages between peer 0 and the stand-ins are dropped: peer 0 still
//! builds and sends its anti-entropy digests, but nobody answers them (a
//! real peer with the same state would answer with nothing).
//!
//! The site starts as after a power cut: every peer resumes with the
//! state on disk and adopts the pods its engine already runs (placement
//! computed here with the real `assign`), so nothing starts or moves.
#![allow(dead_code)] // the baseline build uses a part

mod timers;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal::peer::sync_message::{SyncEnvelope, SyncMessage};
use shoal::peer::{NodeKeys, Output, Peer, PeerConfig, PeerEvent, Persisted};
use shoal::placement;
use shoal::shell::handle::Request;
use shoal_crdt_state::hlc::{Clock, DEFAULT_MAX_DRIFT_MS};
use shoal_crdt_state::identity::RecordSigner;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::{NodeRecord, ObservedDelta};
use shoal_crdt_state::pod::{PodPhase, PodStatus};
use shoal_crdt_state::spec::{
    ContainerSpec, EnvVar, PartitionPolicy, PodTemplate, PortSpec, Protocol, PullPolicy, RcSpec,
    Resources, RestartPolicy, UpdateStrategy,
};
use shoal_crdt_state::{ClusterState, Delta, wire};
use shoal_gossip::PeerIdentity;
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent, PodObservation};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub const RCS: usize = 10_000;
pub const REPLICAS: u32 = 3;
pub const NODES: usize = 10;
/// A 10 ms tick in peer 0's select: how late it fires is the loop latency.
pub const TICK: Duration = Duration::from_millis(10);
const BASE_PORT: u16 = 18_000;
/// Records start here, so that a stand-in's own record (version 1, 2, ...)
/// never replaces the one peer 0 was given.
const VERSION: u64 = 1_000_000;

pub fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], BASE_PORT + i as u16))
}

fn index_of(addr: SocketAddr) -> usize {
    usize::from(addr.port().saturating_sub(BASE_PORT))
}

fn node(i: usize) -> NodeId {
    NodeId(i as u64 + 1)
}

/// Signs `record` with `node`'s (test) key, as the node would.
fn sign(node: NodeId, record: &mut NodeRecord) {
    let bytes = shoal_crdt_state::identity::signed_bytes(node, record);
    record.signature = NodeKeys::insecure_for_tests(node).sign(&bytes);
}

fn config(i: usize) -> PeerConfig {
    PeerConfig::new(node(i), addr(i), info(i))
}

fn info(i: usize) -> NodeInfo {
    let room = Resources {
        cpu_millis: 64_000,
        memory_bytes: 256 << 30,
    };
    NodeInfo {
        name: format!("node-{i}"),
        peer_addr: addr(i).to_string(),
        api_addr: format!("127.0.0.1:{}", 19_000 + i),
        capacity: room,
        allocatable: room,
        labels: [("zone".to_owned(), format!("z{}", i % 3))].into(),
        runtime_healthy: true,
        runtime_error: None,
        version: "bench".to_owned(),
        leaving: false,
        started_ms: 0,
        incarnation: 0,
        images: Default::default(),
        listener_problems: Default::default(),
    }
}

/// A realistic RC: one container, three env vars, a port, small requests.
pub fn spec(i: usize) -> RcSpec {
    let name = format!("svc-{i:05}");
    let labels: shoal_crdt_state::spec::Labels = [
        ("app".to_owned(), name.clone()),
        ("team".to_owned(), format!("team-{}", i % 17)),
    ]
    .into();
    RcSpec {
        name: name.clone(),
        replicas: REPLICAS,
        selector: labels.clone(),
        template: PodTemplate {
            labels,
            containers: vec![ContainerSpec {
                name: "app".to_owned(),
                image: format!("registry.local/shop/{name}:1.{}", i % 10),
                command: Vec::new(),
                args: vec!["--listen".to_owned(), ":8080".to_owned()],
                env: (0..3)
                    .map(|k| EnvVar {
                        name: format!("SETTING_{k}"),
                        value: format!("value-{}", (i * 31 + k) % 1000),
                    })
                    .collect(),
                ports: vec![PortSpec {
                    container_port: 8080,
                    host_port: None,
                    protocol: Protocol::Tcp,
                    name: None,
                }],
                resources: Resources {
                    cpu_millis: 10,
                    memory_bytes: 16 << 20,
                },
                readiness_probe: None,
                image_pull_policy: PullPolicy::IfNotPresent,
            }],
            node_selector: Default::default(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 30,
        },
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::Available,
        paused: false,
    }
}

/// Everything the benchmark starts from.
pub struct Site {
    pub peer: Peer,
    /// What peer 0's engine reports about the pods it adopted.
    pub ready: Vec<PodObservation>,
    /// Nodes 1–9: empty peer cores that answer SWIM.
    pub standins: Vec<Peer>,
    /// Nodes 1–9's records as peer 0 holds them, for the churn.
    pub records: Vec<NodeRecord>,
}

/// The site just after a power cut (see the module doc).
pub fn whole_site(now: Duration) -> Site {
    let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let mut state = ClusterState::new();
    let mut clock = Clock::new(NodeId(u64::MAX), DEFAULT_MAX_DRIFT_MS);
    for i in 0..RCS {
        state.desired.apply(&spec(i), clock.tick(now_ms));
    }
    let rcs: BTreeMap<String, RcSpec> = state
        .desired
        .live_rcs()
        .map(|rc| (rc.name.to_owned(), rc.to_spec()))
        .collect();
    for i in 0..NODES {
        let key = NodeKeys::insecure_for_tests(node(i)).public_key();
        state.desired.bind_key(node(i), key, clock.tick(now_ms));
        state.observed.set_node_info(node(i), info(i));
    }
    let candidates = placement::inputs(
        &state.observed,
        state.desired.nodes(),
        &rcs,
        node(0),
        |_| true,
    );
    let assignment = placement::assign(&rcs, &candidates);
    let records: Vec<NodeRecord> = (0..NODES)
        .map(|i| NodeRecord {
            gc: Default::default(),
            signature: Default::default(),
            version: VERSION,
            info: info(i),
            pods: assignment
                .pods_for(node(i))
                .map(|pod| {
                    let template = &rcs[&pod.rc].template;
                    PodStatus {
                        id: pod.clone(),
                        template_hash: template.hash(),
                        image: template.primary_image().to_owned(),
                        phase: PodPhase::Running,
                        ready: true,
                        restarts: 0,
                        last_error: None,
                        preparing: None,
                        ports: Vec::new(),
                        claim: Some(assignment.fingerprint()),
                        available: true,
                        stalled: None,
                        started_ms: None,
                    }
                })
                .collect(),
        })
        .enumerate()
        .map(|(i, mut record)| {
            sign(node(i), &mut record);
            record
        })
        .collect();
    state.observed.merge_delta(ObservedDelta {
        nodes: records
            .iter()
            .enumerate()
            .map(|(i, r)| (node(i), r.clone()))
            .collect(),
    });
    let everyone = (0..NODES)
        .map(|i| PeerIdentity::new(node(i), addr(i), 0))
        .collect();
    let mut peer = Peer::resume(
        config(0),
        Persisted {
            state,
            members: everyone,
        },
    );
    let running: Vec<ExistingPod> = records[0]
        .pods
        .iter()
        .map(|p| ExistingPod {
            pod: p.id.clone(),
            template_hash: p.template_hash,
            running: true,
            ports: Vec::new(),
        })
        .collect();
    peer.start(now, &[], &running);
    let ready = running
        .into_iter()
        .map(|p| PodObservation {
            pod: p.pod,
            template_hash: p.template_hash,
            event: PodEvent::Ready(true),
        })
        .collect();
    let standins = (1..NODES)
        .map(|i| {
            let mut standin = Peer::new(config(i));
            standin.start(now, &[addr(0)], &[]);
            standin
        })
        .collect();
    Site {
        peer,
        ready,
        standins,
        records: records.into_iter().skip(1).collect(),
    }
}

/// A message between peer 0 and the stand-ins.
pub enum Msg {
    Datagram { from: SocketAddr, bytes: Vec<u8> },
    Sync { from: SocketAddr, bytes: Vec<u8> },
}

/// What peer 0's engine reports for a pod action: started pods run and
/// are ready at once, stopped ones are gone.
fn engine_reports(action: PodAction) -> Vec<PodObservation> {
    match action {
        PodAction::Start { pod, template } => {
            let template_hash = template.hash();
            [
                PodEvent::Running { ports: Vec::new() },
                PodEvent::Ready(true),
            ]
            .into_iter()
            .map(|event| PodObservation {
                pod: pod.clone(),
                template_hash,
                event,
            })
            .collect()
        }
        PodAction::Stop {
            pod, template_hash, ..
        } => vec![PodObservation {
            pod,
            template_hash,
            event: PodEvent::Removed,
        }],
        PodAction::StopOrphan { .. } => Vec::new(),
    }
}

/// Membership changes are worth seeing: a false down moves replicas.
fn log_event(peer: usize, event: &PeerEvent) {
    if matches!(
        event,
        PeerEvent::MemberDown(_) | PeerEvent::Rejoined | PeerEvent::Defunct
    ) {
        eprintln!("bench: peer {peer}: {event:?}");
    }
}

/// Peer 0's driver's figures, taken and reset per phase.
#[derive(Debug, Default)]
pub struct Metrics {
    /// How late each 10 ms tick fired (ms).
    pub ticks: Vec<f64>,
    /// How late each of the peer's own timers fired (ms).
    pub timers: Vec<f64>,
    /// Driver time per snapshot request (ms).
    pub requests: Vec<f64>,
    /// Driver time on snapshots: requests and (eager) publishing.
    pub on_snapshots: Duration,
    /// Members peer 0 declared down.
    pub downs: usize,
}

/// How the driver serves reads: the part that differs between builds.
pub trait Serve: Send + 'static {
    /// After every input, its outputs drained, and before a write is answered.
    fn after_input(&mut self, peer: &Peer);
    /// Answers a `Request::Snapshot`.
    fn answer(&mut self, peer: &Peer, request: Request);
    /// Snapshots built so far.
    fn builds(&self) -> u64;
}

/// Peer 0's driver: the shape of `shell/driver.rs` (one task, biased
/// select: timers first, then network input, then API requests; drain
/// after every input), with an in-memory network and engine.
pub struct Driver0<S: Serve> {
    pub peer: Peer,
    pub engine: VecDeque<PodObservation>,
    pub to_standins: mpsc::UnboundedSender<(SocketAddr, Msg)>,
    pub serve: S,
    pub metrics: Arc<Mutex<Metrics>>,
    pub builds: Arc<AtomicU64>,
    timers: timers::Timers,
}

impl<S: Serve> Driver0<S> {
    pub fn new(
        peer: Peer,
        engine: Vec<PodObservation>,
        to_standins: mpsc::UnboundedSender<(SocketAddr, Msg)>,
        serve: S,
    ) -> Self {
        Driver0 {
            peer,
            engine: engine.into(),
            to_standins,
            serve,
            metrics: Arc::default(),
            builds: Arc::default(),
            timers: timers::Timers::default(),
        }
    }

    fn drain(&mut self) {
        let me = addr(0);
        while let Some(output) = self.peer.poll_output() {
            match output {
                Output::Datagram { to, bytes } => {
                    let _ = self
                        .to_standins
                        .send((to, Msg::Datagram { from: me, bytes }));
                }
                Output::Sync { to, bytes } => {
                    let _ = self.to_standins.send((to, Msg::Sync { from: me, bytes }));
                }
                Output::Pod(action) => self.engine.extend(engine_reports(action)),
                Output::Event(event) => {
                    if matches!(event, PeerEvent::MemberDown(_)) {
                        self.metrics.lock().unwrap().downs += 1;
                    }
                    log_event(0, &event);
                }
                other => self.timers.absorb(other),
            }
        }
        let t = std::time::Instant::now();
        self.serve.after_input(&self.peer);
        self.metrics.lock().unwrap().on_snapshots += t.elapsed();
        self.builds.store(self.serve.builds(), Ordering::Relaxed);
    }

    pub async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Msg>,
        mut requests: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
    ) {
        self.drain();
        let mut tick_at = Instant::now() + TICK;
        loop {
            while let Some(observation) = self.engine.pop_front() {
                self.peer.handle_observation(wall_now(), &observation);
                self.drain();
            }
            let sleep = self
                .timers
                .next_deadline(&self.peer)
                .map_or(Duration::from_secs(3600), |at| {
                    at.saturating_sub(wall_now())
                });
            tokio::select! {
                biased;
                _ = stop.changed() => return,
                () = tokio::time::sleep(sleep) => {
                    let now = wall_now();
                    for at in self.timers.fire(&mut self.peer, now) {
                        self.metrics.lock().unwrap().timers.push(ms(now - at));
                    }
                }
                () = tokio::time::sleep_until(tick_at) => {
                    let now = Instant::now();
                    self.metrics.lock().unwrap().ticks.push(ms(now - tick_at));
                    tick_at = (tick_at + TICK).max(now);
                }
                Some(msg) = inbox.recv() => match msg {
                    Msg::Datagram { from, bytes } => self.peer.handle_datagram(wall_now(), from, &bytes),
                    Msg::Sync { from, bytes } => self.peer.handle_sync(wall_now(), from, &bytes),
                },
                Some(request) = requests.recv() => match request {
                    Request::Command { command, reply, .. } => {
                        let outcome = self.peer.handle_command(wall_now(), command);
                        self.drain();
                        let _ = reply.send(outcome.map_err(Into::into));
                    }
                    snapshot => {
                        let t = std::time::Instant::now();
                        self.serve.answer(&self.peer, snapshot);
                        let spent = t.elapsed();
                        let mut m = self.metrics.lock().unwrap();
                        m.requests.push(ms(spent));
                        m.on_snapshots += spent;
                        drop(m);
                        self.builds.store(self.serve.builds(), Ordering::Relaxed);
                    }
                },
            }
            self.drain();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nodes 1–9: their SWIM, and while `churn` is on, every `every` one of
/// them changes one pod's readiness and pushes its whole record to peer 0
/// (as a node does after a change).
pub async fn standins_loop(
    mut peers: Vec<Peer>,
    mut records: Vec<NodeRecord>,
    mut inbox: mpsc::UnboundedReceiver<(SocketAddr, Msg)>,
    to_peer0: mpsc::UnboundedSender<Msg>,
    churn: Arc<AtomicBool>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut timers: Vec<timers::Timers> = peers.iter().map(|_| timers::Timers::default()).collect();
    let mut pending: VecDeque<(usize, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut churn_tick = tokio::time::interval(every);
    let mut changes = 0usize;
    let route =
        |peers: &mut [Peer], i: usize, pending: &mut VecDeque<_>, timers: &mut [timers::Timers]| {
            let from = addr(i + 1);
            while let Some(output) = peers[i].poll_output() {
                match output {
                    Output::Datagram { to, bytes } => match index_of(to) {
                        0 => {
                            let _ = to_peer0.send(Msg::Datagram { from, bytes });
                        }
                        j if (1..NODES).contains(&j) => pending.push_back((j - 1, from, bytes)),
                        _ => {}
                    },
                    Output::Event(event) => log_event(i + 1, &event),
                    Output::Sync { .. } | Output::Pod(_) => {}
                    other => timers[i].absorb(other),
                }
            }
        };
    for i in 0..peers.len() {
        route(&mut peers, i, &mut pending, &mut timers);
    }
    loop {
        while let Some((i, from, bytes)) = pending.pop_front() {
            peers[i].handle_datagram(wall_now(), from, &bytes);
            route(&mut peers, i, &mut pending, &mut timers);
        }
        let next = (0..peers.len())
            .filter_map(|i| timers[i].next_deadline(&peers[i]))
            .min();
        let sleep = next.map_or(Duration::from_secs(3600), |at| {
            at.saturating_sub(wall_now())
        });
        tokio::select! {
            _ = stop.changed() => return,
            Some((to, msg)) = inbox.recv() => {
                if let (Msg::Datagram { from, bytes }, j) = (msg, index_of(to))
                    && (1..NODES).contains(&j)
                {
                    pending.push_back((j - 1, from, bytes));
                }
            }
            () = tokio::time::sleep(sleep) => {
                let now = wall_now();
                for i in 0..peers.len() {
                    if !timers[i].fire(&mut peers[i], now).is_empty() {
                        route(&mut peers, i, &mut pending, &mut timers);
                    }
                }
            }
            _ = churn_tick.tick(), if churn.load(Ordering::Relaxed) => {
                changes += 1;
                let (k, round) = (changes % records.len(), changes / records.len());
                let record = &mut records[k];
                let p = round % record.pods.len();
                record.pods[p].ready = !record.pods[p].ready;
                record.version += 1;
                sign(node(k + 1), record);
                let envelope = SyncEnvelope {
                    from: node(k + 1),
                    reply_to: addr(k + 1),
                    message: SyncMessage::Push {
                        delta: Delta::from(ObservedDelta {
                            nodes: BTreeMap::from([(node(k + 1), record.clone())]),
                        }),
                        digest: None,
                        piece: None,
                    },
                };
                let bytes = wire::encode(&envelope).expect("a record encodes");
                let _ = to_peer0.send(Msg::Sync { from: addr(k + 1), bytes });
            }
        }
    }
}
