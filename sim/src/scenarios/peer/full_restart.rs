//! `full-restart`: a whole site power-cycles. With the workload running,
//! every peer crashes within one second; each then restarts at a random
//! moment within 30 s of the power coming back, in random order, with
//! [`Peer::resume`](shoal::peer::Peer::resume) from what it persisted, with
//! no `--join` seed at all: the peers must find each other through the
//! members they remember, and run exactly the declared replicas again.
//!
//! **What a peer persisted.** The shell writes `Peer::persisted()` about
//! once a second, at a phase of its own; each peer here gets a random
//! phase and resumes from the snapshot of its last tick before the crash.
//! Desired-state changes are durable at once in the real peer (the
//! `Persist` output is written before a write is acknowledged), so the
//! desired half of the snapshot is replaced by the desired state as of the
//! crash; the observed half and the member list are the tick's.
//!
//! **Engines.** [`Engines::Survive`]: only the peer processes restart, the
//! containers keep running (and keep counting) while their peer is down,
//! and the restarted peer must adopt them. [`Engines::Die`]: every
//! container dies with the power, and the cluster must start exactly N.
//!
//! Figures ([`RestartFigures`]): peak duplicates and missing replicas
//! during the recovery, counted from the engines; time from the last
//! restart until every peer sees every other, and until the cluster is
//! exact with every invariant holding; how many peers ended their startup
//! grace with remembered members still missing.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;
use shoal::peer::Persisted;
use shoal_crdt_state::node::NodeId;

use super::cluster::{PeerCluster, node_of, secs};
use super::{Engines, PeerOptions, apply_workload, report};
use crate::fake_runtime::FakeRuntime;
use crate::peer_node::wall;
use crate::queue::Micros;
use crate::report::{PeerReport, RestartFigures};
use crate::scenarios::cluster::{MS, SECOND};
use crate::world::Slot;

/// Every peer loses power within this window.
const CRASH_WINDOW: Micros = SECOND;
/// Period of a peer's snapshot of `Peer::persisted`.
const SNAPSHOT_EVERY: Micros = SECOND;
/// Every peer restarts within this window after the power comes back.
const RESTART_WINDOW: Micros = 30 * SECOND;
/// Longest wait after the last restart for the cluster to be exact.
const RECOVERY_DEADLINE: Micros = 120 * SECOND;
/// Once exact, the run goes on this long to check that it stays exact.
const QUIET: Micros = 10 * SECOND;
/// Step of the convergence checks (the resolution of the times).
const CHECK_EVERY: Micros = 10 * MS;

/// A peer that lost power: what it will resume from.
struct Down {
    slot: Slot,
    persisted: Persisted,
    /// Its engine, when engines survive.
    kept: Option<FakeRuntime>,
}

/// A step of the power cut; at one instant a snapshot comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum CutStep {
    Snapshot,
    Crash,
}

pub fn run(o: &PeerOptions) -> PeerReport {
    let mut c = PeerCluster::new(o);
    c.form(o.peers);
    c.run_until(secs(2));
    apply_workload(&mut c, o, secs(1));
    let formed = c.settle(secs(1) / 2, secs(90));
    c.truth.track_copies(c.now(), c.declared());

    let slots = c.alive_slots();
    let (first_crash, down) = power_cut(&mut c, &slots, o.engines);
    let power_back = first_crash + CRASH_WINDOW;
    let mut restarts: Vec<(Micros, Down)> = down
        .into_iter()
        .map(|d| (power_back + c.world.rng.random_range(0..RESTART_WINDOW), d))
        .collect();
    restarts.sort_unstable_by_key(|(at, d)| (*at, d.slot));
    let restarted = restarts.len();
    for (at, d) in restarts {
        c.run_until(at);
        c.resume(d.slot, d.persisted, d.kept, &[]);
    }
    let last_start = c.now();
    if let Some(t) = &mut c.truth.copies {
        t.mark();
    }

    let (all_see_all, exact) = recover(&mut c, last_start);
    if exact.is_some() {
        c.run_until(c.now() + QUIET);
    }

    let since = |t: Option<Micros>| t.map(|t| ((t - last_start) / MS) as f64);
    let copies = c.truth.copies.clone().unwrap_or_default();

    let alive: BTreeSet<NodeId> = c.alive_slots().into_iter().map(node_of).collect();
    let found_all = slots
        .iter()
        .filter_map(|&s| c.world.node(s))
        .filter(|n| {
            let mut seen: BTreeSet<NodeId> = n.peer.members().keys().copied().collect();
            seen.insert(n.peer.node());
            seen == alive
        })
        .count();
    let still_settling = slots
        .iter()
        .filter_map(|&s| c.world.node(s))
        .filter(|n| n.peer.is_settling())
        .count();
    let graces = &c.truth.grace_ends;
    let figures = RestartFigures {
        engines: o.engines.as_str().into(),
        restarts: restarted,
        restarted_without_seeds: restarted,
        found_all_without_seeds: found_all,
        restart_window_ms: ((last_start - first_crash) / MS) as f64,
        peak_duplicates: copies.peak.duplicates,
        peak_duplicates_live: copies.peak.live_duplicates,
        duplicate_starts: copies.duplicate_starts,
        duplicate_starts_over_down: copies.duplicate_starts_over_down,
        peak_missing: copies.peak.missing,
        longest_duplicate_ms: (copies.longest_duplicate_until(c.now()) / MS) as f64,
        duplicate_replica_s: copies.duplicate_micros as f64 / SECOND as f64,
        peak_duplicates_after_last_start: copies.peak_since_mark.duplicates,
        peak_missing_after_last_start: copies.peak_since_mark.missing,
        container_starts: copies.starts,
        all_see_all_ms: since(all_see_all),
        exact_ms: since(exact),
        grace_ended_missing: graces.iter().filter(|g| g.missing > 0).count(),
        grace_max_ms: graces.iter().map(|g| g.after_ms as f64).reduce(f64::max),
        still_settling,
        peak_duplicates_at_ms: (copies.peak_duplicates_at as f64 - last_start as f64) / MS as f64,
        duplicate_examples: copies
            .over_down_examples
            .iter()
            .chain(&copies.live_examples)
            .cloned()
            .collect(),
    };

    let mut extra = BTreeMap::new();
    extra.insert("formed_ms".into(), formed.map_or(-1.0, |t| (t / MS) as f64));
    let mut r = report(&c, "full-restart", o.peers, None, extra);
    let mut fail = |why: String| {
        r.base.violations.push(why);
        r.base.converged = false;
        r.rc.rc_converged = false;
    };
    if exact.is_none() {
        fail(format!(
            "not exact within {} s of the last restart",
            RECOVERY_DEADLINE / SECOND
        ));
    }
    if still_settling > 0 {
        fail(format!(
            "{still_settling} peers still in their startup grace at the end"
        ));
    }
    r.restart = Some(figures);
    r
}

/// Every peer in `slots` crashes at a random moment of one window, and
/// keeps what it persisted at its last snapshot tick before (with the
/// desired state as of the crash). Returns the first crash's time.
fn power_cut(c: &mut PeerCluster, slots: &[Slot], engines: Engines) -> (Micros, Vec<Down>) {
    // A snapshot tick can come up to one period before a crash.
    let t0 = c.now() + SNAPSHOT_EVERY;
    let mut steps: Vec<(Micros, CutStep, Slot)> = Vec::with_capacity(2 * slots.len());
    for &slot in slots {
        let crash = t0 + c.world.rng.random_range(0..CRASH_WINDOW);
        let phase = c.world.rng.random_range(0..SNAPSHOT_EVERY);
        let tick = crash - (crash - phase) % SNAPSHOT_EVERY;
        steps.push((tick, CutStep::Snapshot, slot));
        steps.push((crash, CutStep::Crash, slot));
    }
    steps.sort_unstable();
    let first_crash = steps
        .iter()
        .find(|s| s.1 == CutStep::Crash)
        .map_or(t0, |s| s.0);
    let mut snapshots: BTreeMap<Slot, Persisted> = BTreeMap::new();
    let mut down = Vec::with_capacity(slots.len());
    for (at, step, slot) in steps {
        c.run_until(at);
        let Some(node) = c.world.node(slot) else {
            continue;
        };
        match step {
            CutStep::Snapshot => {
                snapshots.insert(slot, node.peer.persisted(wall(at)));
            }
            CutStep::Crash => {
                let mut persisted = snapshots.remove(&slot).unwrap_or_default();
                persisted.state.desired = node.peer.state().desired.clone();
                let kept = c.crash(slot, engines == Engines::Survive);
                down.push(Down {
                    slot,
                    persisted,
                    kept,
                });
            }
        }
    }
    (first_crash, down)
}

/// Runs until the cluster is exact with every invariant on its state
/// holding, or the deadline; returns when every peer first saw every
/// other, and when it became exact. (Broken handovers are history: the
/// report lists them as violations at the end.)
fn recover(c: &mut PeerCluster, last_start: Micros) -> (Option<Micros>, Option<Micros>) {
    let deadline = last_start + RECOVERY_DEADLINE;
    let mut all_see_all = None;
    loop {
        if all_see_all.is_none() && c.all_see_all() {
            all_see_all = Some(c.now());
        }
        if all_see_all.is_some() && c.replica_count().exact() && c.state_violations().is_empty() {
            return (all_see_all, Some(c.now()));
        }
        if c.now() >= deadline {
            return (all_see_all, None);
        }
        let next = (c.now() + CHECK_EVERY).min(deadline);
        c.run_until(next);
    }
}
