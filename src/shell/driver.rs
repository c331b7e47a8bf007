//! The driver task: the one owner of the peer core.
//!
//! It feeds the core every input (datagrams, sync messages, runtime
//! observations, engine health, API requests, timers), and after each one
//! drains every output: datagrams and sync messages to the QUIC transport,
//! pod actions to the Docker runtime, records and checkpoints to make
//! durable to the writer thread. The core keeps its timers: the loop
//! sleeps until its one deadline ([`Peer::poll_timeout`]). The loop never
//! awaits anything slow: sends are handed to the transport or to short
//! spawned tasks, disk writes to the writer, and answers that must wait for
//! the disk are held in [`Acks`] until the writer reports them durable.
//! Reads cost it little: it notes what changed after every input and builds
//! a snapshot (a copy of pointers) only when a reader finds the published
//! one stale (see [`snapshots`](super::snapshots)).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use shoal_crdt_state::node::{ImageHoldings, ListenerProblems};
use shoal_gossip::quic::QuicTransport;
use shoal_runtime::docker::DockerRuntime;
use shoal_runtime::vocabulary::{ForeignPod, PodObservation};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::acks::{self, Acks, Held};
use super::bad_messages::BadMessageLog;
use super::cluster_identity;
use super::events::{ClusterEvents, EventStore, fanout};
use super::handle::{Ack, Request};
use super::images::PeerImages;
use super::images::wire::FetchRequest;
use super::join_watch::{JoinVerdict, JoinWatch};
use super::metrics::CoreStats;
use super::metrics::catalog::SYNC_DROPPED;
use super::metrics::timing::{PlacementTimer, PodStartTimer};
use super::persist::{Durability, Writer};
use super::snapshots::SnapshotSource;
use crate::peer::sync_message::{SyncEnvelope, SyncMessage};
use crate::peer::{Output, Peer, PeerEvent};

/// Sync streams (a batch of messages for one peer) in flight at once;
/// beyond that they are dropped (and anti-entropy repairs what they carried).
const MAX_SYNC_IN_FLIGHT: usize = 64;

/// How often a join in progress is checked (see [`JoinWatch`]).
const JOIN_WATCH_EVERY: Duration = Duration::from_secs(1);

/// How often the engine is listed for pods other node ids left on it.
pub const FOREIGN_SCAN_EVERY: Duration = Duration::from_secs(10);

/// Lists the pods other node ids left on the engine, now and then every
/// [`FOREIGN_SCAN_EVERY`], for the driver (see `peer/lifecycle.rs`).
pub async fn foreign_scan_loop(runtime: Arc<DockerRuntime>, tx: mpsc::Sender<Vec<ForeignPod>>) {
    let mut tick = tokio::time::interval(FOREIGN_SCAN_EVERY);
    loop {
        tick.tick().await;
        match runtime.list_foreign().await {
            Ok(pods) => {
                if tx.send(pods).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot list pods of other node ids"),
        }
    }
}

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
    /// What this peer decided and did, for `get events` (see [`events`](super::events)).
    pub events: EventStore,
    /// Publishes what the API reads; built only when a reader asks.
    pub snapshots: SnapshotSource,
    pub transport: QuicTransport,
    pub inbound: shoal_gossip::quic::Inbound,
    pub runtime: Arc<DockerRuntime>,
    pub observations: mpsc::Receiver<PodObservation>,
    pub requests: mpsc::Receiver<Request>,
    /// Makes the state durable, off this task.
    pub writer: Writer,
    /// Watches the join until another member is seen; `None`: nothing to join.
    pub join_watch: Option<JoinWatch>,
    /// Told why the peer must stop (a join that cannot complete).
    pub fatal: Option<tokio::sync::oneshot::Sender<String>>,
    /// Pods other node ids left on our engine, listed every so often.
    pub foreign: mpsc::Receiver<Vec<ForeignPod>>,
    /// Serves the images peers fetch from us.
    pub images: Arc<PeerImages>,
    /// The images of the cluster's RCs our engine holds, when that changes.
    pub holdings: mpsc::Receiver<ImageHoldings>,
    /// What our load balancer cannot listen on, when that changes.
    pub listener_problems: mpsc::Receiver<ListenerProblems>,
    /// Follows join-token rotations (trust, node.json).
    pub join_trust: super::join_rotation::JoinTrust,
    /// What a new member asking the cluster's identity is told.
    pub cluster_answer: Bytes,
    /// The key bindings the transport checks peers' certificates against.
    pub key_book: super::key_book::KeyBook,
}

/// What the loop keeps besides the [`Driver`].
struct LoopState {
    sync_slots: Arc<Semaphore>,
    acks: Acks,
    /// Desired-state records the last drain sent to the writer (the
    /// records of a command, to replicate when asked).
    persisted: shoal_crdt_state::Delta,
    /// Pods started and not yet running, for the start latency metric.
    pod_starts: PodStartTimer,
    bad_messages: BadMessageLog,
}

impl Driver {
    /// Runs until `shutdown` fires, then leaves the cluster and saves state.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut ls = LoopState {
            sync_slots: Arc::new(Semaphore::new(MAX_SYNC_IN_FLIGHT)),
            acks: Acks::default(),
            persisted: shoal_crdt_state::Delta::default(),
            pod_starts: PodStartTimer::default(),
            bad_messages: BadMessageLog::default(),
        };
        let mut health = self.runtime.health_watch();
        let mut durability = self.writer.durability();
        let mut join_tick = tokio::time::interval(JOIN_WATCH_EVERY);
        self.report_health(&health.borrow().clone());
        self.drain(&mut ls);

        loop {
            let deadline = self
                .peer
                .poll_timeout()
                .map(|at| Instant::now() + at.saturating_sub(wall_now()))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                () = tokio::time::sleep_until(deadline) => {
                    let timer = PlacementTimer::start(&self.peer);
                    self.peer.handle_timeout(wall_now());
                    timer.finish(&self.peer);
                }
                Some((from, node, bytes)) = self.inbound.datagrams.recv() => {
                    self.peer.handle_datagram_from(wall_now(), from, node, &bytes);
                }
                Some((from, node, bytes)) = self.inbound.pushes.recv() => {
                    self.peer.handle_sync_from(wall_now(), from, node, &bytes);
                }
                Some(request) = self.inbound.requests.recv() => {
                    if cluster_identity::is_request(&request.body) {
                        // A new member learns the cluster's identity.
                        let answer = self.cluster_answer.clone();
                        tokio::spawn(async move {
                            let _ = request.responder.respond(answer).await;
                        });
                    } else if fanout::is_request(&request.body) {
                        // A peer gathers the cluster's events.
                        let answer = fanout::answer(&self.events.list());
                        tokio::spawn(async move {
                            let _ = request.responder.respond(answer).await;
                        });
                    } else if let Some(fetch) = FetchRequest::decode(&request.body) {
                        // A peer fetches an image: served off this task.
                        self.images.serve(fetch, request.responder);
                    } else {
                        // A peer asks us to store a write durably (a replicated
                        // acknowledgement): merge it, answer once it is on disk.
                        self.peer.handle_sync_from(
                            wall_now(),
                            request.remote,
                            request.node,
                            &request.body,
                        );
                        self.drain(&mut ls);
                        let seq = self.writer.last_queued();
                        self.hold(&mut ls, seq, Held::Replica(request.responder));
                    }
                }
                Some(held) = self.holdings.recv() => {
                    self.peer.handle_images(wall_now(), held);
                }
                Some(problems) = self.listener_problems.recv() => {
                    self.peer.handle_listener_problems(wall_now(), problems);
                }
                Some(pods) = self.foreign.recv() => {
                    self.peer.handle_foreign_pods(wall_now(), &pods);
                }
                Some(observation) = self.observations.recv() => {
                    tracing::debug!(pod = %observation.pod, event = ?observation.event, "observed");
                    ls.pod_starts.note_observation(&observation);
                    self.peer.handle_observation(wall_now(), &observation);
                }
                Ok(()) = health.changed() => {
                    let now_health = health.borrow_and_update().clone();
                    self.report_health(&now_health);
                }
                Ok(()) = durability.changed() => {
                    let durable: Durability = durability.borrow_and_update().clone();
                    ls.acks.release(&durable);
                }
                Some(request) = self.requests.recv() => self.answer(request, &mut ls),
                _ = join_tick.tick(), if self.join_watch.is_some() => self.watch_join(),
            }
            self.drain(&mut ls);
            self.snapshots.note(&self.peer);
            self.join_trust.note(&self.peer, &self.transport);
            if self
                .key_book
                .refresh(self.peer.state(), self.peer.node_decision_changes())
            {
                self.transport.recheck_peers();
            }
        }

        tracing::info!("leaving the cluster (pods keep running)");
        self.peer.prepare_leave(wall_now());
        self.drain(&mut ls);
        // Let the "leaving" record reach the others before SWIM says we are
        // down, so they hold our replicas instead of starting copies.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.peer.leave(wall_now());
        self.drain(&mut ls);
        self.writer.snapshot(self.peer.persisted(wall_now()));
        // Give the leave datagrams a moment to go out before closing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let writer = self.writer;
        if tokio::task::spawn_blocking(move || writer.close())
            .await
            .is_err()
        {
            tracing::error!("the final state write did not finish");
        }
        self.transport.shutdown().await;
    }

    /// Reports a join that does not complete; gives up when told to.
    fn watch_join(&mut self) {
        let Some(watch) = &mut self.join_watch else {
            return;
        };
        match watch.check(wall_now(), &self.peer, &self.transport) {
            JoinVerdict::Waiting => {}
            JoinVerdict::Joined => self.join_watch = None,
            JoinVerdict::GiveUp(why) => {
                self.join_watch = None;
                tracing::error!("{why}");
                if let Some(fatal) = self.fatal.take() {
                    let _ = fatal.send(why);
                }
            }
        }
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

    fn answer(&mut self, request: Request, ls: &mut LoopState) {
        match request {
            Request::Command {
                command,
                ack,
                reply,
            } => {
                let outcome = match self.peer.handle_command(wall_now(), command) {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        return;
                    }
                };
                ls.persisted = shoal_crdt_state::Delta::default();
                self.drain(ls);
                // Before any answer: a reader who saw it reads the write.
                self.snapshots.note(&self.peer);
                let records = std::mem::take(&mut ls.persisted);
                let replication = (ack == Ack::Replicated).then(|| self.replicate(records));
                // Also an unchanged write waits: the state it found must be
                // durable before we say so.
                let seq = self.writer.last_queued();
                self.hold(
                    ls,
                    seq,
                    Held::Command {
                        reply,
                        outcome,
                        replication,
                    },
                );
            }
            Request::Snapshot { reply } => {
                let _ = reply.send(self.snapshots.current(&self.peer));
            }
            Request::Events { cluster, reply } => self.answer_events(cluster, reply),
            Request::Stats { reply } => {
                let _ = reply.send(CoreStats::of(&self.peer, &self.transport));
            }
        }
    }

    /// Our events at once; the cluster's from a task that asks the live
    /// members (the loop never waits for the network).
    fn answer_events(&self, cluster: bool, reply: oneshot::Sender<ClusterEvents>) {
        let observed = &self.peer.state().observed;
        let names: BTreeMap<String, String> = observed
            .nodes()
            .map(|(node, record)| (node.to_string(), record.info.name.clone()))
            .collect();
        let local = self.events.list();
        if !cluster {
            let _ = reply.send(ClusterEvents {
                events: fanout::name_nodes(local, &names),
                unanswered: Vec::new(),
            });
            return;
        }
        let peers: Vec<(String, SocketAddr)> = self
            .peer
            .members()
            .iter()
            .map(|(node, addr)| {
                let name = observed
                    .get(*node)
                    .map_or_else(|| node.to_string(), |r| r.info.name.clone());
                (name, *addr)
            })
            .collect();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let _ = reply.send(fanout::gather(transport, peers, local, &names).await);
        });
    }

    /// Holds `answer` until `seq` is durable (at once if it already is:
    /// an unchanged write may have nothing new to wait for).
    fn hold(&self, ls: &mut LoopState, seq: u64, answer: Held) {
        ls.acks.hold(seq, answer);
        let durability = self.writer.durability().borrow().clone();
        ls.acks.release(&durability);
    }

    /// Asks a few live members to store `records` durably.
    fn replicate(&self, records: shoal_crdt_state::Delta) -> acks::Replication {
        let envelope = SyncEnvelope {
            from: self.peer.node(),
            reply_to: self.peer.config().addr,
            message: SyncMessage::Push {
                delta: records,
                digest: None,
                piece: None,
            },
        };
        let body = shoal_crdt_state::wire::encode(&envelope).unwrap_or_default();
        let mut targets: Vec<SocketAddr> = self.peer.members().values().copied().collect();
        // Spread the load: start from a pseudo-random member.
        let start = (wall_now().subsec_nanos() as usize) % targets.len().max(1);
        targets.rotate_left(start);
        targets.truncate(acks::REPLICATE_FANOUT);
        acks::replicate(self.transport.clone(), targets, Bytes::from(body))
    }

    /// Carries out every pending output of the core.
    fn drain(&mut self, ls: &mut LoopState) {
        // Sync messages for one peer go on one stream, in order: the
        // pieces of a split transfer then move at the receiver's pace.
        let mut syncs: BTreeMap<SocketAddr, Vec<Bytes>> = BTreeMap::new();
        while let Some(output) = self.peer.poll_output() {
            match output {
                Output::Datagram { to, bytes } => {
                    if let Err(e) = self.transport.send_datagram(to, Bytes::from(bytes)) {
                        tracing::debug!(%to, error = %e, "datagram not sent");
                    }
                }
                Output::Sync { to, bytes } => syncs.entry(to).or_default().push(Bytes::from(bytes)),
                Output::Pod(action) => {
                    tracing::info!(pod = %action.pod(), action = action_name(&action), "pod action");
                    ls.pod_starts.note_action(&action);
                    self.runtime.execute(action);
                }
                Output::Persist(delta) => {
                    ls.persisted.merge(delta.clone());
                    self.writer.append(delta);
                }
                // Shares the state's records: a copy of pointers.
                Output::Checkpoint => {
                    self.writer.snapshot(self.peer.persisted(wall_now()));
                }
                Output::Event(PeerEvent::NameTaken { name, by, addr }) => {
                    let why = format!(
                        "the node name {name:?} is already used by the live node {by} at {addr}; \
                         start this peer with another --name (or stop the other one first)"
                    );
                    tracing::error!("{why}");
                    if let Some(fatal) = self.fatal.take() {
                        let _ = fatal.send(why);
                    }
                }
                Output::Event(PeerEvent::Recorded(record)) => self.events.record(record),
                Output::Event(PeerEvent::BadMessage { from, error }) => {
                    ls.bad_messages.report(from, &error);
                }
                Output::Event(event) => log_event(&event),
            }
        }
        for (to, frames) in syncs {
            self.send_sync(to, frames, &ls.sync_slots);
        }
    }

    fn send_sync(&self, to: SocketAddr, frames: Vec<Bytes>, sync_slots: &Arc<Semaphore>) {
        let Ok(permit) = sync_slots.clone().try_acquire_owned() else {
            tracing::warn!(%to, count = frames.len(), "too many sync streams in flight; dropped one");
            metrics::counter!(SYNC_DROPPED, "reason" => "in_flight_limit").increment(1);
            return;
        };
        let transport = self.transport.clone();
        let exchange = tracing::info_span!("sync", with = %to, frames = frames.len());
        let push = async move {
            match transport.push_frames(to, frames).await {
                Ok(()) => tracing::debug!("sync messages sent"),
                Err(e) => {
                    tracing::debug!(error = %e, "sync message not delivered");
                    metrics::counter!(SYNC_DROPPED, "reason" => "undelivered").increment(1);
                }
            }
            drop(permit);
        };
        tokio::spawn(push.instrument(exchange));
    }
}

fn action_name(action: &shoal_runtime::vocabulary::PodAction) -> &'static str {
    match action {
        shoal_runtime::vocabulary::PodAction::Start { .. } => "start",
        shoal_runtime::vocabulary::PodAction::Stop { .. } => "stop",
        shoal_runtime::vocabulary::PodAction::StopOrphan { .. } => "stop orphan",
    }
}

fn log_event(event: &PeerEvent) {
    match event {
        PeerEvent::MemberUp(node) => tracing::info!(%node, "member up"),
        PeerEvent::MemberDown(node) => tracing::warn!(%node, "member down"),
        PeerEvent::Rejoined => tracing::warn!("we were declared down; rejoined"),
        PeerEvent::Defunct => tracing::error!("declared down and cannot rejoin: restart shoal"),
        PeerEvent::Settled { after_ms, missing } if missing.is_empty() => {
            tracing::info!(after_ms, "every remembered member is back");
        }
        PeerEvent::Settled { after_ms, missing } => tracing::warn!(
            after_ms,
            missing = ?missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "startup grace over; remembered members still missing are treated as down"
        ),
        PeerEvent::Unplaced { pod, reason } => tracing::warn!(%pod, %reason, "replica unplaced"),
        PeerEvent::RolloutStopped {
            rc,
            reason,
            rolled_back,
        } => tracing::warn!(%rc, %reason, rolled_back, "rollout stopped"),
        // Handled in `drain`, which keeps their state.
        PeerEvent::BadMessage { .. } | PeerEvent::NameTaken { .. } | PeerEvent::Recorded(_) => {}
        PeerEvent::NodeForgotten { node, name, why } => {
            tracing::warn!(%node, %name, why, "node forgotten");
        }
        PeerEvent::Collected {
            rcs,
            services,
            nodes,
            horizon_ms,
        } => tracing::debug!(
            rcs,
            services,
            nodes,
            horizon_ms,
            "collected (logged by the core)"
        ),
        PeerEvent::Reregistered => {
            tracing::warn!("this node had been deleted from the cluster; registered again");
        }
    }
}
