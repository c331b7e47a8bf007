//! Scenarios with whole peer cores and a workload: each forms a cluster,
//! applies replication controllers, disturbs it, lets it settle, checks
//! the invariants against the fake engines and returns a [`PeerReport`].
//!
//! - `apply`: RCs applied at random peers; time to all replicas running.
//! - `failover`: nodes running replicas crash; time to replacements; then
//!   one node restarts with its pods still running (adoption).
//! - `scale`: one RC from 2 to `replicas` and back to 2.
//! - `rc-partition-heal`: each side keeps the declared count while split; a
//!   scale on one side and an image change on the other both survive.
//! - `rc-join`: new nodes take a fair share with minimal movement.
//! - `host-port`: an RC needing a host port every node's pods hold waits,
//!   unplaced, without evicting them; it starts once they are deleted.
//! - `rollout` (and `-crash`, `-scale`, `-partition`): every RC rolled to
//!   a new image; the surge and unavailability bounds checked at every
//!   instant (see [`rollout`]).
//! - `full-restart`: every peer loses power within a second and resumes
//!   from what it persisted, in random order within 30 s; its engines
//!   survive or die with it ([`Engines`]).
//!
//! - [`gc`]: tombstones are collected once every known node holds them,
//!   and a peer partitioned or forgotten across the horizon resurrects
//!   nothing (its own report, [`gc::GcReport`]).
//!
//! [`cluster`] holds the cluster of peers and [`truth`] the ground truth
//! of what runs where.

pub mod apply;
pub mod cluster;
pub mod failover;
pub mod full_restart;
pub mod gc;
pub mod host_port;
pub mod join;
pub mod partition;
pub mod rollout;
pub mod scale;
pub mod takeback;
pub mod truth;

use std::collections::BTreeMap;

use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, RcSpec, Resources, RestartPolicy, UpdateStrategy,
};
use shoal_gossip::Preset;

use crate::net::NetConfig;
use crate::report::{PeerReport, RcFigures, Report, percentile};
use cluster::PeerCluster;

/// Options of a peer-core scenario.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    pub peers: usize,
    pub seed: u64,
    pub preset: Preset,
    pub net: NetConfig,
    /// RCs in the workload.
    pub rcs: usize,
    /// Replicas per RC (the `scale` target for `scale`).
    pub replicas: u32,
    /// Fake engine: start to running.
    pub start_latency_ms: u64,
    /// `full-restart`: whether the container engines survive the power cut.
    pub engines: Engines,
}

/// What a `full-restart` power cut does to the container engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engines {
    /// Only the peer processes restart: containers keep running and must
    /// be adopted, not started twice.
    #[default]
    Survive,
    /// Every container dies with the power: exactly N must start again.
    Die,
}

impl Engines {
    pub fn as_str(self) -> &'static str {
        match self {
            Engines::Survive => "survive",
            Engines::Die => "die",
        }
    }
}

impl std::str::FromStr for Engines {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "survive" => Ok(Engines::Survive),
            "die" => Ok(Engines::Die),
            other => Err(format!("unknown engine fate {other:?}: use survive or die")),
        }
    }
}

impl PeerOptions {
    pub fn new(peers: usize, seed: u64) -> Self {
        PeerOptions {
            peers,
            seed,
            preset: Preset::Lan,
            net: NetConfig::default(),
            rcs: 10,
            replicas: 3,
            start_latency_ms: 200,
            engines: Engines::Survive,
        }
    }
}

/// Peer scenario names accepted by [`run`] and the command line.
pub const NAMES: [&str; 14] = [
    "apply",
    "failover",
    "scale",
    "rc-partition-heal",
    "rc-join",
    "host-port",
    "full-restart",
    "rollout",
    "rollout-crash",
    "rollout-scale",
    "rollout-partition",
    "rollout-partition-undo",
    "rollout-undo",
    "rollout-twice",
];

/// Runs the peer scenario called `name`.
pub fn run(name: &str, o: &PeerOptions) -> Result<PeerReport, String> {
    match name {
        "apply" => Ok(apply::run(o)),
        "failover" => Ok(failover::run(o)),
        "scale" => Ok(scale::run(o)),
        "rc-partition-heal" => Ok(partition::run(o)),
        "rc-join" => Ok(join::run(o)),
        "host-port" => Ok(host_port::run(o)),
        "full-restart" => Ok(full_restart::run(o)),
        "rollout" => Ok(rollout::run(o, rollout::Disturbance::None)),
        "rollout-crash" => Ok(rollout::run(o, rollout::Disturbance::Crash)),
        "rollout-scale" => Ok(rollout::run(o, rollout::Disturbance::Scale)),
        "rollout-partition" => Ok(rollout::run(o, rollout::Disturbance::Partition)),
        "rollout-partition-undo" => Ok(rollout::run(o, rollout::Disturbance::PartitionUndo)),
        "rollout-undo" => Ok(rollout::run(o, rollout::Disturbance::Undo)),
        "rollout-twice" => Ok(rollout::run(o, rollout::Disturbance::Twice)),
        other => Err(format!(
            "unknown peer scenario {other:?}; pick one of {}",
            NAMES.join(", ")
        )),
    }
}

/// The workload's RC number `i`: one container, no ports, a small request.
pub fn workload_rc(i: usize, replicas: u32) -> RcSpec {
    let name = format!("rc-{i:04}");
    let labels: BTreeMap<String, String> = [("app".to_string(), name.clone())].into();
    RcSpec {
        name,
        replicas,
        selector: labels.clone(),
        template: PodTemplate {
            labels,
            containers: vec![ContainerSpec {
                resources: Resources {
                    cpu_millis: 10,
                    memory_bytes: 16 << 20,
                },
                ..ContainerSpec::new("main", "shoal/hello:1")
            }],
            node_selector: BTreeMap::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 1,
        },
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::default(),
        paused: false,
    }
}

/// Applies the workload at random peers, at random moments in
/// `[now, now + spread)`.
pub fn apply_workload(c: &mut PeerCluster, o: &PeerOptions, spread: u64) {
    use rand::RngExt;
    let start = c.now();
    let mut times: Vec<(u64, usize)> = (0..o.rcs)
        .map(|i| (start + c.world.rng.random_range(0..spread.max(1)), i))
        .collect();
    times.sort_unstable();
    for (at, i) in times {
        c.run_until(at);
        if let Some(slot) = c.random_alive() {
            c.apply(slot, workload_rc(i, o.replicas));
        }
    }
}

/// Builds the report; `extra` holds scenario-specific figures.
pub fn report(
    c: &PeerCluster,
    scenario: &str,
    peers: usize,
    moved_ratio: Option<f64>,
    mut extra: BTreeMap<String, f64>,
) -> PeerReport {
    // How often placement ran: it runs on every peer for every change of
    // its inputs, so this is what dirty-marking costs.
    let (placements, live) = c
        .alive_slots()
        .into_iter()
        .filter_map(|s| c.world.node(s))
        .fold((0u64, 0u64), |(p, n), node| {
            (p + node.peer.stats().placements, n + 1)
        });
    extra.insert(
        "placements_per_peer".into(),
        placements as f64 / live.max(1) as f64,
    );
    // Signature checks are most of a peer's CPU: how many, and how many
    // copies of records already held were dropped without one.
    let (verified, already_held, digests_not_sent) = c
        .alive_slots()
        .into_iter()
        .filter_map(|s| c.world.node(s))
        .fold((0u64, 0u64, 0u64), |(v, h, d), node| {
            let stats = node.peer.stats();
            (
                v + stats.records_verified,
                h + stats.records_already_held,
                d + stats.digests_not_sent,
            )
        });
    extra.insert(
        "records_verified_per_peer".into(),
        verified as f64 / live.max(1) as f64,
    );
    extra.insert(
        "records_already_held_per_peer".into(),
        already_held as f64 / live.max(1) as f64,
    );
    // Pulls answered without a digest: the answering side lacked nothing.
    extra.insert(
        "digests_not_sent_per_peer".into(),
        digests_not_sent as f64 / live.max(1) as f64,
    );
    let violations = c.violations();
    let count = c.replica_count();
    let declared = c.declared();
    let sim_s = (c.now() as f64 / 1e6).max(1e-9);
    let node_s = peers.max(1) as f64 * sim_s;
    if crate::sync_breakdown::enabled() {
        crate::sync_breakdown::print(node_s);
    }
    let traffic = &c.world.traffic;
    let node_errors = c
        .alive_slots()
        .into_iter()
        .filter_map(|s| c.world.node(s))
        .map(|n| n.bad_messages)
        .sum();
    let t = &c.truth;
    let base = Report {
        scenario: scenario.to_string(),
        peers,
        seed: c.seed,
        converged: violations.is_empty(),
        join_p50_ms: None,
        join_p99_ms: None,
        join_max_ms: None,
        joins: 0,
        joins_incomplete: 0,
        detect_p50_ms: None,
        detect_p99_ms: None,
        detect_max_ms: None,
        crashes: 0,
        detections_incomplete: 0,
        false_suspicions: 0,
        false_downs: 0,
        msgs_per_node_per_s: traffic.datagrams_sent as f64 / node_s,
        bytes_per_node_per_s: traffic.bytes_sent as f64 / node_s,
        sim_ms: c.now() / 1000,
        wall_ms: c.started.elapsed().as_millis() as u64,
        events: c.world.events_processed(),
        trace_hash: format!("{:016x}", c.world.trace_hash()),
        node_errors,
        extra,
        violations: violations.clone(),
    };
    let rc = RcFigures {
        rc_converged: violations.is_empty(),
        rcs: declared.len(),
        replicas_declared: declared.values().map(|&r| r as usize).sum(),
        apply_to_running_p50_ms: percentile(&t.apply_ms, 0.5),
        apply_to_running_p99_ms: percentile(&t.apply_ms, 0.99),
        applies_incomplete: t.waits_incomplete(),
        failover_p50_ms: percentile(&t.failover_ms, 0.5),
        failover_p99_ms: percentile(&t.failover_ms, 0.99),
        failover_max_ms: percentile(&t.failover_ms, 1.0),
        failovers: t.failover_ms.len() + t.failovers_incomplete(),
        failovers_incomplete: t.failovers_incomplete(),
        max_duplicates_at_quiescence: count.duplicates,
        missing_at_quiescence: count.missing,
        moved_ratio,
        placement_ms: c.placement_ms(),
        handover_stops: t.handover_stops,
        handover_breaks: t.handover_breaks,
        sync_msgs_per_node_per_s: traffic.messages_sent as f64 / node_s,
        sync_bytes_per_node_per_s: traffic.message_bytes as f64 / node_s,
    };
    PeerReport {
        base,
        rc,
        restart: None,
    }
}
