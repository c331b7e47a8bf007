//! `loss`: no failures at all, under steady 5% then 20% loss; every
//! suspicion and every down is a false positive.

use std::collections::BTreeMap;

use super::Options;
use super::cluster::SECOND;
use crate::report::Report;

/// Length of each loss phase.
pub const PHASE: u64 = 30 * SECOND;

pub fn run(o: &Options) -> Report {
    let mut c = o.cluster();
    c.form(o.peers);
    c.run_until(2 * SECOND);
    let mut extra = BTreeMap::new();
    for (label, loss) in [("5pct", 0.05), ("20pct", 0.20)] {
        c.world.net.config.loss = loss;
        let (s0, d0) = (c.tracker.false_suspicions, c.tracker.false_downs);
        let end = c.now() + PHASE;
        c.run_until(end);
        extra.insert(
            format!("false_suspicions_{label}"),
            (c.tracker.false_suspicions - s0) as f64,
        );
        extra.insert(
            format!("false_downs_{label}"),
            (c.tracker.false_downs - d0) as f64,
        );
    }
    // Back to a normal LAN: peers declared down must renew and rejoin.
    c.world.net.config.loss = 0.01;
    let deadline = c.now() + 30 * SECOND;
    c.settle(SECOND, deadline);
    c.report("loss", o.peers, extra)
}
