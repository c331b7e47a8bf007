//! `apply`: a formed cluster receives `rcs` RCs of `replicas` each, every
//! one applied at a random peer within one second; measures the time from
//! each apply to all of its replicas running.

use std::collections::BTreeMap;

use super::cluster::{PeerCluster, secs};
use super::{PeerOptions, apply_workload, report};
use crate::report::PeerReport;

pub fn run(o: &PeerOptions) -> PeerReport {
    let mut c = PeerCluster::new(o);
    c.form(o.peers);
    c.run_until(secs(2));
    apply_workload(&mut c, o, secs(1));
    let settled = c.settle(secs(1) / 2, secs(90));
    let mut extra = BTreeMap::new();
    extra.insert(
        "settled_ms".into(),
        settled.map_or(-1.0, |t| (t / 1000) as f64),
    );
    report(&c, "apply", o.peers, None, extra)
}
