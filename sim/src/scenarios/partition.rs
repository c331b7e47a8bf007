//! `partition-heal`: split into two halves, each declares the other down;
//! heal after T and measure how long until every view is whole again.

use std::collections::BTreeMap;

use super::Options;
use super::cluster::{MS, SECOND};
use crate::report::Report;

/// How long the halves stay apart: long enough to declare each other down.
pub const PARTITION_FOR: u64 = 20 * SECOND;

pub fn run(o: &Options) -> Report {
    let mut c = o.cluster();
    c.form(o.peers);
    c.run_until(3 * SECOND);
    let groups: Vec<_> = c
        .alive_slots()
        .into_iter()
        .map(|s| (c.world.addr(s), u32::from(s % 2 == 1)))
        .collect();
    c.world.net.partition(groups);
    c.tracker.counting = false;
    let heal_at = c.now() + PARTITION_FOR;
    c.run_until(heal_at);
    let split_views = c.violations().len();
    c.world.net.heal();
    let settled = c.settle(250 * MS, heal_at + 60 * SECOND);
    let mut extra = BTreeMap::new();
    extra.insert("views_split_before_heal".into(), split_views as f64);
    if let Some(t) = settled {
        extra.insert("heal_ms".into(), ((t - heal_at) / MS) as f64);
    }
    c.report("partition-heal", o.peers, extra)
}
