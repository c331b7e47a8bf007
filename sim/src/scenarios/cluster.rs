//! A cluster of membership nodes in a world, with the ground truth and the
//! trackers that turn membership events into convergence times.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use rand::RngExt;
use shoal_crdt_state::node::NodeId;
use shoal_gossip::{Membership, MembershipEvent, PeerIdentity, Preset};

use crate::invariants::views_match_truth;
use crate::membership_node::{MembershipNode, duration};
use crate::net::Network;
use crate::queue::Micros;
use crate::report::{Report, percentile};
use crate::world::{Slot, World};

pub const SECOND: Micros = 1_000_000;
pub const MS: Micros = 1_000;

/// Fake address of slot `i` (never bound: the simulator opens no socket).
pub fn addr_of(i: usize) -> SocketAddr {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    SocketAddr::from((Ipv4Addr::from(base + i as u32 + 1), 7946))
}

/// Who must learn about `subject`, and when each did.
#[derive(Debug)]
struct Watch {
    start: Micros,
    /// Observer slot -> time it learned (None: not yet).
    seen: BTreeMap<Slot, Option<Micros>>,
}

impl Watch {
    fn new(start: Micros, observers: impl Iterator<Item = Slot>) -> Self {
        Self {
            start,
            seen: observers.map(|o| (o, None)).collect(),
        }
    }

    fn mark(&mut self, observer: Slot, now: Micros) {
        if let Some(slot @ None) = self.seen.get_mut(&observer) {
            *slot = Some(now);
        }
    }

    /// Time until `fraction` of the observers knew; None if never reached.
    fn latency(&self, fraction: f64) -> Option<f64> {
        let mut times: Vec<Micros> = self.seen.values().filter_map(|t| *t).collect();
        let need = ((fraction * self.seen.len() as f64).ceil() as usize).max(1);
        if self.seen.is_empty() {
            return None;
        }
        if times.len() < need {
            return None;
        }
        times.sort_unstable();
        Some((times[need - 1].saturating_sub(self.start)) as f64 / 1000.0)
    }
}

/// Membership events turned into figures.
#[derive(Debug, Default)]
pub struct Tracker {
    joins: BTreeMap<PeerIdentity, Watch>,
    crashes: BTreeMap<PeerIdentity, Watch>,
    /// Count false positives only while this is true (off in partitions).
    pub counting: bool,
    pub false_suspicions: u64,
    pub false_downs: u64,
}

/// A world of membership nodes plus the truth about who runs.
pub struct Cluster {
    pub world: World<MembershipNode>,
    pub tracker: Tracker,
    preset: Preset,
    seed: u64,
    /// Highest identity incarnation each slot has used.
    incarnations: Vec<u64>,
    started: Instant,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("world", &self.world)
            .finish()
    }
}

fn on_event(
    tracker: &mut Tracker,
    world_alive: &BTreeMap<SocketAddr, PeerIdentity>,
    now: Micros,
    observer: Slot,
    event: MembershipEvent,
) {
    // An identity of a process that is running now (possibly renewed since).
    let alive_now = |id: &PeerIdentity| {
        world_alive
            .get(&id.addr)
            .is_some_and(|cur| id.incarnation >= cur.incarnation)
    };
    match event {
        MembershipEvent::Up(id) => {
            if let Some(w) = tracker.joins.get_mut(&id) {
                w.mark(observer, now);
            }
        }
        MembershipEvent::Renamed { old, new } => {
            if let Some(w) = tracker.joins.get_mut(&new) {
                w.mark(observer, now);
            }
            // Replaced by its restart: the observer knows the old one is gone.
            if let Some(w) = tracker.crashes.get_mut(&old) {
                w.mark(observer, now);
            }
        }
        MembershipEvent::Down(id) => {
            if let Some(w) = tracker.crashes.get_mut(&id) {
                w.mark(observer, now);
            }
            if tracker.counting && alive_now(&id) {
                tracker.false_downs += 1;
            }
        }
        MembershipEvent::Suspected(id) if tracker.counting && alive_now(&id) => {
            tracker.false_suspicions += 1;
        }
        _ => {}
    }
}

impl Cluster {
    pub fn new(net: Network, preset: Preset, seed: u64) -> Self {
        Self {
            world: World::new(net, seed),
            tracker: Tracker {
                counting: true,
                ..Tracker::default()
            },
            preset,
            seed,
            incarnations: Vec::new(),
            started: Instant::now(),
        }
    }

    pub fn now(&self) -> Micros {
        self.world.now()
    }

    /// Identity each running node currently has, by address.
    fn alive_map(&self) -> BTreeMap<SocketAddr, PeerIdentity> {
        (0..self.world.slot_count())
            .filter_map(|s| self.world.node(s))
            .map(|n| {
                let id = n.membership.identity();
                (id.addr, id)
            })
            .collect()
    }

    pub fn alive_slots(&self) -> Vec<Slot> {
        (0..self.world.slot_count())
            .filter(|s| self.world.node(*s).is_some())
            .collect()
    }

    pub fn dead_slots(&self) -> Vec<Slot> {
        (0..self.world.slot_count())
            .filter(|s| self.world.node(*s).is_none())
            .collect()
    }

    /// Runs the world until `until`, feeding events to the tracker.
    pub fn run_until(&mut self, until: Micros) {
        // The truth changes only between run_until calls (scenario steps),
        // except for renewals, which keep the address: refresh per call.
        let alive = self.alive_map();
        let tracker = &mut self.tracker;
        self.world.run_until(until, &mut |now, slot, e| {
            on_event(tracker, &alive, now, slot, e)
        });
    }

    fn new_node(&mut self, slot: Slot) -> Membership {
        let incarnation = self.incarnations[slot] + 1;
        self.incarnations[slot] = incarnation;
        let node = NodeId(xxhash_rust::xxh3::xxh3_64(&(slot as u64).to_le_bytes()));
        let id = PeerIdentity::new(node, self.world.addr(slot), incarnation);
        let rng_seed = self.seed ^ ((slot as u64) << 20) ^ incarnation;
        Membership::new(id, self.preset, rng_seed)
    }

    fn add_slot(&mut self) -> Slot {
        let slot = self.world.add_slot(addr_of(self.world.slot_count()));
        self.incarnations.push(0);
        slot
    }

    /// `n` peers that already know each other (a formed cluster), as if
    /// they had joined long ago: used to measure failures, not joins.
    pub fn form(&mut self, n: usize) {
        let slots: Vec<Slot> = (0..n).map(|_| self.add_slot()).collect();
        let nodes: Vec<Membership> = slots.iter().map(|s| self.new_node(*s)).collect();
        let ids: Vec<PeerIdentity> = nodes.iter().map(|m| m.identity()).collect();
        for (slot, node) in slots.iter().zip(nodes) {
            self.world.start(*slot, MembershipNode::new(node));
        }
        let mut ignore = |_: Micros, _: Slot, _: MembershipEvent| {};
        for slot in slots {
            self.world.with_node(slot, &mut ignore, |n, now| {
                n.membership
                    .restore_members(duration(now), ids.iter().copied())
            });
        }
    }

    fn start_and_join(&mut self, slot: Slot, seed_slot: Option<Slot>) {
        let node = self.new_node(slot);
        let id = node.identity();
        let observers: Vec<Slot> = self.alive_slots();
        self.world.start(slot, MembershipNode::new(node));
        if let Some(seed) = seed_slot {
            let seed_addr = self.world.addr(seed);
            let mut ignore = |_: Micros, _: Slot, _: MembershipEvent| {};
            self.world.with_node(slot, &mut ignore, |n, now| {
                n.membership.join(duration(now), seed_addr)
            });
            self.tracker
                .joins
                .insert(id, Watch::new(self.now(), observers.into_iter()));
        }
    }

    /// A brand-new peer joins through a random running one (or starts
    /// alone if none runs).
    pub fn join_new(&mut self) -> Slot {
        let alive = self.alive_slots();
        let seed = if alive.is_empty() {
            None
        } else {
            Some(alive[self.world.rng.random_range(0..alive.len())])
        };
        let slot = self.add_slot();
        self.start_and_join(slot, seed);
        slot
    }

    /// Kills the process in `slot`; starts watching its detection.
    pub fn crash(&mut self, slot: Slot) {
        let Some(node) = self.world.crash(slot) else {
            return;
        };
        let id = node.membership.identity();
        self.incarnations[slot] = self.incarnations[slot].max(id.incarnation);
        for w in self.tracker.joins.values_mut() {
            w.seen.remove(&slot);
        }
        for w in self.tracker.crashes.values_mut() {
            w.seen.remove(&slot);
        }
        let observers = self.alive_slots();
        self.tracker
            .crashes
            .insert(id, Watch::new(self.now(), observers.into_iter()));
    }

    /// Restarts a crashed slot: same node id and address, next incarnation,
    /// joining through a random running peer.
    pub fn restart(&mut self, slot: Slot) {
        let alive = self.alive_slots();
        let seed = (!alive.is_empty()).then(|| alive[self.world.rng.random_range(0..alive.len())]);
        self.start_and_join(slot, seed);
    }

    /// Invariant violations now (empty when every view matches the truth).
    pub fn violations(&self) -> Vec<String> {
        let truth: BTreeSet<PeerIdentity> = self.alive_map().into_values().collect();
        let views = self.alive_slots().into_iter().filter_map(|s| {
            let node = self.world.node(s)?;
            let view: BTreeSet<PeerIdentity> =
                node.membership.active_identities().into_iter().collect();
            Some((node.membership.identity(), view))
        });
        let mut lines = views_match_truth(&truth, views, 5);
        if !lines.is_empty() {
            lines.push(self.disagreement_summary(&truth));
        }
        lines
    }

    /// Why views disagree, over every observer: a missing peer is either
    /// known only by an older identity (a renewal not learned), declared
    /// down, or never learned; an extra one is a dead peer or an old
    /// identity of a running one.
    fn disagreement_summary(&self, truth: &BTreeSet<PeerIdentity>) -> String {
        let by_addr: BTreeMap<SocketAddr, PeerIdentity> =
            truth.iter().map(|id| (id.addr, *id)).collect();
        let (mut observers, mut stale, mut down, mut unknown) = (0, 0, 0, 0);
        let (mut extra_dead, mut extra_old) = (0, 0);
        for s in self.alive_slots() {
            let Some(node) = self.world.node(s) else {
                continue;
            };
            let view = node.membership.view();
            let active: BTreeSet<PeerIdentity> = view
                .members
                .iter()
                .filter(|m| m.state.is_active())
                .map(|m| m.identity)
                .collect();
            if &active == truth {
                continue;
            }
            observers += 1;
            for id in truth.difference(&active) {
                if active.iter().any(|a| a.addr == id.addr) {
                    stale += 1;
                } else if view.members.iter().any(|m| m.identity == *id) {
                    down += 1;
                } else {
                    unknown += 1;
                }
            }
            for id in active.difference(truth) {
                if by_addr.contains_key(&id.addr) {
                    extra_old += 1;
                } else {
                    extra_dead += 1;
                }
            }
        }
        format!(
            "summary: {observers} observers disagree; missing: {stale} known only by an older \
             identity, {down} declared down, {unknown} never learned; extra: {extra_dead} dead \
             peers, {extra_old} old identities of running peers"
        )
    }

    /// Runs in steps of `step` until the invariants hold or `deadline`;
    /// returns the time they first held.
    pub fn settle(&mut self, step: Micros, deadline: Micros) -> Option<Micros> {
        loop {
            if self.violations().is_empty() {
                return Some(self.now());
            }
            if self.now() >= deadline {
                return None;
            }
            let next = (self.now() + step).min(deadline);
            self.run_until(next);
        }
    }

    /// Builds the report; `peers` is the scenario's nominal size.
    pub fn report(&self, scenario: &str, peers: usize, mut extra: BTreeMap<String, f64>) -> Report {
        let joins: Vec<Option<f64>> = self
            .tracker
            .joins
            .values()
            .map(|w| w.latency(1.0))
            .collect();
        let detects: Vec<Option<f64>> = self
            .tracker
            .crashes
            .values()
            .map(|w| w.latency(0.999))
            .collect();
        let join_ok: Vec<f64> = joins.iter().flatten().copied().collect();
        let detect_ok: Vec<f64> = detects.iter().flatten().copied().collect();
        let violations = self.violations();
        let sim_s = (self.now() as f64 / SECOND as f64).max(1e-9);
        let node_s = peers.max(1) as f64 * sim_s;
        // Bytes per node per second by datagram kind, over running nodes
        // (crashed ones took their counters with them).
        let mut by_kind = [0u64; 8];
        for n in (0..self.world.slot_count()).filter_map(|s| self.world.node(s)) {
            for (total, b) in by_kind.iter_mut().zip(n.bytes_by_kind) {
                *total += b;
            }
        }
        let live = self.alive_slots().len().max(1) as f64 * sim_s;
        for (kind, name) in [
            (1, "swim"),
            (3, "roster"),
            (4, "digest"),
            (5, "suspect_notice"),
        ] {
            extra.insert(
                format!("bytes_per_node_s_{name}"),
                by_kind[kind] as f64 / live,
            );
        }
        let node_errors = (0..self.world.slot_count())
            .filter_map(|s| self.world.node(s))
            .map(|n| n.errors)
            .sum();
        Report {
            scenario: scenario.to_string(),
            peers,
            seed: self.seed,
            converged: violations.is_empty(),
            join_p50_ms: percentile(&join_ok, 0.5),
            join_p99_ms: percentile(&join_ok, 0.99),
            join_max_ms: percentile(&join_ok, 1.0),
            joins: joins.len(),
            joins_incomplete: joins.len() - join_ok.len(),
            detect_p50_ms: percentile(&detect_ok, 0.5),
            detect_p99_ms: percentile(&detect_ok, 0.99),
            detect_max_ms: percentile(&detect_ok, 1.0),
            crashes: detects.len(),
            detections_incomplete: detects.len() - detect_ok.len(),
            false_suspicions: self.tracker.false_suspicions,
            false_downs: self.tracker.false_downs,
            msgs_per_node_per_s: self.world.traffic.datagrams_sent as f64 / node_s,
            bytes_per_node_per_s: self.world.traffic.bytes_sent as f64 / node_s,
            sim_ms: self.now() / MS,
            wall_ms: self.started.elapsed().as_millis() as u64,
            events: self.world.events_processed(),
            trace_hash: format!("{:016x}", self.world.trace_hash()),
            node_errors,
            extra,
            violations,
        }
    }
}
