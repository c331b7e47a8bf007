//! `scale`: one RC of 2 replicas is scaled to `replicas` at a random peer,
//! then back to 2; measures the scale-up to all replicas running.

use std::collections::BTreeMap;

use shoal::peer::Command;

use super::cluster::{PeerCluster, secs};
use super::{PeerOptions, report, workload_rc};
use crate::report::PeerReport;

pub fn run(o: &PeerOptions) -> PeerReport {
    let mut c = PeerCluster::new(o);
    c.form(o.peers);
    c.run_until(secs(2));
    if let Some(slot) = c.random_alive() {
        c.apply(slot, workload_rc(0, 2));
    }
    let small = c.settle(secs(1) / 2, secs(60));
    let mut extra = BTreeMap::new();
    extra.insert(
        "settled_2_ms".into(),
        small.map_or(-1.0, |t| (t / 1000) as f64),
    );
    if let Some(slot) = c.random_alive() {
        let _ = c.command(
            slot,
            Command::Scale {
                name: workload_rc(0, 0).name,
                replicas: o.replicas,
            },
        );
    }
    let t0 = c.now();
    let up = c.settle(secs(1) / 2, t0 + secs(120));
    extra.insert(
        "scaled_up_ms".into(),
        up.map_or(-1.0, |t| ((t - t0) / 1000) as f64),
    );
    let up_ok = c.violations().is_empty();
    if let Some(slot) = c.random_alive() {
        let _ = c.command(
            slot,
            Command::Scale {
                name: workload_rc(0, 0).name,
                replicas: 2,
            },
        );
    }
    let t1 = c.now();
    let down = c.settle(secs(1) / 2, t1 + secs(120));
    extra.insert(
        "scaled_down_ms".into(),
        down.map_or(-1.0, |t| ((t - t1) / 1000) as f64),
    );
    extra.insert("scaled_up_converged".into(), f64::from(u8::from(up_ok)));
    let mut r = report(&c, "scale", o.peers, None, extra);
    if !up_ok {
        r.rc.rc_converged = false;
        r.base.converged = false;
        r.base.violations.push("scale-up never settled".into());
    }
    r
}
