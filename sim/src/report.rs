//! The run report: figures a person reads, and one JSON object for scripts.

use std::collections::BTreeMap;

use serde::Serialize;

/// Percentile by nearest rank (`q` in 0..=1) of unsorted samples.
pub fn percentile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Everything one scenario run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub peers: usize,
    pub seed: u64,
    /// Invariants held at quiescence.
    pub converged: bool,
    /// Time from a join (or restart) until every live peer knows it.
    pub join_p50_ms: Option<f64>,
    pub join_p99_ms: Option<f64>,
    pub join_max_ms: Option<f64>,
    pub joins: usize,
    pub joins_incomplete: usize,
    /// Time from a crash until 99.9% of live peers have declared it down.
    pub detect_p50_ms: Option<f64>,
    pub detect_p99_ms: Option<f64>,
    pub detect_max_ms: Option<f64>,
    pub crashes: usize,
    pub detections_incomplete: usize,
    /// Probe failures raised against live peers (outside partitions).
    pub false_suspicions: u64,
    /// Live peers declared down (outside partitions).
    pub false_downs: u64,
    pub msgs_per_node_per_s: f64,
    pub bytes_per_node_per_s: f64,
    pub sim_ms: u64,
    pub wall_ms: u64,
    pub events: u64,
    /// Hex xxh3 of every event processed: same seed, same hash.
    pub trace_hash: String,
    /// Rejected inputs across all nodes.
    pub node_errors: u64,
    /// Scenario-specific figures.
    pub extra: BTreeMap<String, f64>,
    /// Invariant violations at the end (empty when converged).
    pub violations: Vec<String>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.0} ms"))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "scenario {} | peers {} | seed {} | converged {}",
            self.scenario, self.peers, self.seed, self.converged
        )?;
        writeln!(
            f,
            "join     p50 {} p99 {} max {} ({} joins, {} incomplete)",
            ms(self.join_p50_ms),
            ms(self.join_p99_ms),
            ms(self.join_max_ms),
            self.joins,
            self.joins_incomplete
        )?;
        writeln!(
            f,
            "detect   p50 {} p99 {} max {} ({} crashes, {} incomplete; 99.9% of peers)",
            ms(self.detect_p50_ms),
            ms(self.detect_p99_ms),
            ms(self.detect_max_ms),
            self.crashes,
            self.detections_incomplete
        )?;
        writeln!(
            f,
            "false    suspicions {} downs {}",
            self.false_suspicions, self.false_downs
        )?;
        writeln!(
            f,
            "traffic  {:.1} msgs/node/s {:.0} bytes/node/s",
            self.msgs_per_node_per_s, self.bytes_per_node_per_s
        )?;
        for (k, v) in &self.extra {
            writeln!(f, "extra    {k} = {v}")?;
        }
        writeln!(
            f,
            "time     simulated {} ms, wall {} ms, {} events, trace {}",
            self.sim_ms, self.wall_ms, self.events, self.trace_hash
        )?;
        for v in &self.violations {
            writeln!(f, "VIOLATION {v}")?;
        }
        Ok(())
    }
}

/// Figures of a run with whole peer cores and workloads (every peer-core
/// scenario).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RcFigures {
    /// Every RC has exactly its declared replicas running at quiescence,
    /// all peers agree on desired state and assignment, no handover broke.
    pub rc_converged: bool,
    pub rcs: usize,
    pub replicas_declared: usize,
    /// Command (apply or scale) to all its replicas running, simulated ms.
    pub apply_to_running_p50_ms: Option<f64>,
    pub apply_to_running_p99_ms: Option<f64>,
    pub applies_incomplete: usize,
    /// Node crash to a replacement running, per lost replica, simulated ms.
    pub failover_p50_ms: Option<f64>,
    pub failover_p99_ms: Option<f64>,
    pub failover_max_ms: Option<f64>,
    pub failovers: usize,
    pub failovers_incomplete: usize,
    /// Replica indices running more than once at quiescence (must be 0).
    pub max_duplicates_at_quiescence: usize,
    /// Declared replicas running nowhere at quiescence (must be 0).
    pub missing_at_quiescence: usize,
    /// Replicas moved / ideal minimum, on a join or a loss.
    pub moved_ratio: Option<f64>,
    /// Wall time of one full assignment on this machine, ms.
    pub placement_ms: Option<f64>,
    /// Stops during a handover, and those made before the successor ran.
    pub handover_stops: u64,
    pub handover_breaks: u64,
    /// Sync (reliable) messages per node per simulated second, and bytes.
    pub sync_msgs_per_node_per_s: f64,
    pub sync_bytes_per_node_per_s: f64,
}

/// Figures of a whole-site restart (the `full-restart` scenario). Copies
/// are counted from the fake engines, including the surviving engines of
/// peers that are still down.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestartFigures {
    /// `survive` (only the peer processes restarted; containers kept
    /// running) or `die` (the engines lost every container).
    pub engines: String,
    pub restarts: usize,
    /// Restarted with no `--join` seed, only remembered members...
    pub restarted_without_seeds: usize,
    /// ... and seeing every other peer at the end.
    pub found_all_without_seeds: usize,
    /// First crash to last restart, simulated ms.
    pub restart_window_ms: f64,
    /// Most replicas running more than once at one instant, from the power
    /// cut to the end.
    pub peak_duplicates: usize,
    /// The same, counting only the engines of running peers.
    pub peak_duplicates_live: usize,
    /// When the duplicates peaked, ms from the last restart (negative:
    /// before it).
    pub peak_duplicates_at_ms: f64,
    /// Copies started while another copy of the same replica ran...
    pub duplicate_starts: u64,
    /// ... of which every other copy was on the engine of a peer still
    /// down (it had not restarted yet, or not adopted yet).
    pub duplicate_starts_over_down: u64,
    /// Longest time one replica ran more than once, ms.
    pub longest_duplicate_ms: f64,
    /// Duplicated replicas integrated over the recovery, replica-seconds
    /// (a duplicate for 2 s counts 2).
    pub duplicate_replica_s: f64,
    /// Most declared replicas running nowhere at one instant.
    pub peak_missing: usize,
    /// The peaks from the last restart on (every peer up again).
    pub peak_duplicates_after_last_start: usize,
    pub peak_missing_after_last_start: usize,
    /// Containers started from the power cut to the end (adoptions are not
    /// starts): ideally 0 when engines survive, the declared count when
    /// they die.
    pub container_starts: u64,
    /// Last restart to every peer seeing every other, simulated ms.
    pub all_see_all_ms: Option<f64>,
    /// Last restart to exactly the declared count running with every
    /// invariant holding, simulated ms.
    pub exact_ms: Option<f64>,
    /// Peers whose startup grace ended with remembered members missing.
    pub grace_ended_missing: usize,
    /// Longest startup grace, ms.
    pub grace_max_ms: Option<f64>,
    /// Restarted peers still in their grace at the end (must be 0).
    pub still_settling: usize,
    /// A few duplicate starts, for the reader.
    pub duplicate_examples: Vec<String>,
}

impl std::fmt::Display for RestartFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "restart  engines {} | {} restarts ({} without seeds, {} found everyone) over {:.0} ms",
            self.engines,
            self.restarts,
            self.restarted_without_seeds,
            self.found_all_without_seeds,
            self.restart_window_ms
        )?;
        writeln!(
            f,
            "restart  peak duplicates {} at {:.0} ms from the last start ({} on live peers; {} duplicate starts, {} over a down peer's engine; longest {:.0} ms, {:.0} replica-s in all) | peak missing {} | {} container starts",
            self.peak_duplicates,
            self.peak_duplicates_at_ms,
            self.peak_duplicates_live,
            self.duplicate_starts,
            self.duplicate_starts_over_down,
            self.longest_duplicate_ms,
            self.duplicate_replica_s,
            self.peak_missing,
            self.container_starts
        )?;
        writeln!(
            f,
            "restart  after the last start: peak duplicates {} missing {} | all see all {}, exactly N {} | grace: {} ended with members missing, longest {}, {} still settling",
            self.peak_duplicates_after_last_start,
            self.peak_missing_after_last_start,
            ms(self.all_see_all_ms),
            ms(self.exact_ms),
            self.grace_ended_missing,
            ms(self.grace_max_ms),
            self.still_settling
        )?;
        for e in &self.duplicate_examples {
            writeln!(f, "restart  e.g. {e}")?;
        }
        Ok(())
    }
}

/// A peer-core run: the membership report plus the workload figures (and
/// the restart figures of `full-restart`), as one flat JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    #[serde(flatten)]
    pub base: Report,
    #[serde(flatten)]
    pub rc: RcFigures,
    #[serde(flatten)]
    pub restart: Option<RestartFigures>,
}

impl std::fmt::Display for PeerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.base)?;
        let r = &self.rc;
        writeln!(
            f,
            "rc       converged {} | {} rcs, {} replicas | duplicates {} missing {}",
            r.rc_converged,
            r.rcs,
            r.replicas_declared,
            r.max_duplicates_at_quiescence,
            r.missing_at_quiescence
        )?;
        writeln!(
            f,
            "apply    p50 {} p99 {} ({} incomplete)",
            ms(r.apply_to_running_p50_ms),
            ms(r.apply_to_running_p99_ms),
            r.applies_incomplete
        )?;
        writeln!(
            f,
            "failover p50 {} p99 {} max {} ({} replicas, {} incomplete)",
            ms(r.failover_p50_ms),
            ms(r.failover_p99_ms),
            ms(r.failover_max_ms),
            r.failovers,
            r.failovers_incomplete
        )?;
        writeln!(
            f,
            "placement {} per full assignment | moved/ideal {} | handovers {} ({} broken)",
            r.placement_ms
                .map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms")),
            r.moved_ratio
                .map_or_else(|| "-".to_string(), |v| format!("{v:.3}")),
            r.handover_stops,
            r.handover_breaks
        )?;
        writeln!(
            f,
            "sync     {:.1} msgs/node/s {:.0} bytes/node/s",
            r.sync_msgs_per_node_per_s, r.sync_bytes_per_node_per_s
        )?;
        match &self.restart {
            Some(restart) => write!(f, "{restart}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 0.5), Some(50.0));
        assert_eq!(percentile(&s, 0.99), Some(99.0));
        assert_eq!(percentile(&s, 1.0), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
