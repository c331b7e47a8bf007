//! The driver task: the one owner of the peer core.
//!
//! It feeds the core every input (datagrams, sync messages, runtime
//! observations, engine health, API requests, timers), and after each one
//! drains every output: datagrams and sync messages to the QUIC transport,
//! pod actions to the Docker runtime, timers into its own deadline-ordered
//! heap. The loop never awaits anything slow: sends are handed to the
//! transport or to short spawned tasks, so SWIM timers stay on time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use shoal_gossip::quic::QuicTransport;
use shoal_runtime::docker::DockerRuntime;
use shoal_runtime::vocabulary::PodObservation;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::handle::{Request, Snapshot};
use super::persist::DataDir;
use crate::peer::{Output, Peer, PeerEvent, PeerTimer};

/// Sync messages in flight at once; beyond that they are dropped (and
/// anti-entropy repairs what they carried).
const MAX_SYNC_IN_FLIGHT: usize = 64;

/// How often the state is written to the data dir when it changed.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Wall time since the UNIX epoch: the peer core's `now`.
pub fn wall_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Everything the driver owns besides the peer.
#[derive(Debug)]
pub struct Driver {
    pub peer: Peer,
    pub cluster: String,
    pub transport: QuicTransport,
    pub inbound: shoal_gossip::quic::Inbound,
    pub runtime: Arc<DockerRuntime>,
    pub observations: mpsc::Receiver<PodObservation>,
    pub requests: mpsc::Receiver<Request>,
    pub data: DataDir,
}

/// Timers in deadline order; ties in the order they were scheduled.
#[derive(Debug, Default)]
struct TimerHeap {
    heap: BinaryHeap<Reverse<(Duration, u64, PeerTimer)>>,
    seq: u64,
}

impl TimerHeap {
    fn push(&mut self, at: Duration, timer: PeerTimer) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, timer)));
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn pop_due(&mut self, now: Duration) -> Option<PeerTimer> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(t)| t.2),
            _ => None,
        }
    }
}

impl Driver {
    /// Runs until `shutdown` fires, then leaves the cluster and saves state.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut timers = TimerHeap::default();
        let sync_slots = Arc::new(Semaphore::new(MAX_SYNC_IN_FLIGHT));
        let mut health = self.runtime.health_watch();
        let mut persisted_at = self.peer.state_changes();
        let mut persist_tick = tokio::time::interval(PERSIST_EVERY);
        self.report_health(&health.borrow().clone());
        self.drain(&mut timers, &sync_slots);

        loop {
            let deadline = timers
                .next_deadline()
                .map(|at| Instant::now() + at.saturating_sub(wall_now()))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep_until(deadline) => {
                    let now = wall_now();
                    while let Some(timer) = timers.pop_due(now) {
                        self.peer.handle_timer(now, timer);
                        self.drain(&mut timers, &sync_slots);
                    }
                }
                Some((from, bytes)) = self.inbound.datagrams.recv() => {
                    self.peer.handle_datagram(wall_now(), from, &bytes);
                }
                Some((from, bytes)) = self.inbound.pushes.recv() => {
                    self.peer.handle_sync(wall_now(), from, &bytes);
                }
                Some(request) = self.inbound.requests.recv() => {
                    // Sync is one-way pushes; a request is answered with nothing.
                    tokio::spawn(request.responder.respond(Bytes::new()));
                }
                Some(observation) = self.observations.recv() => {
                    tracing::debug!(pod = %observation.pod, event = ?observation.event, "observed");
                    self.peer.handle_observation(wall_now(), &observation);
                }
                Ok(()) = health.changed() => {
                    let now_health = health.borrow_and_update().clone();
                    self.report_health(&now_health);
                }
                Some(request) = self.requests.recv() => self.answer(request),
                _ = persist_tick.tick() => {
                    if self.peer.state_changes() != persisted_at {
                        persisted_at = self.peer.state_changes();
                        self.persist();
                    }
                }
            }
            self.drain(&mut timers, &sync_slots);
        }

        tracing::info!("leaving the cluster");
        self.peer.leave(wall_now());
        self.drain(&mut timers, &sync_slots);
        self.persist();
        // Give the leave datagrams a moment to go out before closing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.transport.shutdown().await;
    }

    fn report_health(&mut self, health: &shoal_runtime::vocabulary::RuntimeHealth) {
        if !health.is_healthy() {
            tracing::warn!(
                error = health.error().unwrap_or(""),
                "container runtime unhealthy"
            );
        }
        self.peer.handle_runtime_health(
            wall_now(),
            health.is_healthy(),
            health.error().map(str::to_owned),
        );
    }

    fn persist(&self) {
        if let Err(e) = self.data.save_state(self.peer.state()) {
            tracing::error!(error = %e, "cannot persist the cluster state");
        }
    }

    fn answer(&mut self, request: Request) {
        match request {
            Request::Command { command, reply } => {
                let result = self.peer.handle_command(wall_now(), command);
                let _ = reply.send(result);
            }
            Request::Snapshot { reply } => {
                let _ = reply.send(Snapshot::of(&self.peer, &self.cluster));
            }
        }
    }

    /// Carries out every pending output of the core.
    fn drain(&mut self, timers: &mut TimerHeap, sync_slots: &Arc<Semaphore>) {
        while let Some(output) = self.peer.poll_output() {
            match output {
                Output::Datagram { to, bytes } => {
                    if let Err(e) = self.transport.send_datagram(to, Bytes::from(bytes)) {
                        tracing::debug!(%to, error = %e, "datagram not sent");
                    }
                }
                Output::Sync { to, bytes } => self.send_sync(to, bytes, sync_slots),
                Output::Timer { at, timer } => timers.push(at, timer),
                Output::Pod(action) => {
                    tracing::info!(pod = %action.pod(), action = action_name(&action), "pod action");
                    self.runtime.execute(action);
                }
                Output::Event(event) => log_event(&event),
            }
        }
    }

    fn send_sync(&self, to: SocketAddr, bytes: Vec<u8>, sync_slots: &Arc<Semaphore>) {
        let Ok(permit) = sync_slots.clone().try_acquire_owned() else {
            tracing::warn!(%to, "too many sync messages in flight; dropped one");
            return;
        };
        let transport = self.transport.clone();
        tokio::spawn(async move {
            if let Err(e) = transport.push(to, Bytes::from(bytes)).await {
                tracing::debug!(%to, error = %e, "sync message not delivered");
            }
            drop(permit);
        });
    }
}

fn action_name(action: &shoal_runtime::vocabulary::PodAction) -> &'static str {
    match action {
        shoal_runtime::vocabulary::PodAction::Start { .. } => "start",
        shoal_runtime::vocabulary::PodAction::Stop { .. } => "stop",
    }
}

fn log_event(event: &PeerEvent) {
    match event {
        PeerEvent::MemberUp(node) => tracing::info!(%node, "member up"),
        PeerEvent::MemberDown(node) => tracing::warn!(%node, "member down"),
        PeerEvent::Rejoined => tracing::warn!("we were declared down; rejoined"),
        PeerEvent::Defunct => tracing::error!("declared down and cannot rejoin: restart shoal"),
        PeerEvent::Unplaced { pod, reason } => tracing::warn!(%pod, %reason, "replica unplaced"),
        PeerEvent::BadMessage { from, error } => tracing::debug!(%from, %error, "bad message"),
    }
}
