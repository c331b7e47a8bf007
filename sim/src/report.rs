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
