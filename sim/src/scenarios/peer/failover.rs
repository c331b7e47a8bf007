//! `failover`: after the workload runs, 10% of the nodes that run replicas
//! crash (their pods vanish with them) within one second; measures crash to
//! replacement running per lost replica, and moved / ideal. Then one node
//! restarts with its pods still running and must adopt them (no duplicate).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use super::cluster::{PeerCluster, moved_ratio, secs};
use super::{PeerOptions, apply_workload, report};
use crate::queue::Micros;
use crate::report::PeerReport;

pub fn run(o: &PeerOptions) -> PeerReport {
    use rand::RngExt;
    let mut c = PeerCluster::new(o);
    c.form(o.peers);
    c.run_until(secs(2));
    apply_workload(&mut c, o, secs(1));
    let first = c.settle(secs(1) / 2, secs(90));
    let before_truth = c.placement_truth();
    let before = c.reference_assignment();

    let mut busy: Vec<usize> = c
        .alive_slots()
        .into_iter()
        .filter(|&s| {
            c.world
                .node(s)
                .is_some_and(|n| n.runtime.running().count() > 0)
        })
        .collect();
    busy.shuffle(&mut c.world.rng);
    let victims = (o.peers / 10)
        .clamp(1, busy.len().max(1))
        .min(o.peers.saturating_sub(2));
    let t0 = c.now();
    let mut times: Vec<(Micros, usize)> = busy[..victims.min(busy.len())]
        .iter()
        .map(|&s| (t0 + c.world.rng.random_range(0..secs(1)), s))
        .collect();
    times.sort_unstable();
    for &(at, slot) in &times {
        c.run_until(at);
        c.crash(slot, false);
    }
    let second = c.settle(secs(1) / 2, c.now() + secs(90));
    let ratio = moved_ratio(
        &before_truth,
        &c.placement_truth(),
        &before,
        &c.reference_assignment(),
    );

    // A restart whose pods outlived the peer process: adopted, not doubled.
    let adopted = c.alive_slots().into_iter().find(|&s| {
        c.world
            .node(s)
            .is_some_and(|n| n.runtime.running().count() > 0)
    });
    let mut adopted_pods = 0;
    if let Some(slot) = adopted {
        let kept = c.crash(slot, true);
        adopted_pods = kept.as_ref().map_or(0, |k| k.running().count());
        c.run_until(c.now() + secs(1) / 5);
        c.restart(slot, kept);
    }
    let third = c.settle(secs(1) / 2, c.now() + secs(90));

    let mut extra = BTreeMap::new();
    extra.insert("crashed".into(), times.len() as f64);
    extra.insert("adopted_pods".into(), adopted_pods as f64);
    for (k, t) in [
        ("settled_ms", first),
        ("refilled_ms", second),
        ("readopted_ms", third),
    ] {
        extra.insert(k.into(), t.map_or(-1.0, |t| (t / 1000) as f64));
    }
    report(&c, "failover", o.peers, ratio, extra)
}
