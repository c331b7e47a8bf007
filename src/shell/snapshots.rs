//! Reads served from an immutable snapshot, without waiting on the driver
//! when the snapshot is current.
//!
//! `get`, `describe`, kubectl polling and a dashboard read what this peer
//! knows. The driver task that owns the peer core also answers SWIM probes,
//! so it must never spend long on a reader: a read used to cost it a deep
//! copy of the whole state (~30 ms at 10,000 RCs, enough for a polling
//! client to delay probes into false downs).
//!
//! **How.** The driver keeps a [`SnapshotSource`]; every
//! [`PeerHandle`](super::handle::PeerHandle) has a [`SnapshotReader`].
//! After every input the driver [notes](SnapshotSource::note) whether what a
//! snapshot shows moved — three counters of the peer: state changes, member
//! view version, placements — and if so bumps a shared *generation*. A
//! reader whose published snapshot is of the current generation uses it
//! without any round trip; otherwise it asks the driver, which builds one
//! (once per generation: readers asking together share it) and publishes it
//! in a `watch` channel.
//!
//! **What a read may rely on.**
//! - *Consistent*: a snapshot is built by the driver between two inputs.
//! - *Never older than the read*: it shows the state, member view and
//!   placement as they were at least when the read began. In particular a
//!   client that waited for the answer of its write reads that write (or
//!   newer): the driver notes the change before it answers the write.
//!   `stats` (counters) are as of the build; they alone do not bump the
//!   generation.
//! - *Immutable*: a reader holds an `Arc<Snapshot>` as long as it likes; the
//!   peer goes on changing its own copy.
//! - *Readers never block the driver*: they hold an `Arc`, never a lock; the
//!   driver's only lock is the `watch`'s, for a pointer swap.
//!
//! **Cheap to build.** The state's records are shared, copy-on-write (see
//! `crdt-state`'s `summarized`): a build copies the maps' keys and
//! pointers, the member view, and shares the assignment until placement
//! replaces it. The price is paid later and only for what changes: a record
//! changed while a snapshot still holds it is copied once.
//!
//! **Why built on read, not after every change.** Measured by
//! `scripts/bench-snapshots.sh` (`benchmarks/snapshots.md`: 10,000 RCs × 3
//! replicas, 10 nodes' records, one record change every 100 ms). A build
//! costs the driver 1.2 ms (p99 2.5 ms), against 18 ms (p99 23–33 ms) for
//! the copy main made per request. Built after every change, the driver
//! spent 12–25 ms of every second on snapshots nobody read, and every
//! record stays shared, so the next change of a record always copies it
//! (our own node record holds thousands of pod statuses). Built on read,
//! it spent nothing without readers, and ~12 ms a second with a client
//! polling 50 times a second: one build per change, as eagerly, plus the
//! round trip of the read that finds the snapshot stale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use shoal_crdt_state::ClusterState;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::TemplateHash;
use shoal_gossip::{MemberState, MemberView};
use tokio::sync::watch;

use crate::peer::{Peer, PeerStats};
use crate::placement::Assignment;
use crate::services::ServiceTable;
use crate::services::endpoints::{self, EndpointInputs};

/// Everything the read verbs show, as this peer saw it between two inputs.
#[derive(Debug)]
pub struct Snapshot {
    /// Grows with every change of what a snapshot shows (see the module doc).
    pub generation: u64,
    pub me: NodeId,
    /// Our advertised peer address.
    pub addr: std::net::SocketAddr,
    pub cluster: String,
    /// SWIM's view, ourselves included.
    pub members: MemberView,
    /// Shares its records with the peer's (copy-on-write).
    pub state: ClusterState,
    /// Who should run each replica, and the replicas that fit nowhere with
    /// the reason; shared until the peer places again.
    pub assignment: Arc<Assignment>,
    /// The peer's counters when the snapshot was built.
    pub stats: PeerStats,
    /// Each live RC's current template hash and container count, computed
    /// on first use and shared by every reader of this snapshot: hashing
    /// encodes the whole template, once per RC instead of once per pod listed.
    current_templates: OnceLock<BTreeMap<String, (TemplateHash, usize)>>,
    /// Every service with its endpoints, derived on first use: what the
    /// load balancer, DNS and the service API read.
    services: OnceLock<ServiceTable>,
}

impl Snapshot {
    /// The node placement gives `pod` to, if it is placed.
    pub fn owner(&self, pod: &PodId) -> Option<NodeId> {
        self.assignment.owner(pod)
    }

    /// The hash of live RC `rc`'s current template.
    pub fn current_template(&self, rc: &str) -> Option<TemplateHash> {
        self.current_templates().get(rc).map(|(hash, _)| *hash)
    }

    /// How many containers live RC `rc`'s current template has.
    pub fn current_containers(&self, rc: &str) -> Option<usize> {
        self.current_templates().get(rc).map(|(_, count)| *count)
    }

    fn current_templates(&self) -> &BTreeMap<String, (TemplateHash, usize)> {
        self.current_templates.get_or_init(|| {
            self.state
                .desired
                .live_rcs()
                .map(|rc| {
                    let template = rc.template();
                    (
                        rc.name.to_owned(),
                        (template.hash(), template.containers.len()),
                    )
                })
                .collect()
        })
    }
}

impl Snapshot {
    /// Every service and its endpoints as this snapshot has them (see
    /// [`crate::services::endpoints`]); derived once, shared by readers.
    pub fn services(&self) -> &ServiceTable {
        self.services.get_or_init(|| {
            let alive: BTreeSet<NodeId> = self
                .members
                .members
                .iter()
                .filter(|m| m.state == MemberState::Alive)
                .map(|m| m.identity.node)
                .collect();
            let owner = |pod: &PodId| self.assignment.owner(pod);
            endpoints::derive(&EndpointInputs {
                desired: &self.state.desired,
                observed: &self.state.observed,
                alive: &alive,
                owner: &owner,
                me: self.me,
            })
        })
    }
}

/// What moves a snapshot on: the peer's state changes, member view
/// version and placements.
type Version = [u64; 3];

fn version(peer: &Peer) -> Version {
    let (state_changes, members) = peer.persist_version();
    [state_changes, members, peer.stats().placements]
}

/// The driver's side: notes changes, builds and publishes snapshots.
///
/// Call [`note`](Self::note) after every input (once its outputs are
/// drained), and in any case before answering a write; answer a reader's
/// request with [`current`](Self::current).
#[derive(Debug)]
pub struct SnapshotSource {
    cluster: String,
    /// The generation readers compare with; written only here.
    generation: Arc<AtomicU64>,
    /// The peer's version when `generation` was last bumped.
    noted: Version,
    latest: watch::Sender<Arc<Snapshot>>,
    /// Each new generation, for readers that wait for a change rather than
    /// poll (the service feed).
    changes: watch::Sender<u64>,
    /// The peer's placement count, each time it moves: placement follows
    /// the desired state and the member view, so this changes far less
    /// often than `changes` (pod statuses move that one).
    placements: watch::Sender<u64>,
    /// The peer's assignment as of a placement count: copied once per
    /// placement, not once per snapshot.
    assignment: Option<(u64, Arc<Assignment>)>,
    /// Snapshots built so far.
    builds: u64,
}

impl SnapshotSource {
    /// A source for `peer`, with a first snapshot published, and a reader
    /// of what it publishes (clone it for more readers).
    pub fn new(peer: &Peer, cluster: &str) -> (SnapshotSource, SnapshotReader) {
        let mut assignment = None;
        let first = snapshot_of(peer, cluster, 0, shared_assignment(&mut assignment, peer));
        let (latest, receiver) = watch::channel(Arc::new(first));
        let generation = Arc::new(AtomicU64::new(0));
        let (changes, changed) = watch::channel(0);
        let noted = version(peer);
        let (placements, placed) = watch::channel(noted[2]);
        let source = SnapshotSource {
            cluster: cluster.to_owned(),
            generation: generation.clone(),
            noted,
            latest,
            changes,
            placements,
            assignment,
            builds: 1,
        };
        let reader = SnapshotReader {
            generation,
            latest: receiver,
            changed,
            placed,
        };
        (source, reader)
    }

    /// Bumps the generation if what a snapshot shows changed since the
    /// last call. Cheap: it reads three counters.
    pub fn note(&mut self, peer: &Peer) {
        let now = version(peer);
        if now != self.noted {
            if now[2] != self.noted[2] {
                self.placements.send_replace(now[2]);
            }
            self.noted = now;
            let generation = self.generation.fetch_add(1, Ordering::Release) + 1;
            self.changes.send_replace(generation);
        }
    }

    /// The snapshot of `peer` as it is now: the published one if it is
    /// current, else a new one, published.
    pub fn current(&mut self, peer: &Peer) -> Arc<Snapshot> {
        self.note(peer);
        let latest = self.latest.borrow().clone();
        if latest.generation == self.generation.load(Ordering::Relaxed) {
            return latest;
        }
        let fresh = self.build(peer);
        self.latest.send_replace(fresh.clone());
        fresh
    }

    /// How many snapshots were built (at most one per generation).
    pub fn builds(&self) -> u64 {
        self.builds
    }

    fn build(&mut self, peer: &Peer) -> Arc<Snapshot> {
        self.builds += 1;
        let assignment = shared_assignment(&mut self.assignment, peer);
        let generation = self.generation.load(Ordering::Relaxed);
        Arc::new(snapshot_of(peer, &self.cluster, generation, assignment))
    }
}

fn snapshot_of(
    peer: &Peer,
    cluster: &str,
    generation: u64,
    assignment: Arc<Assignment>,
) -> Snapshot {
    Snapshot {
        current_templates: OnceLock::new(),
        services: OnceLock::new(),
        generation,
        me: peer.node(),
        addr: peer.config().addr,
        cluster: cluster.to_owned(),
        members: peer.view(),
        state: peer.state().clone(),
        assignment,
        stats: peer.stats(),
    }
}

/// The peer's assignment, shared through `cache`. The peer replaces its
/// assignment only when it places, and counts each placement in its stats.
fn shared_assignment(cache: &mut Option<(u64, Arc<Assignment>)>, peer: &Peer) -> Arc<Assignment> {
    let placements = peer.stats().placements;
    if let Some((at, shared)) = cache
        && *at == placements
    {
        debug_assert_eq!(**shared, *peer.assignment(), "placed without counting");
        return shared.clone();
    }
    let shared = Arc::new(peer.assignment().clone());
    *cache = Some((placements, shared.clone()));
    shared
}

/// A reader's side: the published snapshot, when it is current.
#[derive(Debug, Clone)]
pub struct SnapshotReader {
    generation: Arc<AtomicU64>,
    latest: watch::Receiver<Arc<Snapshot>>,
    changed: watch::Receiver<u64>,
    placed: watch::Receiver<u64>,
}

impl SnapshotReader {
    /// The published snapshot if it shows every change the driver had
    /// noted when this was called; `None`: ask the driver for a new one.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        let wanted = self.generation.load(Ordering::Acquire);
        let latest = self.latest.borrow().clone();
        (latest.generation >= wanted).then_some(latest)
    }

    /// Wakes when what a snapshot shows changes (a new generation is
    /// noted; the snapshot itself is built when someone asks for it).
    /// Errs once the driver is gone.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.clone()
    }

    /// Wakes when the peer placed again (the desired state or the member
    /// view changed); a subset of [`changes`](Self::changes).
    pub fn placement_changes(&self) -> watch::Receiver<u64> {
        self.placed.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_crdt_state::manifest;
    use shoal_crdt_state::node::NodeInfo;
    use shoal_crdt_state::spec::{RcSpec, Resources};

    use super::*;
    use crate::peer::{Command, PeerConfig};

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    fn lone_peer() -> Peer {
        let addr: std::net::SocketAddr = "127.0.0.1:17946".parse().unwrap();
        let room = Resources {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
        };
        let info = NodeInfo {
            name: "solo".to_owned(),
            peer_addr: addr.to_string(),
            api_addr: "127.0.0.1:17947".to_owned(),
            capacity: room,
            allocatable: room,
            labels: Default::default(),
            runtime_healthy: true,
            runtime_error: None,
            version: "test".to_owned(),
            leaving: false,
            started_ms: 0,
            incarnation: 0,
            images: Default::default(),
            listener_problems: Default::default(),
        };
        let mut peer = Peer::new(PeerConfig::new(NodeId(7), addr, info));
        peer.start(NOW, &[], &[]);
        while peer.poll_output().is_some() {}
        peer
    }

    fn hello() -> RcSpec {
        let text = include_str!("../../examples/hello-local.yaml");
        manifest::parse_manifests(text).unwrap().specs.remove(0)
    }

    fn run(peer: &mut Peer, source: &mut SnapshotSource, command: Command) {
        peer.handle_command(NOW, command).expect("command accepted");
        while peer.poll_output().is_some() {}
        source.note(peer);
    }

    fn scale(replicas: u32) -> Command {
        Command::Scale {
            name: "hello".to_owned(),
            replicas,
        }
    }

    #[test]
    fn a_snapshot_taken_before_a_write_does_not_see_it_and_one_after_does() {
        let mut peer = lone_peer();
        let (mut source, reader) = SnapshotSource::new(&peer, "test");
        let before = source.current(&peer);
        run(&mut peer, &mut source, Command::Apply(hello()));
        assert!(before.state.desired.get("hello").is_none());
        assert!(reader.current().is_none(), "the published one is stale now");
        let after = source.current(&peer);
        assert_eq!(after.state.desired.get("hello").unwrap().replicas, 2);
        assert!(after.generation > before.generation);
        run(&mut peer, &mut source, scale(5));
        // Each snapshot keeps what it saw: the records are shared, not aliased.
        assert!(before.state.desired.get("hello").is_none());
        assert_eq!(after.state.desired.get("hello").unwrap().replicas, 2);
        let latest = source.current(&peer);
        assert_eq!(latest.state.desired.get("hello").unwrap().replicas, 5);
    }

    #[test]
    fn readers_share_the_published_snapshot_until_something_changes() {
        let mut peer = lone_peer();
        let (mut source, reader) = SnapshotSource::new(&peer, "test");
        let first = reader.current().expect("current at start");
        source.note(&peer);
        let again = reader.current().expect("nothing changed");
        assert!(Arc::ptr_eq(&first, &again), "no new build for readers");
        run(&mut peer, &mut source, Command::Apply(hello()));
        assert!(reader.current().is_none());
        let builds = source.builds();
        // Many readers asking after one change: one build between them.
        let built: Vec<Arc<Snapshot>> = (0..10).map(|_| source.current(&peer)).collect();
        assert_eq!(source.builds(), builds + 1);
        assert!(built.iter().all(|s| Arc::ptr_eq(s, &built[0])));
        let served = reader.current().expect("current again");
        assert!(Arc::ptr_eq(&served, &built[0]));
        // A write that changes nothing moves nothing.
        run(&mut peer, &mut source, Command::Apply(hello()));
        assert!(reader.current().is_some());
    }

    #[test]
    fn a_waiting_reader_is_woken_by_a_change_and_not_by_a_no_op() {
        let mut peer = lone_peer();
        let (mut source, reader) = SnapshotSource::new(&peer, "test");
        let mut changes = reader.changes();
        changes.mark_unchanged();
        run(&mut peer, &mut source, Command::Apply(hello()));
        assert!(changes.has_changed().unwrap(), "a change wakes the reader");
        let seen = *changes.borrow_and_update();
        assert_eq!(source.current(&peer).generation, seen);
        run(&mut peer, &mut source, Command::Apply(hello()));
        assert!(!changes.has_changed().unwrap(), "a no-op wakes no one");
        drop(source);
        assert!(changes.has_changed().is_err(), "the driver is gone");
    }

    #[test]
    fn placement_changes_wake_on_a_placement_and_not_on_a_record_change() {
        let mut peer = lone_peer();
        let (mut source, reader) = SnapshotSource::new(&peer, "test");
        let (mut changes, mut placed) = (reader.changes(), reader.placement_changes());
        changes.mark_unchanged();
        placed.mark_unchanged();
        run(&mut peer, &mut source, Command::Apply(hello()));
        peer.handle_timeout(NOW + Duration::from_secs(1));
        while peer.poll_output().is_some() {}
        source.note(&peer);
        assert!(placed.has_changed().unwrap(), "the new RC was placed");
        assert_eq!(*placed.borrow_and_update(), peer.stats().placements);
        changes.mark_unchanged();
        // Our own record changes (what the holdings loop itself publishes):
        // the snapshot moves, placement does not.
        let held = [("shoal-test/hello:1.0".to_owned(), "sha256:1".to_owned())];
        peer.handle_images(NOW + Duration::from_secs(2), held.into_iter().collect());
        while peer.poll_output().is_some() {}
        source.note(&peer);
        assert!(
            changes.has_changed().unwrap(),
            "the record moved the snapshot"
        );
        assert!(!placed.has_changed().unwrap(), "no placement followed");
    }

    #[test]
    fn a_reader_holding_a_snapshot_does_not_stop_the_peer_from_changing() {
        let mut peer = lone_peer();
        let (mut source, _reader) = SnapshotSource::new(&peer, "test");
        run(&mut peer, &mut source, Command::Apply(hello()));
        let held = source.current(&peer);
        let seen = shoal_crdt_state::wire::encode(&held.state).unwrap();
        for i in 0..1_000 {
            run(&mut peer, &mut source, scale(i % 7 + 1));
            if i % 100 == 0 {
                let _ = source.current(&peer); // other readers come and go
            }
        }
        assert_eq!(shoal_crdt_state::wire::encode(&held.state).unwrap(), seen);
        let latest = source.current(&peer);
        assert_eq!(
            latest.state.desired.get("hello").unwrap().replicas,
            999 % 7 + 1
        );
    }
}
