//! `join`: peers arrive one by one, each through one random existing member.

use std::collections::BTreeMap;

use super::Options;
use super::cluster::{MS, SECOND};
use crate::report::Report;

/// Gap between two arrivals.
const ARRIVAL_GAP: u64 = 20 * MS;

pub fn run(o: &Options) -> Report {
    let mut c = o.cluster();
    for _ in 0..o.peers {
        c.join_new();
        let next = c.now() + ARRIVAL_GAP;
        c.run_until(next);
    }
    let last_join = c.now();
    let settled = c.settle(500 * MS, last_join + 30 * SECOND);
    let mut extra = BTreeMap::new();
    if let Some(t) = settled {
        extra.insert(
            "settle_after_last_join_ms".into(),
            ((t - last_join) / MS) as f64,
        );
    }
    c.report("join", o.peers, extra)
}
