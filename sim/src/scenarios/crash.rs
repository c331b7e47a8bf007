//! `crash`: a formed cluster loses 10% of its peers at random moments;
//! 60 s simulated in all.

use std::collections::BTreeMap;

use rand::RngExt;
use rand::seq::SliceRandom;

use super::Options;
use super::cluster::SECOND;
use crate::report::Report;

pub fn run(o: &Options) -> Report {
    let mut c = o.cluster();
    c.form(o.peers);
    c.run_until(5 * SECOND);
    let mut slots = c.alive_slots();
    slots.shuffle(&mut c.world.rng);
    let victims = (o.peers / 10).max(1).min(o.peers.saturating_sub(2));
    let mut times: Vec<(u64, usize)> = slots[..victims]
        .iter()
        .map(|s| (c.world.rng.random_range(5 * SECOND..15 * SECOND), *s))
        .collect();
    times.sort_unstable();
    for (at, slot) in times {
        c.run_until(at);
        c.crash(slot);
    }
    c.run_until(60 * SECOND);
    let settled = c.settle(SECOND, 60 * SECOND);
    let mut extra = BTreeMap::new();
    extra.insert("crashed".into(), victims as f64);
    extra.insert("settled".into(), f64::from(u8::from(settled.is_some())));
    c.report("crash", o.peers, extra)
}
