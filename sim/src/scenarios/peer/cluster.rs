//! A cluster of whole peer cores in a world, with the ground truth of what
//! runs where ([`Truth`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use rand::RngExt;
use shoal::peer::{Command, CommandError, CommandOutcome, Peer, PeerConfig, Persisted};
use shoal::placement::{Assignment, assign, ideal_moves, inputs};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{RcSpec, Resources};
use shoal_gossip::{PeerIdentity, Preset};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use super::PeerOptions;
pub use super::truth::Truth;
use crate::fake_runtime::{FakeRuntime, RuntimeConfig};
use crate::net::Network;
use crate::peer_invariants::{ReplicaCount, all_agree, count_replicas};
use crate::peer_node::{PeerNode, wall};
use crate::queue::Micros;
use crate::scenarios::cluster::{MS, SECOND, addr_of};
use crate::verify_cache::VerifyCache;
use crate::world::{Slot, World};

/// Peer cores in a world.
pub struct PeerCluster {
    pub world: World<PeerNode>,
    pub truth: Truth,
    preset: Preset,
    pub seed: u64,
    runtime: RuntimeConfig,
    incarnations: Vec<u64>,
    pub(crate) started: Instant,
    /// Adjusts every peer's config before it starts (a scenario's timings).
    pub tune: fn(&mut PeerConfig),
    /// One signature-check cache for every peer of the run.
    verify_cache: Arc<VerifyCache>,
}

impl std::fmt::Debug for PeerCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCluster")
            .field("world", &self.world)
            .finish()
    }
}

/// The node id of slot `i` (stable across restarts).
pub fn node_of(slot: Slot) -> NodeId {
    NodeId(xxh3_64(&(slot as u64).to_le_bytes()))
}

fn node_info(slot: Slot) -> NodeInfo {
    let big = Resources {
        cpu_millis: 64_000,
        memory_bytes: 256 << 30,
    };
    NodeInfo {
        name: format!("node-{slot}"),
        peer_addr: addr_of(slot).to_string(),
        api_addr: String::new(),
        capacity: big,
        allocatable: big,
        labels: BTreeMap::new(),
        runtime_healthy: true,
        runtime_error: None,
        version: "sim".into(),
        leaving: false,
        started_ms: 0,
        incarnation: 0,
        images: Default::default(),
        listener_problems: Default::default(),
    }
}

impl PeerCluster {
    pub fn new(o: &PeerOptions) -> Self {
        PeerCluster {
            world: World::new(Network::new(o.net.clone()), o.seed),
            truth: Truth::default(),
            preset: o.preset,
            seed: o.seed,
            runtime: RuntimeConfig {
                start_latency: o.start_latency_ms * MS,
                ..RuntimeConfig::default()
            },
            incarnations: Vec::new(),
            started: Instant::now(),
            tune: |_| {},
            verify_cache: Arc::default(),
        }
    }

    pub fn now(&self) -> Micros {
        self.world.now()
    }

    pub fn run_until(&mut self, until: Micros) {
        let truth = &mut self.truth;
        self.world
            .run_until(until, &mut |now, slot, e| truth.on_event(now, slot, e));
    }

    /// Runs `f` on the node in `slot` at the current time, then drains it.
    pub fn with_peer<R>(
        &mut self,
        slot: Slot,
        f: impl FnOnce(&mut Peer, Micros) -> R,
    ) -> Option<R> {
        let truth = &mut self.truth;
        self.world.with_node(
            slot,
            &mut |now, s, e| truth.on_event(now, s, e),
            |n, now| f(n.at(now), now),
        )
    }

    pub fn alive_slots(&self) -> Vec<Slot> {
        (0..self.world.slot_count())
            .filter(|s| self.world.node(*s).is_some())
            .collect()
    }

    pub fn random_alive(&mut self) -> Option<Slot> {
        let alive = self.alive_slots();
        (!alive.is_empty()).then(|| alive[self.world.rng.random_range(0..alive.len())])
    }

    /// The config of the next process in `slot`: same node id and address,
    /// next incarnation.
    fn next_config(&mut self, slot: Slot) -> PeerConfig {
        let incarnation = self.incarnations[slot] + 1;
        self.incarnations[slot] = incarnation;
        let mut config = PeerConfig::new(node_of(slot), self.world.addr(slot), node_info(slot));
        config.incarnation = incarnation;
        config.preset = self.preset;
        config.rng_seed = self.seed ^ ((slot as u64) << 20) ^ incarnation;
        config.verifier = self.verify_cache.verifier();
        (self.tune)(&mut config);
        config
    }

    fn new_peer(&mut self, slot: Slot) -> Peer {
        let config = self.next_config(slot);
        Peer::new(config)
    }

    fn add_slot(&mut self) -> Slot {
        let slot = self.world.add_slot(addr_of(self.world.slot_count()));
        self.incarnations.push(0);
        slot
    }

    /// `n` peers that already know each other as members (a formed
    /// cluster); they exchange their node records by the real protocol.
    pub fn form(&mut self, n: usize) {
        let slots: Vec<Slot> = (0..n).map(|_| self.add_slot()).collect();
        let mut ids: Vec<PeerIdentity> = Vec::with_capacity(n);
        for &slot in &slots {
            let peer = self.new_peer(slot);
            ids.push(peer.identity());
            self.world
                .start(slot, PeerNode::new(peer, FakeRuntime::new(self.runtime)));
        }
        for &slot in &slots {
            self.with_peer(slot, |p, now| {
                p.restore_members(wall(now), &ids);
                p.start(wall(now), &[], &[]);
            });
        }
    }

    /// A brand-new peer joins through a random running one.
    pub fn join_new(&mut self) -> Slot {
        let seed = self.random_alive().map(|s| self.world.addr(s));
        let slot = self.add_slot();
        let peer = self.new_peer(slot);
        self.world
            .start(slot, PeerNode::new(peer, FakeRuntime::new(self.runtime)));
        let seeds: Vec<_> = seed.into_iter().collect();
        self.with_peer(slot, |p, now| p.start(wall(now), &seeds, &[]));
        slot
    }

    /// Kills the peer in `slot`. Its pods vanish with it unless
    /// `keep_pods`, in which case the engine survives (its pods still run
    /// and still count) and is returned for a restart to adopt.
    pub fn crash(&mut self, slot: Slot, keep_pods: bool) -> Option<FakeRuntime> {
        let declared = self.declared();
        let node = self.world.crash(slot)?;
        let runtime = node.runtime;
        let lost: Vec<PodId> = if keep_pods {
            Vec::new()
        } else {
            runtime.running().map(|(pod, _)| pod.clone()).collect()
        };
        let now = self.now();
        self.truth.crashed(now, slot, &lost, &declared);
        keep_pods.then_some(runtime)
    }

    /// Restarts a crashed slot: same node id and address, next
    /// incarnation, joining through a random running peer; `kept` is the
    /// engine that survived the crash (its pods are adopted).
    pub fn restart(&mut self, slot: Slot, kept: Option<FakeRuntime>) {
        let seeds: Vec<_> = self
            .random_alive()
            .map(|s| self.world.addr(s))
            .into_iter()
            .collect();
        let peer = self.new_peer(slot);
        self.start_over(slot, peer, kept, &seeds);
    }

    /// Restarts a crashed slot from what its peer persisted
    /// ([`Peer::resume`]): next incarnation, joining through `seeds` (may
    /// be none) and the members it remembers; `kept` as for `restart`.
    pub fn resume(
        &mut self,
        slot: Slot,
        persisted: Persisted,
        kept: Option<FakeRuntime>,
        seeds: &[std::net::SocketAddr],
    ) {
        let config = self.next_config(slot);
        let peer = Peer::resume(config, persisted);
        self.start_over(slot, peer, kept, seeds);
    }

    fn start_over(
        &mut self,
        slot: Slot,
        peer: Peer,
        kept: Option<FakeRuntime>,
        seeds: &[std::net::SocketAddr],
    ) {
        let mut runtime = kept.unwrap_or_else(|| FakeRuntime::new(self.runtime));
        let existing = runtime.settle_for_restart();
        let running: Vec<PodId> = existing
            .iter()
            .filter(|e| e.running)
            .map(|e| e.pod.clone())
            .collect();
        let now = self.now();
        self.truth.restarted(now, slot, &running);
        self.world.start(slot, PeerNode::new(peer, runtime));
        self.with_peer(slot, |p, now| p.start(wall(now), seeds, &existing));
    }

    /// A user command at the peer in `slot`; applies and scales start a
    /// wait for the replicas they add.
    pub fn command(
        &mut self,
        slot: Slot,
        command: Command,
    ) -> Option<Result<CommandOutcome, CommandError>> {
        let want: Option<(String, u32)> = match &command {
            Command::Apply(spec) => Some((spec.name.clone(), spec.replicas)),
            Command::Scale { name, replicas } => Some((name.clone(), *replicas)),
            _ => None,
        };
        if let Some((name, replicas)) = want {
            let indices: BTreeSet<u32> = (0..replicas)
                .filter(|&i| {
                    !self.truth.is_running(&PodId {
                        rc: name.clone(),
                        index: i,
                    })
                })
                .collect();
            if !indices.is_empty() {
                let since = self.now();
                self.truth.wait_for(name, indices, since);
            }
        }
        self.with_peer(slot, |p, now| p.handle_command(wall(now), command))
    }

    pub fn apply(&mut self, slot: Slot, spec: RcSpec) {
        let _ = self.command(slot, Command::Apply(spec));
    }

    /// The live RCs and their counts, as the first live peer sees them.
    pub fn declared(&self) -> BTreeMap<String, u32> {
        self.alive_slots()
            .first()
            .and_then(|&s| self.world.node(s))
            .map(|n| {
                n.peer
                    .rcs()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.replicas))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Copies of each replica running on live nodes, read from the engines.
    pub fn running_counts(&self) -> BTreeMap<PodId, usize> {
        let mut counts: BTreeMap<PodId, usize> = BTreeMap::new();
        for slot in self.alive_slots() {
            if let Some(n) = self.world.node(slot) {
                for (pod, _) in n.runtime.running() {
                    *counts.entry(pod.clone()).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Where each replica runs (one node when there is a single copy).
    pub fn placement_truth(&self) -> BTreeMap<PodId, Slot> {
        let mut at = BTreeMap::new();
        for slot in self.alive_slots() {
            if let Some(n) = self.world.node(slot) {
                for (pod, _) in n.runtime.running() {
                    at.insert(pod.clone(), slot);
                }
            }
        }
        at
    }

    pub fn replica_count(&self) -> ReplicaCount {
        count_replicas(&self.declared(), &self.running_counts())
    }

    /// The assignment of the first live peer (all agree at quiescence).
    pub fn reference_assignment(&self) -> Assignment {
        self.alive_slots()
            .first()
            .and_then(|&s| self.world.node(s))
            .map(|n| n.peer.assignment().clone())
            .unwrap_or_default()
    }

    /// Everything that must hold at quiescence; empty when it does.
    pub fn violations(&self) -> Vec<String> {
        let mut lines = self.state_violations();
        if self.truth.handover_breaks > 0 {
            lines.push(format!(
                "{} handovers stopped a replica before its successor ran: {:?}",
                self.truth.handover_breaks, self.truth.handover_examples
            ));
        }
        lines
    }

    /// What must hold of the cluster now (not of its history): exact
    /// counts, agreement, full views, no replica owned by a dead node.
    pub fn state_violations(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let count = self.replica_count();
        if !count.exact() {
            lines.push(format!(
                "replicas: {} missing, {} duplicated, {} undeclared; {:?}",
                count.missing, count.duplicates, count.undeclared, count.examples
            ));
        }
        let alive: BTreeSet<NodeId> = self.alive_slots().into_iter().map(node_of).collect();
        let nodes = || {
            self.alive_slots()
                .into_iter()
                .filter_map(|s| self.world.node(s).map(|n| (s, n)))
        };
        lines.extend(all_agree(
            "the desired state",
            nodes().map(|(s, n)| (s, desired_hash(&n.peer))),
        ));
        lines.extend(all_agree(
            "the assignment",
            nodes().map(|(s, n)| (s, assignment_hash(n.peer.assignment()))),
        ));
        if let Some((s, seen)) = self.first_partial_view() {
            lines.push(format!(
                "slot {s} sees {seen} members, {} are alive",
                alive.len()
            ));
        }
        let reference = self.reference_assignment();
        let dead_owner = reference.iter().find(|(_, n)| !alive.contains(n));
        if let Some((pod, n)) = dead_owner {
            lines.push(format!(
                "{}-{} is assigned to dead node {n}",
                pod.rc, pod.index
            ));
        }
        lines
    }

    /// True when every live peer sees exactly the live peers as members.
    pub fn all_see_all(&self) -> bool {
        self.first_partial_view().is_none()
    }

    /// The first live peer whose members (itself included) are not the
    /// live peers, and how many it sees.
    fn first_partial_view(&self) -> Option<(Slot, usize)> {
        let slots = self.alive_slots();
        let alive: BTreeSet<NodeId> = slots.iter().map(|&s| node_of(s)).collect();
        slots.into_iter().find_map(|s| {
            let peer = &self.world.node(s)?.peer;
            let mut seen: BTreeSet<NodeId> = peer.members().keys().copied().collect();
            seen.insert(peer.node());
            (seen != alive).then_some((s, seen.len()))
        })
    }

    /// Invariants of one side of a partition: the replicas its peers
    /// declare each run exactly once on its nodes, its peers agree.
    pub fn side_violations(&self, side: &[Slot]) -> Vec<String> {
        let nodes: Vec<(Slot, &PeerNode)> = side
            .iter()
            .filter_map(|&s| self.world.node(s).map(|n| (s, n)))
            .collect();
        let Some((_, first)) = nodes.first() else {
            return Vec::new();
        };
        let declared: BTreeMap<String, u32> = first
            .peer
            .rcs()
            .iter()
            .map(|(k, v)| (k.clone(), v.replicas))
            .collect();
        let mut running: BTreeMap<PodId, usize> = BTreeMap::new();
        for (_, n) in &nodes {
            for (pod, _) in n.runtime.running() {
                *running.entry(pod.clone()).or_default() += 1;
            }
        }
        let mut lines = Vec::new();
        let count = count_replicas(&declared, &running);
        if !count.exact() {
            lines.push(format!("side {side:?}: {:?}", count.examples));
        }
        lines.extend(all_agree(
            "the desired state",
            nodes.iter().map(|(s, n)| (*s, desired_hash(&n.peer))),
        ));
        lines
    }

    /// Every running copy of `rc` runs the template whose first image is
    /// `image`, and every peer declares that template.
    pub fn runs_image(&self, rc: &str, image: &str) -> bool {
        let Some(spec) = self
            .alive_slots()
            .first()
            .and_then(|&s| self.world.node(s))
            .and_then(|n| n.peer.rcs().get(rc).cloned())
        else {
            return false;
        };
        if spec.template.primary_image() != image {
            return false;
        }
        let hash = spec.template.hash();
        self.alive_slots()
            .into_iter()
            .filter_map(|s| self.world.node(s))
            .flat_map(|n| {
                n.runtime
                    .running()
                    .map(|(p, f)| (p.clone(), f.template_hash))
                    .collect::<Vec<_>>()
            })
            .filter(|(p, _)| p.rc == rc)
            .all(|(_, h)| h == hash)
    }

    /// Runs in steps until the invariants hold or `deadline`; returns when.
    pub fn settle(&mut self, step: Micros, deadline: Micros) -> Option<Micros> {
        self.settle_until(step, deadline, |_| true)
    }

    /// Like [`PeerCluster::settle`], with one more condition that must hold.
    pub fn settle_until(
        &mut self,
        step: Micros,
        deadline: Micros,
        also: impl Fn(&PeerCluster) -> bool,
    ) -> Option<Micros> {
        loop {
            if also(self) && self.violations().is_empty() {
                return Some(self.now());
            }
            if self.now() >= deadline {
                return None;
            }
            let next = (self.now() + step).min(deadline);
            self.run_until(next);
        }
    }

    /// Wall time of one full assignment on the reference peer's view, ms
    /// (best of three, so a scheduling hiccup does not count).
    pub fn placement_ms(&self) -> Option<f64> {
        let slot = *self.alive_slots().first()?;
        let peer = &self.world.node(slot)?.peer;
        let candidates = inputs(
            &peer.state().observed,
            peer.state().desired.nodes(),
            peer.rcs(),
            peer.node(),
            |n| peer.counts_alive(n),
        );
        (0..3)
            .map(|_| {
                let t = Instant::now();
                let a = assign(peer.rcs(), &candidates);
                std::hint::black_box(a);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .min_by(f64::total_cmp)
    }
}

/// Replicas whose node changed between two ground-truth placements, over
/// the ideal for the membership change the two assignments reflect.
pub fn moved_ratio(
    before_truth: &BTreeMap<PodId, Slot>,
    after_truth: &BTreeMap<PodId, Slot>,
    before: &Assignment,
    after: &Assignment,
) -> Option<f64> {
    let moved = before_truth
        .iter()
        .filter(|(pod, slot)| after_truth.get(*pod).is_some_and(|s| s != *slot))
        .count();
    let ideal = ideal_moves(before, after);
    (ideal > 0).then(|| moved as f64 / ideal as f64)
}

fn desired_hash(peer: &Peer) -> u64 {
    let bytes = shoal_crdt_state::wire::encode(&peer.state().desired.digest()).unwrap_or_default();
    xxh3_64(&bytes)
}

fn assignment_hash(a: &Assignment) -> u64 {
    let mut h = Xxh3::new();
    for (pod, node) in a.iter() {
        h.update(pod.rc.as_bytes());
        h.update(&pod.index.to_le_bytes());
        h.update(&node.0.to_le_bytes());
    }
    h.digest()
}

/// Seconds as world time.
pub const fn secs(s: u64) -> Micros {
    s * SECOND
}
