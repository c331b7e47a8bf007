//! The peer core: one sans-IO state machine per node.
//!
//! It owns the node's [`Membership`] (SWIM), its replica of the
//! [`ClusterState`], the current placement [`Assignment`] and the
//! [`LocalPods`] bookkeeping of the reconciler. It reads no clock, socket or
//! OS randomness: `now` (wall time since the UNIX epoch, which stamps writes)
//! and an RNG seed come in as arguments, and everything it wants done comes
//! out of [`Peer::poll_output`].
//!
//! Calling order, like foca and quinn-proto: build with [`Peer::new`], call
//! [`Peer::start`] once, then after *every* `handle_*` call drain
//! `poll_output` until it returns `None`, and ask [`Peer::poll_timeout`]
//! when to call [`Peer::handle_timeout`] next. The core keeps every timer
//! itself (SWIM's, anti-entropy, reconcile, publish, push, graces, join
//! retries, checkpoints): a driver keeps one deadline, and calling
//! `handle_timeout` before it does nothing. [`testing`] is such a driver
//! on a virtual clock, for tests.
//!
//! - [`io`]: outputs, commands, events and counters.
//! - [`events`]: what the peer decided or saw, as records for `get events`.
//! - `timers`: the core's own timers, in deadline order.
//! - [`testing`]: peers on a virtual clock with an in-memory network and
//!   engine.
//! - [`sync_message`]: the anti-entropy / push protocol's messages.
//! - `spread`: how local changes leave the node and remote ones are merged;
//!   `pieces`: splitting a large transfer into pieces.
//! - `commands`: user commands (apply, scale, rolling-update, delete).
//! - `reconcile_step`: placement and the reconcile plan for this node.
//! - `record_acks`: which members are known to hold our record (when a
//!   draining pod may stop).
//! - [`resume`]: what a peer persists, and the startup grace after a restart.
//! - `lifecycle`: cordoned and removed nodes, forgetting nodes down too
//!   long, and pods a removed node left on our engine.
//! - `garbage`: collecting tombstones once every known node acknowledges
//!   them (`shoal_crdt_state::gc`).

pub mod events;
pub mod io;
pub mod resume;
pub mod signing;
pub mod sync_message;

#[doc(hidden)]
pub mod testing;

mod admission;
#[cfg(test)]
mod admission_tests;
mod commands;
#[cfg(test)]
mod events_tests;
mod garbage;
#[cfg(test)]
mod identity_tests;
mod lifecycle;
mod pieces;
mod reconcile_step;
mod record_acks;
mod rollback;
mod spread;
#[cfg(test)]
mod takeover_tests;
#[cfg(test)]
mod tests;
mod timers;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use shoal_crdt_state::identity::{PublicKey, RecordSigner};
use shoal_crdt_state::node::{ImageHoldings, ListenerProblems, NodeId, NodeInfo};
use shoal_crdt_state::spec::RcSpec;
use shoal_crdt_state::{Clock, ClusterState, DesiredDelta, ObservedDelta};
use shoal_gossip::{MemberView, Membership, MembershipEvent, PeerIdentity, Preset};
use shoal_runtime::vocabulary::{ExistingPod, PodObservation};

use crate::placement::{Assignment, WantedPorts};
use crate::reconcile::{LocalPods, ReconcilePolicy};
pub use io::{
    Command, CommandError, CommandOutcome, KindCount, Output, PeerEvent, PeerStats, SyncCounts,
};
pub use resume::{Persisted, startup_grace};
pub use shoal_gossip::MembershipStats;
pub use signing::{Ed25519, NodeKeys, Verifier};
use timers::{PeerTimer, TimerQueue};

/// Everything a peer is told at start-up.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub node: NodeId,
    /// Advertised peer address (QUIC, one UDP port).
    pub addr: SocketAddr,
    /// Bumped at every restart so SWIM tells the new process from the old.
    pub incarnation: u64,
    /// What this node publishes about itself (capacity, labels, runtime health).
    pub info: NodeInfo,
    pub preset: Preset,
    pub rng_seed: u64,
    pub anti_entropy_every: Duration,
    /// Delay before pod status changes are published (coalesces bursts).
    pub publish_delay: Duration,
    /// Delay before a reconcile after a change (coalesces bursts).
    pub reconcile_delay: Duration,
    /// Peers every new record is pushed to, by each peer that learns it.
    pub push_fanout: usize,
    /// Records to push are batched for this long.
    pub push_delay: Duration,
    pub reconcile: ReconcilePolicy,
    /// Remote stamps further ahead than this do not drag our clock.
    pub max_clock_drift_ms: u64,
    /// Longest startup grace after a restart; `None`: derived from the SWIM
    /// timings ([`startup_grace`]).
    pub startup_grace: Option<Duration>,
    /// A node absent from our view this long is forgotten everywhere (its
    /// record, its ghost in `get nodes`, and its orphaned pods).
    pub forget_down_after: Duration,
    /// How often a changed state is checkpointed ([`Output::Checkpoint`]):
    /// writes are durable before that through the log; this bounds the
    /// log's length and what a restart replays.
    pub checkpoint_every: Duration,
    /// Tombstones younger than this are never collected; beyond it they
    /// are collected once every known node acknowledges them
    /// (`shoal_crdt_state::gc`). Safety does not depend on it.
    pub gc_grace: Duration,
    /// Collection cutoffs are multiples of this, so peers propose the same.
    pub gc_epoch: Duration,
    /// This node's signing key: its node id is bound to the public half,
    /// and every record it publishes about itself is signed with it.
    pub keys: NodeKeys,
    /// The join token this node started the cluster with or joined with
    /// (node.json's): what `shoal token rotate` rotates away from when the
    /// cluster never rotated before. Empty in tests that never rotate.
    pub first_join_token: String,
    /// Checks the signatures of node records: ed25519 (the default) for a
    /// real peer.
    pub verifier: Verifier,
}

impl PeerConfig {
    /// LAN defaults for a node, with a test key derived from its id: a
    /// real peer sets `keys` to the key of its data dir.
    pub fn new(node: NodeId, addr: SocketAddr, info: NodeInfo) -> PeerConfig {
        PeerConfig {
            node,
            addr,
            incarnation: 0,
            info,
            preset: Preset::Lan,
            rng_seed: node.0,
            anti_entropy_every: Duration::from_secs(1),
            publish_delay: Duration::from_millis(50),
            reconcile_delay: Duration::from_millis(20),
            push_fanout: 3,
            push_delay: Duration::from_millis(10),
            reconcile: ReconcilePolicy::default(),
            max_clock_drift_ms: 60_000,
            startup_grace: None,
            forget_down_after: Duration::from_secs(24 * 60 * 60),
            checkpoint_every: Duration::from_secs(1),
            gc_grace: Duration::from_secs(10 * 60),
            gc_epoch: Duration::from_secs(60),
            keys: NodeKeys::insecure_for_tests(node),
            first_join_token: String::new(),
            verifier: Verifier::default(),
        }
    }
}

/// One node's state machine. See the module docs for the calling order.
#[derive(Debug)]
pub struct Peer {
    config: PeerConfig,
    membership: Membership,
    clock: Clock,
    state: ClusterState,
    local: LocalPods,
    assignment: Assignment,
    /// Live RC specs, rebuilt when the desired state changes.
    rcs: BTreeMap<String, RcSpec>,
    /// Host ports `rcs` ask for, rebuilt with them: which pod status
    /// changes can move placement.
    wanted_ports: WantedPorts,
    /// Members SWIM counts in (alive or suspect), ourselves excluded.
    members: BTreeMap<NodeId, SocketAddr>,
    /// The incarnation SWIM shows for each of `members`: a record written
    /// by an older one predates the member's restart.
    member_incarnations: BTreeMap<NodeId, u64>,
    /// Inputs of placement changed since the last assignment.
    placement_dirty: bool,
    rcs_dirty: bool,
    /// A reconcile timer is pending for this time.
    reconcile_at: Option<Duration>,
    publish_pending: bool,
    /// Records to push at the next `Push` timer (new to us or ours).
    pending_push: shoal_crdt_state::Delta,
    push_scheduled: bool,
    rng: Xoshiro256PlusPlus,
    /// Our timers (SWIM's are in `membership`).
    timers: TimerQueue,
    /// Our timers that fired: deadline, when, which (for the unit tests).
    #[cfg(test)]
    fired: Vec<(Duration, Duration, PeerTimer)>,
    outputs: VecDeque<Output>,
    stats: PeerStats,
    /// Bumped on every change of the cluster state (local or merged): the
    /// shell persists the state when it moved.
    state_changes: u64,
    /// Bumped when node decisions (and so key bindings) may have changed:
    /// the shell's key book is rebuilt only then.
    node_decision_changes: u64,
    /// [`Peer::persist_version`] at the last checkpoint (or the start).
    checkpointed: (u64, u64),
    /// Our garbage-collection acknowledgement, cached (see `garbage.rs`).
    ack_cache: garbage::AckCache,
    /// A split transfer being received (see `spread.rs`).
    transfer: Option<spread::Transfer>,
    /// `digest_hash` as of `state_changes` (the first element).
    digest_hash_cache: Option<(u64, u64)>,
    /// `leave` was called: SWIM's "we are down" is expected, not an error.
    leaving: bool,
    /// Members persisted before a restart (see [`resume`]).
    remembered: Vec<PeerIdentity>,
    /// The startup grace of a restarted peer, while it lasts.
    settling: Option<resume::Settling>,
    /// Members seen going down, with when: still worth trying after a
    /// restart for a while (see [`resume::REMEMBER_DEPARTED_FOR`]).
    departed: BTreeMap<NodeId, (PeerIdentity, Duration)>,
    /// Members that left gracefully with their pods running, and until when
    /// placement still counts them (see `resume.rs`).
    departing: BTreeMap<NodeId, Duration>,
    /// A new node checks that no live member uses its name, until this
    /// long after it first saw another member; `None` once done.
    name_check: Option<NameCheck>,
    /// The key our node id is bound to when it is not ours (logged once).
    identity_conflict: Option<PublicKey>,
    /// Nodes with a record that our view does not count alive, since when:
    /// forgotten after `forget_down_after`.
    absent_since: BTreeMap<NodeId, Duration>,
    /// Pods removed nodes left on our engine (see `lifecycle.rs`).
    orphans: lifecycle::Orphans,
    /// What members are known to hold of our record (see `record_acks.rs`).
    record_acks: record_acks::RecordAcks,
    /// A [`PeerTimer::AskHolders`] is pending.
    asking_holders: bool,
    /// We held all a peer held at least once since start (an equal digest
    /// hash, or a push whose digest we hold all of), or we formed the
    /// cluster alone: until then we collect no garbage (see `garbage.rs`).
    synced_with_a_peer: bool,
    /// Refused node decisions already warned about (see `admission.rs`).
    refusals: admission::RefusalLog,
}

/// The duplicate-name check of a new node (see [`PeerEvent::NameTaken`]).
/// Only the younger of two nodes with one name gives way (by
/// `NodeInfo::started_ms`, then node id), so both never refuse.
#[derive(Debug, Clone, Default)]
struct NameCheck {
    /// When we first saw another member.
    connected_at: Option<Duration>,
}

/// How long a new node watches for a live member with its name after it
/// joined: long enough for every member's record to reach it.
const NAME_CHECK_FOR: Duration = Duration::from_secs(10);

impl Peer {
    pub fn new(mut config: PeerConfig) -> Peer {
        // The record says which process wrote it (see `NodeInfo::incarnation`).
        config.info.incarnation = config.incarnation;
        let identity = PeerIdentity::new(config.node, config.addr, config.incarnation);
        let membership = Membership::new(identity, config.preset, config.rng_seed);
        let clock = Clock::new(config.node, config.max_clock_drift_ms);
        let rng = Xoshiro256PlusPlus::seed_from_u64(config.rng_seed ^ 0x5eed_5eed);
        Peer {
            membership,
            clock,
            state: ClusterState::new(),
            local: LocalPods::new(),
            assignment: Assignment::default(),
            rcs: BTreeMap::new(),
            wanted_ports: WantedPorts::default(),
            members: BTreeMap::new(),
            member_incarnations: BTreeMap::new(),
            placement_dirty: true,
            rcs_dirty: true,
            reconcile_at: None,
            publish_pending: false,
            pending_push: shoal_crdt_state::Delta::default(),
            push_scheduled: false,
            rng,
            timers: TimerQueue::default(),
            #[cfg(test)]
            fired: Vec::new(),
            outputs: VecDeque::new(),
            stats: PeerStats::default(),
            state_changes: 0,
            node_decision_changes: 0,
            checkpointed: (0, 0),
            digest_hash_cache: None,
            transfer: None,
            ack_cache: garbage::AckCache::default(),
            leaving: false,
            remembered: Vec::new(),
            settling: None,
            departed: BTreeMap::new(),
            departing: BTreeMap::new(),
            name_check: None,
            identity_conflict: None,
            absent_since: BTreeMap::new(),
            orphans: lifecycle::Orphans::default(),
            record_acks: record_acks::RecordAcks::default(),
            asking_holders: false,
            synced_with_a_peer: false,
            refusals: admission::RefusalLog::default(),
            config,
        }
    }

    // ---- getters ----

    pub fn node(&self) -> NodeId {
        self.config.node
    }

    pub fn identity(&self) -> PeerIdentity {
        self.membership.identity()
    }

    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    pub fn view(&self) -> MemberView {
        self.membership.view()
    }

    /// Active members' addresses, ourselves excluded.
    pub fn members(&self) -> &BTreeMap<NodeId, SocketAddr> {
        &self.members
    }

    /// True once SWIM counts at least one other member in.
    pub fn is_connected(&self) -> bool {
        self.membership.is_connected()
    }

    /// Seeds and remembered members that have not answered yet.
    pub fn unreached_contacts(&self) -> Vec<SocketAddr> {
        self.membership.unreached_contacts()
    }

    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    pub fn rcs(&self) -> &BTreeMap<String, RcSpec> {
        &self.rcs
    }

    pub fn local_pods(&self) -> &LocalPods {
        &self.local
    }

    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    /// SWIM's counters (probes, suspicions, refutations, downs).
    pub fn membership_stats(&self) -> MembershipStats {
        self.membership.stats()
    }

    /// Grows whenever the cluster state changed; compare to skip persisting.
    pub fn state_changes(&self) -> u64 {
        self.state_changes
    }

    /// Grows whenever a node decision (which holds the node's key binding)
    /// may have changed; compare to skip rereading the bindings.
    pub fn node_decision_changes(&self) -> u64 {
        self.node_decision_changes
    }

    /// Changes whenever what [`Peer::persisted`] returns may have changed:
    /// the state, or the members to remember.
    pub fn persist_version(&self) -> (u64, u64) {
        (self.state_changes, self.membership.version())
    }

    /// Next output for the driver; drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Peer::handle_timeout`] is due next (wall time, like `now`):
    /// the earliest of our timers and SWIM's. `None`: nothing pending. Ask
    /// again after every input; a deadline at or before `now` is due at once.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let ours = self.timers.next_deadline();
        let swim = self.membership.poll_timeout();
        ours.into_iter().chain(swim).min()
    }

    // ---- inputs ----

    /// Publishes our node info and joins through `seeds` (none: a new
    /// cluster, unless the peer resumed with remembered members, which it
    /// then tries too). `existing` are the pods the runtime already runs
    /// for this node (adoption).
    pub fn start(&mut self, now: Duration, seeds: &[SocketAddr], existing: &[ExistingPod]) {
        self.local.adopt(existing);
        if self.state.observed.get(self.config.node).is_none() {
            self.name_check = Some(NameCheck::default());
        }
        let mut delta: shoal_crdt_state::Delta = self.bind_key(now).into();
        delta.observed = self.publish_info();
        self.spread(now, delta);
        // What our record said before a restart may be false now (pods gone
        // with the engine): say what the engine runs before anything else.
        self.publish_pods(now);
        let me = self.config.addr;
        let seeds: Vec<SocketAddr> = seeds.iter().copied().filter(|&s| s != me).collect();
        self.synced_with_a_peer = seeds.is_empty();
        if !seeds.is_empty() {
            if let Err(e) = self.membership.join_any(now, &seeds) {
                tracing::debug!(error = %e, "join");
            }
            let digest = self.state.digest();
            for &seed in &seeds {
                self.send_sync(
                    seed,
                    sync_message::SyncMessage::Pull {
                        digest: digest.clone(),
                    },
                );
            }
        }
        self.begin_settling(now);
        self.drain_membership(now);
        self.schedule(now + self.config.anti_entropy_every, PeerTimer::AntiEntropy);
        self.publish_pending = true;
        self.schedule(now + self.config.publish_delay, PeerTimer::Publish);
        self.request_reconcile(now);
        self.checkpointed = self.persist_version();
        self.schedule(now + self.config.checkpoint_every, PeerTimer::Checkpoint);
    }

    /// One SWIM datagram from a connection that authenticated `node`
    /// (`None`: a transport without node identities): dropped and counted
    /// when the packet names another node as its sender. What it says
    /// about other members is relayed content and not checked here.
    pub fn handle_datagram_from(
        &mut self,
        now: Duration,
        from: SocketAddr,
        node: Option<NodeId>,
        bytes: &[u8],
    ) {
        if let Some(node) = node
            && let Some(claimed) = shoal_gossip::datagram_sender(bytes)
            && claimed != node
        {
            self.stats.datagrams_in += 1;
            self.stats.rejected_datagrams += 1;
            self.stats.impersonations += 1;
            self.bad_message(from, impersonation("SWIM packet", claimed, node));
            return;
        }
        self.handle_datagram(now, from, bytes);
    }

    /// One SWIM datagram from the network.
    pub fn handle_datagram(&mut self, now: Duration, from: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams_in += 1;
        if let Err(e) = self.membership.handle_datagram(now, from, bytes) {
            self.stats.rejected_datagrams += 1;
            self.bad_message(from, e.to_string());
        }
        self.drain_membership(now);
    }

    /// Fires every timer due at `now`, ours and SWIM's, in deadline order
    /// (SWIM's first on a tie); none that is not due. One of ours set
    /// during the call for `now` or earlier waits for the next call
    /// ([`Peer::poll_timeout`] says so), so a call always ends.
    pub fn handle_timeout(&mut self, now: Duration) {
        let mark = self.timers.mark();
        loop {
            let swim = self.membership.poll_timeout().filter(|at| *at <= now);
            let ours = self.timers.next_due(now, mark);
            let swim_first = match (swim, ours) {
                (Some(swim), Some(ours)) => swim <= ours,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if swim_first {
                if let Err(e) = self.membership.handle_timeout(now) {
                    tracing::debug!(error = %e, "swim timer");
                }
                self.drain_membership(now);
            } else if let Some((_at, timer)) = self.timers.pop_due(now, mark) {
                #[cfg(test)]
                self.fired.push((_at, now, timer));
                self.fire(now, timer);
            } else {
                break;
            }
        }
    }

    fn fire(&mut self, now: Duration, timer: PeerTimer) {
        match timer {
            PeerTimer::AntiEntropy => {
                self.check_name(now);
                self.forget_long_gone(now);
                self.collect_garbage(now);
                self.start_anti_entropy(now);
                self.schedule(now + self.config.anti_entropy_every, PeerTimer::AntiEntropy);
            }
            PeerTimer::Reconcile => {
                if self.reconcile_at.is_some_and(|at| at <= now) {
                    self.reconcile_at = None;
                    self.reconcile(now);
                }
            }
            PeerTimer::Publish => {
                if self.publish_pending {
                    self.publish_pods(now);
                }
            }
            PeerTimer::Push => self.flush_push(),
            PeerTimer::AskHolders => self.ask_holders(now),
            PeerTimer::Grace => self.handle_grace_timer(now),
            PeerTimer::Checkpoint => {
                if self.persist_version() != self.checkpointed {
                    self.checkpointed = self.persist_version();
                    self.outputs.push_back(Output::Checkpoint);
                }
                self.schedule(now + self.config.checkpoint_every, PeerTimer::Checkpoint);
            }
        }
    }

    /// Something the container runtime saw happen to one of our pods.
    pub fn handle_observation(&mut self, now: Duration, observation: &PodObservation) {
        let before = self.local.get(&observation.pod).cloned();
        self.local.handle_observation(ms(now), observation);
        let after = self.local.get(&observation.pod);
        if let Some(record) = events::from_observation(ms(now), observation, before.as_ref(), after)
        {
            self.record(record);
        }
        self.request_publish(now);
        self.request_reconcile(now);
    }

    /// The container engine became (un)reachable: placement must skip us
    /// while it is down.
    pub fn handle_runtime_health(&mut self, now: Duration, healthy: bool, error: Option<String>) {
        if self.config.info.runtime_healthy == healthy && self.config.info.runtime_error == error {
            return;
        }
        self.config.info.runtime_healthy = healthy;
        self.config.info.runtime_error = error;
        let delta = self.publish_info();
        self.placement_dirty = true;
        self.spread(now, delta.into());
        self.request_reconcile(now);
    }

    /// Publishes which of the cluster's images the local engine holds,
    /// when that changed (peers that lack one fetch it from a holder).
    pub fn handle_images(&mut self, now: Duration, images: ImageHoldings) {
        if self.config.info.images == images {
            return;
        }
        self.config.info.images = images;
        let delta = self.publish_info();
        self.spread(now, delta.into());
    }

    /// Publishes what this node's load balancer cannot listen on, when
    /// that changed (`describe svc` shows it for this node).
    pub fn handle_listener_problems(&mut self, now: Duration, problems: ListenerProblems) {
        if self.config.info.listener_problems == problems {
            return;
        }
        self.config.info.listener_problems = problems;
        let delta = self.publish_info();
        self.spread(now, delta.into());
    }

    /// Learns `members` as alive without telling anyone: to resume from a
    /// persisted member list, or to build a formed cluster in a simulation.
    /// Call before or after [`Peer::start`]; placement follows the new view.
    pub fn restore_members(&mut self, now: Duration, members: &[PeerIdentity]) {
        if let Err(e) = self
            .membership
            .restore_members(now, members.iter().copied())
        {
            tracing::debug!(error = %e, "restore members");
        }
        self.drain_membership(now);
        self.refresh_members();
        self.placement_dirty = true;
        self.request_reconcile(now);
    }

    /// First step of a graceful stop whose pods keep running (a restart,
    /// an upgrade): publishes that we are leaving, so the others hold our
    /// replicas for a grace instead of starting copies at once. Give the
    /// pushes a moment to leave, then call [`Peer::leave`].
    pub fn prepare_leave(&mut self, now: Duration) {
        self.config.info.leaving = true;
        let delta = self.publish_info();
        self.spread(now, delta.into());
        self.flush_push();
    }

    /// Leave the cluster gracefully (tells a few members we are going).
    pub fn leave(&mut self, now: Duration) {
        self.leaving = true;
        if let Err(e) = self.membership.leave(now) {
            tracing::debug!(error = %e, "leave");
        }
        self.drain_membership(now);
    }

    // ---- internals shared by the submodules ----

    /// Writes our node info into our record, signed; empty when unchanged.
    /// A new record is numbered above what removals of our id forgot.
    fn publish_info(&mut self) -> ObservedDelta {
        let delta = self
            .state
            .set_node_info(self.config.node, self.config.info.clone());
        self.signed_own(delta)
    }

    /// After a local write to our record that produced `delta`: our record
    /// signed as it now stands (empty when nothing changed).
    fn signed_own(&mut self, delta: ObservedDelta) -> ObservedDelta {
        if delta.is_empty() {
            return delta;
        }
        self.state
            .observed
            .sign(self.config.node, &self.config.keys)
    }

    /// Announces our key as our node id's when the state holds no binding
    /// for it (first join, or after a release); says so when another key
    /// holds it. Empty when there is nothing to announce.
    fn bind_key(&mut self, now: Duration) -> DesiredDelta {
        let me = self.config.node;
        let key = self.config.keys.public_key();
        match self.state.desired.nodes().bound_key(me) {
            Some(b) if b.key == key => DesiredDelta::default(),
            Some(b) => {
                if self.identity_conflict != Some(b.key) {
                    self.identity_conflict = Some(b.key);
                    tracing::error!(
                        node = %me,
                        ours = %key,
                        bound = %b.key,
                        "our node id is bound to another key: the others ignore our \
                         records; `shoal node delete` releases the id"
                    );
                }
                DesiredDelta::default()
            }
            None => {
                let stamp = self.clock.tick(ms(now));
                let delta = self.state.desired.bind_key(me, key, stamp);
                self.outputs
                    .push_back(Output::Persist(delta.clone().into()));
                delta
            }
        }
    }

    fn schedule(&mut self, at: Duration, timer: PeerTimer) {
        self.timers.schedule(at, timer);
    }

    fn request_reconcile(&mut self, now: Duration) {
        let at = now + self.config.reconcile_delay;
        self.schedule_reconcile_at(at);
    }

    fn schedule_reconcile_at(&mut self, at: Duration) {
        if self.reconcile_at.is_none_or(|pending| at < pending) {
            self.reconcile_at = Some(at);
            self.schedule(at, PeerTimer::Reconcile);
        }
    }

    fn request_publish(&mut self, now: Duration) {
        if !self.publish_pending {
            self.publish_pending = true;
            self.schedule(now + self.config.publish_delay, PeerTimer::Publish);
        }
    }

    /// Hands an event to the shell (see [`events`]).
    fn record(&mut self, record: events::EventRecord) {
        self.outputs
            .push_back(Output::Event(PeerEvent::Recorded(record)));
    }

    /// The name users know a node by; its id while no record names it.
    fn node_name(&self, node: NodeId) -> String {
        self.state
            .observed
            .get(node)
            .map_or_else(|| node.to_string(), |r| r.info.name.clone())
    }

    /// A member went up or down in our view: every peer tells it alike.
    fn record_member(&mut self, now: Duration, node: NodeId, up: bool) {
        let name = self.node_name(node);
        let leaving = self
            .state
            .observed
            .get(node)
            .is_some_and(|r| r.info.leaving);
        let (kind, reason, message) = match (up, leaving) {
            (true, _) => (
                events::EventType::Normal,
                "NodeUp",
                format!("Node {name} is up"),
            ),
            (false, true) => (
                events::EventType::Normal,
                "NodeDown",
                format!("Node {name} left the cluster; its replicas are held for a grace"),
            ),
            (false, false) => (
                events::EventType::Warning,
                "NodeDown",
                format!("Node {name} is down: it stopped answering; its replicas move elsewhere"),
            ),
        };
        let record = events::EventRecord::new(ms(now), kind, reason, events::node(&name), message);
        self.record(record.cluster_wide());
    }

    fn bad_message(&mut self, from: SocketAddr, error: String) {
        self.stats.bad_messages += 1;
        tracing::debug!(%from, %error, "rejected message");
        self.outputs
            .push_back(Output::Event(PeerEvent::BadMessage { from, error }));
    }

    /// Moves membership outputs into ours and reacts to its events.
    fn drain_membership(&mut self, now: Duration) {
        let mut view_changed = false;
        while let Some(out) = self.membership.poll_output() {
            match out {
                shoal_gossip::Output::Send { to, bytes } => {
                    self.stats.datagrams_out += 1;
                    self.outputs.push_back(Output::Datagram { to, bytes });
                }
                shoal_gossip::Output::Event(event) => match event {
                    MembershipEvent::Up(id) => {
                        view_changed = true;
                        self.record_member(now, id.node, true);
                        self.outputs
                            .push_back(Output::Event(PeerEvent::MemberUp(id.node)));
                        self.departed.remove(&id.node);
                        self.departing.remove(&id.node);
                        self.settle_member(now, id.node);
                    }
                    MembershipEvent::Down(id) => {
                        view_changed = true;
                        self.record_member(now, id.node, false);
                        self.outputs
                            .push_back(Output::Event(PeerEvent::MemberDown(id.node)));
                        self.departed.insert(id.node, (id, now));
                        self.member_left(now, id.node);
                        self.settle_member(now, id.node);
                    }
                    MembershipEvent::Renamed { .. } => view_changed = true,
                    MembershipEvent::Rejoined(id) => {
                        view_changed = true;
                        let me = events::node(&self.config.info.name);
                        self.record(events::EventRecord::new(
                            ms(now),
                            events::EventType::Warning,
                            "Rejoined",
                            me,
                            "This node was declared down by the others and rejoined".into(),
                        ));
                        self.outputs.push_back(Output::Event(PeerEvent::Rejoined));
                        // Our record must carry the incarnation the others
                        // now see, or they take it for one from before.
                        self.config.info.incarnation = id.incarnation;
                        let delta = self.publish_info();
                        self.spread(now, delta.into());
                    }
                    // After a graceful leave, being down is the point.
                    MembershipEvent::Defunct if self.leaving => {}
                    MembershipEvent::Defunct => {
                        self.outputs.push_back(Output::Event(PeerEvent::Defunct));
                    }
                    MembershipEvent::Received(received) => {
                        self.handle_broadcast(now, received);
                    }
                    MembershipEvent::Suspected(_)
                    | MembershipEvent::Connected
                    | MembershipEvent::Idle => {}
                },
            }
        }
        if view_changed {
            self.refresh_members();
            self.check_name(now);
            self.placement_dirty = true;
            self.request_reconcile(now);
        }
    }

    /// Reports an older live member that uses our name, while a new node
    /// checks.
    fn check_name(&mut self, now: Duration) {
        let Some(check) = &mut self.name_check else {
            return;
        };
        if self.members.is_empty() {
            return;
        }
        let connected_at = *check.connected_at.get_or_insert(now);
        let me = self.config.node;
        let mine = (self.config.info.started_ms, me);
        let name = &self.config.info.name;
        let taken = self.state.observed.nodes().find(|(id, r)| {
            *id != me
                && r.info.name == *name
                && self.members.contains_key(id)
                && (r.info.started_ms, *id) < mine
        });
        if let Some((by, record)) = taken {
            let event = PeerEvent::NameTaken {
                name: name.clone(),
                by,
                addr: record.info.peer_addr.clone(),
            };
            self.outputs.push_back(Output::Event(event));
            self.name_check = None;
        } else if now >= connected_at + NAME_CHECK_FOR {
            self.name_check = None;
        }
    }

    fn refresh_members(&mut self) {
        let me = self.config.node;
        let active: Vec<PeerIdentity> = self
            .membership
            .view()
            .members
            .into_iter()
            .filter(|m| m.state.is_active() && m.identity.node != me)
            .map(|m| m.identity)
            .collect();
        self.members = active.iter().map(|m| (m.node, m.addr)).collect();
        self.member_incarnations = active.iter().map(|m| (m.node, m.incarnation)).collect();
    }
}

/// Wall time in ms, the unit of HLC stamps and the reconciler's clock.
fn ms(now: Duration) -> u64 {
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// Why a message naming `claimed` as its sender was dropped.
pub(crate) fn impersonation(what: &str, claimed: NodeId, authenticated: NodeId) -> String {
    format!(
        "a {what} names node {claimed} as its sender, but its connection authenticated node \
         {authenticated}: dropped"
    )
}
