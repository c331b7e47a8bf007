//! `rc-join`: with the workload running, 10% more nodes join one by one;
//! they must take a fair share of replicas while the rest stay put
//! (moved / ideal near 1).

use std::collections::BTreeMap;

use super::cluster::{PeerCluster, moved_ratio, node_of, secs};
use super::{PeerOptions, apply_workload, report};
use crate::report::PeerReport;

pub fn run(o: &PeerOptions) -> PeerReport {
    let mut c = PeerCluster::new(o);
    c.form(o.peers);
    c.run_until(secs(2));
    apply_workload(&mut c, o, secs(1));
    let formed = c.settle(secs(1) / 2, secs(90));
    let before_truth = c.placement_truth();
    let before = c.reference_assignment();

    let joining = (o.peers / 10).max(1);
    let mut new_slots = Vec::new();
    for _ in 0..joining {
        new_slots.push(c.join_new());
        c.run_until(c.now() + secs(1) / 5);
    }
    let t0 = c.now();
    let joined = c.settle(secs(1) / 2, t0 + secs(120));
    let after = c.reference_assignment();
    let ratio = moved_ratio(&before_truth, &c.placement_truth(), &before, &after);

    let usable = after.usable_nodes().len().max(1);
    let mean = after.placed() as f64 / usable as f64;
    let loads: Vec<usize> = new_slots.iter().map(|&s| after.load(node_of(s))).collect();
    let min_new = loads.iter().copied().min().unwrap_or(0);
    let total_new: usize = loads.iter().sum();
    let mut extra = BTreeMap::new();
    extra.insert("joined".into(), joining as f64);
    extra.insert(
        "formed_ms".into(),
        formed.map_or(-1.0, |t| (t / 1000) as f64),
    );
    extra.insert(
        "joined_ms".into(),
        joined.map_or(-1.0, |t| ((t - t0) / 1000) as f64),
    );
    // Bounded-load placement caps the busiest node, not the idlest: one new
    // node may get little, but together they should get their share.
    let share = |n: f64| if mean > 0.0 { n / mean } else { 0.0 };
    extra.insert("new_node_min_share".into(), share(min_new as f64));
    extra.insert(
        "new_nodes_share".into(),
        share(total_new as f64 / loads.len().max(1) as f64),
    );
    report(&c, "rc-join", o.peers, ratio, extra)
}
