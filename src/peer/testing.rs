//! A driver for tests: peer cores on a virtual clock, with an in-memory
//! network and container engine. Like quinn-proto's test pair, it plays
//! the driver's part exactly: after every input it drains every output and
//! asks each peer for its one deadline ([`Peer::poll_timeout`]); it keeps
//! no timers of its own.
//!
//! Messages (datagrams and sync messages) and engine reports arrive
//! [`Cluster::latency`] after they were sent, never lost. The engine
//! reports every started pod Running and ready, and every stopped pod
//! removed, as the Docker executor would. The clock moves only in
//! [`Cluster::run_until`]: a test on virtual time runs it forward; a test
//! serving real clients runs it up to the wall clock (see
//! `tests/api_support`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use shoal_runtime::vocabulary::{PodAction, PodEvent, PodObservation};

use super::{Command, CommandError, CommandOutcome, Output, Peer, PeerEvent};

/// Events kept per peer (the oldest are dropped beyond this).
const EVENTS_KEPT: usize = 1_000;

/// Inputs and timeouts one `run_until` may handle at a single instant:
/// more means a peer keeps setting a timer for `now`, which would never
/// let the clock move.
const STEPS_PER_INSTANT: u64 = 1_000_000;

/// Peers on one virtual clock. Peer `i` is `peers[i]`; it receives what is
/// sent to its `PeerConfig::addr`.
#[derive(Debug)]
pub struct Cluster {
    pub peers: Vec<Peer>,
    /// The virtual clock: wall time since the UNIX epoch, as `now` is for
    /// the core.
    pub now: Duration,
    /// How long a message, or an engine's report, takes.
    pub latency: Duration,
    /// What each peer did that is not sent anywhere.
    pub logs: Vec<PeerLog>,
    /// Crashed peers: they receive nothing and fire no timer.
    crashed: Vec<bool>,
    /// Inputs in flight: (arrival, sequence) -> (peer, input).
    inputs: BTreeMap<(Duration, u64), (usize, Input)>,
    seq: u64,
    /// When set, a copy of every datagram and sync message sent and every
    /// log record written (the fuzz targets' seed corpora).
    pub recorded: Option<Vec<Recorded>>,
}

/// Bytes a peer sent or wrote, as [`Cluster::recorded`] keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Datagram(Vec<u8>),
    Sync(Vec<u8>),
    /// The wire encoding of an [`Output::Persist`] delta (a `wal.log` record).
    Persist(Vec<u8>),
}

/// What a peer produced that the cluster does not deliver.
#[derive(Debug, Clone, Default)]
pub struct PeerLog {
    /// The latest events, oldest first (at most 1,000).
    pub events: VecDeque<PeerEvent>,
    /// `Output::Persist`s: records a real driver would log durably.
    pub persists: u64,
    /// `Output::Checkpoint`s: snapshots a real driver would write.
    pub checkpoints: u64,
    /// `handle_timeout` calls, and the latest one's time.
    pub timeouts: u64,
    pub last_timeout: Option<Duration>,
}

#[derive(Debug)]
enum Input {
    Datagram { from: SocketAddr, bytes: Vec<u8> },
    Sync { from: SocketAddr, bytes: Vec<u8> },
    Observation(PodObservation),
}

impl Cluster {
    /// No peers yet; the clock reads `now`.
    pub fn new(now: Duration, latency: Duration) -> Cluster {
        Cluster {
            peers: Vec::new(),
            now,
            latency,
            logs: Vec::new(),
            crashed: Vec::new(),
            inputs: BTreeMap::new(),
            seq: 0,
            recorded: None,
        }
    }

    /// Starts `peer` now, joining through `seeds`; returns its index.
    pub fn add(&mut self, peer: Peer, seeds: &[SocketAddr]) -> usize {
        self.peers.push(peer);
        self.logs.push(PeerLog::default());
        self.crashed.push(false);
        let i = self.peers.len() - 1;
        self.with_peer(i, |peer, now| peer.start(now, seeds, &[]));
        i
    }

    /// Gives peer `i` an input now (`f` gets the peer and the time), then
    /// drains it.
    pub fn with_peer<R>(&mut self, i: usize, f: impl FnOnce(&mut Peer, Duration) -> R) -> R {
        let r = f(&mut self.peers[i], self.now);
        self.drain(i);
        r
    }

    /// A user's command at peer `i`, now.
    pub fn command(&mut self, i: usize, command: Command) -> Result<CommandOutcome, CommandError> {
        self.with_peer(i, |peer, now| peer.handle_command(now, command))
    }

    /// Peer `i`'s process stops for good: it sends and answers nothing more.
    pub fn crash(&mut self, i: usize) {
        self.crashed[i] = true;
        self.inputs.retain(|_, (to, _)| *to != i);
    }

    /// Peer `i`'s process is replaced by `peer` (a restart), started now
    /// and joining through `seeds`. What was in flight to the old process
    /// is lost.
    pub fn restart(&mut self, i: usize, peer: Peer, seeds: &[SocketAddr]) {
        self.inputs.retain(|_, (to, _)| *to != i);
        self.peers[i] = peer;
        self.crashed[i] = false;
        self.with_peer(i, |peer, now| peer.start(now, seeds, &[]));
    }

    /// When something happens next: an arrival, or a live peer's deadline
    /// (never before `now`).
    pub fn next_event(&self) -> Option<Duration> {
        let arrival = self.inputs.first_key_value().map(|((at, _), _)| *at);
        let timeout = self.next_timeout().map(|(at, _)| at);
        arrival.into_iter().chain(timeout).min()
    }

    /// Runs for `span` of virtual time.
    pub fn run_for(&mut self, span: Duration) {
        self.run_until(self.now + span);
    }

    /// Handles everything that happens up to and including `until`, in
    /// time order (at one instant: arrivals in the order they were sent,
    /// then timeouts by peer index), then sets the clock to `until` (or
    /// leaves it, if it is later already).
    ///
    /// # Panics
    /// When a peer keeps the clock at one instant (a timer it sets for
    /// `now` every time it fires).
    pub fn run_until(&mut self, until: Duration) {
        let mut steps_here = 0u64;
        loop {
            let arrival = self.inputs.first_key_value().map(|((at, _), _)| *at);
            let timeout = self.next_timeout();
            let i = match (arrival, timeout) {
                (Some(at), t) if at <= until && t.is_none_or(|(t, _)| at <= t) => {
                    let Some(((at, _), (i, input))) = self.inputs.pop_first() else {
                        break;
                    };
                    steps_here = if at == self.now { steps_here + 1 } else { 0 };
                    self.now = self.now.max(at);
                    self.deliver(i, input);
                    i
                }
                (_, Some((at, i))) if at <= until => {
                    steps_here = if at == self.now { steps_here + 1 } else { 0 };
                    self.now = at;
                    let now = self.now;
                    self.peers[i].handle_timeout(now);
                    self.logs[i].timeouts += 1;
                    self.logs[i].last_timeout = Some(now);
                    i
                }
                _ => break,
            };
            assert!(
                steps_here < STEPS_PER_INSTANT,
                "peer {i} keeps the virtual clock at {:?}: a timer it sets for now every time",
                self.now
            );
            self.drain(i);
        }
        self.now = self.now.max(until);
    }

    /// The earliest deadline of a live peer (not before `now`), and whose.
    fn next_timeout(&self) -> Option<(Duration, usize)> {
        self.peers
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.crashed[*i])
            .filter_map(|(i, peer)| Some((peer.poll_timeout()?.max(self.now), i)))
            .min()
    }

    fn deliver(&mut self, i: usize, input: Input) {
        let now = self.now;
        let peer = &mut self.peers[i];
        match input {
            Input::Datagram { from, bytes } => peer.handle_datagram(now, from, &bytes),
            Input::Sync { from, bytes } => peer.handle_sync(now, from, &bytes),
            Input::Observation(observation) => peer.handle_observation(now, &observation),
        }
    }

    fn send(&mut self, to: usize, input: Input) {
        self.seq += 1;
        self.inputs
            .insert((self.now + self.latency, self.seq), (to, input));
    }

    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.peers
            .iter()
            .enumerate()
            .position(|(i, p)| !self.crashed[i] && p.config().addr == addr)
    }

    fn record(&mut self, what: impl FnOnce() -> Recorded) {
        if let Some(recorded) = &mut self.recorded {
            recorded.push(what());
        }
    }

    /// Carries out every pending output of peer `i`.
    fn drain(&mut self, i: usize) {
        if self.crashed[i] {
            while self.peers[i].poll_output().is_some() {}
            return;
        }
        let from = self.peers[i].config().addr;
        while let Some(output) = self.peers[i].poll_output() {
            match output {
                Output::Datagram { to, bytes } => {
                    self.record(|| Recorded::Datagram(bytes.clone()));
                    if let Some(to) = self.index_of(to) {
                        self.send(to, Input::Datagram { from, bytes });
                    }
                }
                Output::Sync { to, bytes } => {
                    self.record(|| Recorded::Sync(bytes.clone()));
                    if let Some(to) = self.index_of(to) {
                        self.send(to, Input::Sync { from, bytes });
                    }
                }
                Output::Pod(action) => {
                    for observation in engine_reports(action) {
                        self.send(i, Input::Observation(observation));
                    }
                }
                Output::Persist(delta) => {
                    self.record(|| {
                        Recorded::Persist(
                            shoal_crdt_state::wire::encode(&delta).unwrap_or_default(),
                        )
                    });
                    self.logs[i].persists += 1;
                }
                Output::Checkpoint => self.logs[i].checkpoints += 1,
                Output::Event(event) => {
                    let events = &mut self.logs[i].events;
                    if events.len() == EVENTS_KEPT {
                        events.pop_front();
                    }
                    events.push_back(event);
                }
            }
        }
    }
}

/// Images under this prefix are missing from the fake engine.
pub const MISSING_IMAGES: &str = "missing/";

/// What the engine reports after `action`: a started pod runs and is
/// ready (or its image is missing), a stopped one is removed; a foreign
/// pod's stop is not reported.
fn engine_reports(action: PodAction) -> Vec<PodObservation> {
    match action {
        PodAction::Start { pod, template } => {
            let template_hash = template.hash();
            let image = template.primary_image();
            let events = if image.starts_with(MISSING_IMAGES) {
                vec![PodEvent::ImageError(format!("No such image: {image}"))]
            } else {
                vec![
                    PodEvent::Running { ports: Vec::new() },
                    PodEvent::Ready(true),
                ]
            };
            events
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
