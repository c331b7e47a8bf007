//! `host-port`: an RC bound to host port 18080 runs one replica on every
//! node; a second RC asking for the same port is applied. The newcomer
//! must wait unplaced, with the same reason on every peer, while no replica
//! of the first is stopped or moved (past the handover bound); once the
//! first RC is deleted and its pods are gone, the newcomer starts.

use std::collections::{BTreeMap, BTreeSet};

use shoal::peer::Command;
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{PortSpec, Protocol, RcSpec};

use super::cluster::{PeerCluster, secs};
use super::{PeerOptions, report, workload_rc};
use crate::report::PeerReport;

const PORT: u16 = 18080;

fn on_port(mut spec: RcSpec) -> RcSpec {
    spec.template.containers[0].ports.push(PortSpec {
        container_port: 80,
        host_port: Some(PORT),
        protocol: Protocol::Tcp,
        name: None,
    });
    spec
}

/// Sum of one counter over the live peers.
fn total(c: &PeerCluster, f: impl Fn(&shoal::peer::PeerStats) -> u64) -> u64 {
    c.alive_slots()
        .into_iter()
        .filter_map(|s| c.world.node(s))
        .map(|n| f(&n.peer.stats()))
        .sum()
}

pub fn run(o: &PeerOptions) -> PeerReport {
    let mut c = PeerCluster::new(o);
    c.form(o.peers);
    c.run_until(secs(2));
    let holder = on_port(workload_rc(0, o.peers as u32));
    let newcomer = on_port(workload_rc(1, 1));
    let mut extra = BTreeMap::new();
    let mut problems = Vec::new();

    if let Some(slot) = c.random_alive() {
        c.apply(slot, holder.clone());
    }
    let settled = c.settle(secs(1) / 2, secs(60));
    extra.insert(
        "holder_settled_ms".into(),
        settled.map_or(-1.0, |t| (t / 1000) as f64),
    );
    let before: BTreeMap<PodId, usize> = c
        .placement_truth()
        .into_iter()
        .filter(|(p, _)| p.rc == holder.name)
        .collect();
    let stops_before = total(&c, |s| s.pod_stops);
    let starts_before = total(&c, |s| s.pod_starts);
    let placements_before = total(&c, |s| s.placements);

    if let Some(slot) = c.random_alive() {
        c.apply(slot, newcomer.clone());
    }
    // Twice the handover bound: a move would have completed by now.
    c.run_until(c.now() + secs(60));
    let after = c.placement_truth();
    let moved = before
        .iter()
        .filter(|(p, s)| after.get(*p) != Some(*s))
        .count();
    let b0 = PodId {
        rc: newcomer.name.clone(),
        index: 0,
    };
    let reasons: BTreeSet<String> = c
        .alive_slots()
        .into_iter()
        .filter_map(|s| c.world.node(s))
        .map(|n| {
            n.peer
                .assignment()
                .unplaced
                .get(&b0)
                .map_or_else(|| "placed".to_string(), ToString::to_string)
        })
        .collect();
    let expected = format!(
        "host port conflict (port {PORT}/TCP is in use by {}-0",
        holder.name
    );
    extra.insert("holder_moved".into(), moved as f64);
    extra.insert(
        "holder_stops".into(),
        (total(&c, |s| s.pod_stops) - stops_before) as f64,
    );
    extra.insert(
        "newcomer_starts".into(),
        (total(&c, |s| s.pod_starts) - starts_before) as f64,
    );
    extra.insert(
        "placements_per_peer_while_waiting".into(),
        (total(&c, |s| s.placements) - placements_before) as f64 / o.peers.max(1) as f64,
    );
    let one_reason = reasons.len() == 1 && reasons.iter().all(|r| r.contains(&expected));
    extra.insert(
        "newcomer_unplaced_alike".into(),
        f64::from(u8::from(one_reason)),
    );
    if !one_reason {
        problems.push(format!("newcomer's reasons across peers: {reasons:?}"));
    }

    if let Some(slot) = c.random_alive() {
        let _ = c.command(
            slot,
            Command::Delete {
                name: holder.name.clone(),
            },
        );
    }
    let t0 = c.now();
    let started = c.settle_until(secs(1) / 2, t0 + secs(60), |c| {
        c.running_counts().get(&b0) == Some(&1)
    });
    extra.insert(
        "newcomer_running_after_delete_ms".into(),
        started.map_or(-1.0, |t| ((t - t0) / 1000) as f64),
    );
    if started.is_none() {
        problems.push("the newcomer never started after the holder was deleted".into());
    }

    let mut r = report(&c, "host-port", o.peers, None, extra);
    if !problems.is_empty() {
        r.rc.rc_converged = false;
        r.base.converged = false;
        r.base.violations.extend(problems);
    }
    r
}
