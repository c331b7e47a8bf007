//! `churn`: for 40 s, peers keep crashing, restarting (same node id, new
//! incarnation) and arriving; then the cluster must settle.

use std::collections::BTreeMap;

use rand::RngExt;

use super::Options;
use super::cluster::{MS, SECOND};
use crate::report::Report;

const CHURN_FOR: u64 = 40 * SECOND;

pub fn run(o: &Options) -> Report {
    let mut c = o.cluster();
    c.form(o.peers);
    c.run_until(3 * SECOND);
    // About a quarter of the cluster changes over the churn period.
    let steps = (o.peers / 4).max(4) as u64;
    let gap = CHURN_FOR / steps;
    let (mut crashes, mut restarts, mut arrivals) = (0u32, 0u32, 0u32);
    for _ in 0..steps {
        let next = c.now() + gap;
        c.run_until(next);
        let alive = c.alive_slots();
        let dead = c.dead_slots();
        let roll = c.world.rng.random_range(0..3u8);
        if roll == 0 && alive.len() > o.peers / 2 + 1 {
            let victim = alive[c.world.rng.random_range(0..alive.len())];
            c.crash(victim);
            crashes += 1;
        } else if roll == 1 && !dead.is_empty() {
            let back = dead[c.world.rng.random_range(0..dead.len())];
            c.restart(back);
            restarts += 1;
        } else {
            c.join_new();
            arrivals += 1;
        }
    }
    let end = c.now();
    let settled = c.settle(500 * MS, end + 30 * SECOND);
    let mut extra = BTreeMap::new();
    extra.insert("crashes".into(), f64::from(crashes));
    extra.insert("restarts".into(), f64::from(restarts));
    extra.insert("arrivals".into(), f64::from(arrivals));
    if let Some(t) = settled {
        extra.insert("settle_ms".into(), ((t - end) / MS) as f64);
    }
    c.report("churn", o.peers, extra)
}
