//! One scrape: set what is read rather than counted, then render.
//!
//! Counters the pure core and the transport keep as plain numbers are
//! copied in with `absolute` (they are monotonic since the process
//! started, as Prometheus expects of a counter); gauges are set from the
//! snapshot the scrape reads; the facade's own series (API requests,
//! image transfers, latencies) are already in the registry.

use std::collections::{BTreeMap, BTreeSet};

use metrics::{counter, gauge};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodPhase;
use shoal_gossip::quic::{QuicTransport, TransportStats};
use shoal_gossip::{MemberState, MembershipStats};

use super::catalog::*;
use super::process;
use crate::peer::{Peer, PeerStats};
use crate::shell::api::views;
use crate::shell::handle::Snapshot;

/// The driver's counters at one instant (the answer to
/// [`Request::Stats`](crate::shell::handle::Request::Stats)).
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreStats {
    pub peer: PeerStats,
    pub membership: MembershipStats,
    pub transport: TransportStats,
    /// Live QUIC connections.
    pub connections: usize,
}

impl CoreStats {
    /// Read by the driver, which owns both.
    pub fn of(peer: &Peer, transport: &QuicTransport) -> CoreStats {
        CoreStats {
            peer: peer.stats(),
            membership: peer.membership_stats(),
            transport: transport.stats(),
            connections: transport.connected_peers().len(),
        }
    }
}

/// Sets every scraped value and renders the registry in Prometheus' text
/// format. Walks the whole snapshot: call it off the runtime's workers.
pub fn render(core: &CoreStats, snapshot: &Snapshot) -> String {
    let handle = super::install();
    export_core(core);
    export_snapshot(snapshot);
    let cpu = process::export();
    let mut text = handle.render();
    text.push('\n');
    text.push_str(&cpu);
    text
}

fn export_core(core: &CoreStats) {
    let m = &core.membership;
    counter!(SWIM_PROBES).absolute(m.probes);
    counter!(SWIM_SUSPICIONS).absolute(m.suspicions);
    counter!(SWIM_REFUTATIONS).absolute(m.refutations);
    counter!(MEMBER_DOWNS).absolute(m.downs);

    let p = &core.peer;
    for (direction, counts) in [("sent", p.sync_sent), ("received", p.sync_received)] {
        for (kind, count) in counts.by_kind() {
            let labels = [("direction", direction), ("kind", kind)];
            counter!(SYNC_MESSAGES, &labels).absolute(count.messages);
            counter!(SYNC_BYTES, &labels).absolute(count.bytes);
        }
    }
    counter!(SYNC_ROUNDS).absolute(p.anti_entropy_rounds);
    counter!(SYNC_HOLDER_ASKS).absolute(p.holder_asks);
    counter!(SYNC_MERGES).absolute(p.merges);
    counter!(MESSAGES_REJECTED, "kind" => "datagram").absolute(p.rejected_datagrams);
    counter!(MESSAGES_REJECTED, "kind" => "sync").absolute(p.rejected_sync);
    counter!(MESSAGES_REJECTED, "kind" => "broadcast").absolute(p.rejected_broadcasts);
    counter!(RECORDS_REJECTED, "reason" => "forged").absolute(p.records_forged);
    counter!(RECORDS_REJECTED, "reason" => "unbound").absolute(p.records_unbound);
    counter!(RECORDS_REJECTED, "reason" => "binding").absolute(p.bindings_refused);
    counter!(RECORDS_REJECTED, "reason" => "removal").absolute(p.removals_refused);
    counter!(RECORDS_REJECTED, "reason" => "impersonation").absolute(p.impersonations);
    counter!(POD_ACTIONS, "action" => "start").absolute(p.pod_starts);
    counter!(POD_ACTIONS, "action" => "stop").absolute(p.pod_stops);
    counter!(PLACEMENTS).absolute(p.placements);

    let t = &core.transport;
    gauge!(CONNECTIONS).set(core.connections as f64);
    counter!(CONNECTIONS_OPENED, "side" => "dialled").absolute(t.connections_opened);
    counter!(CONNECTIONS_OPENED, "side" => "accepted").absolute(t.connections_accepted);
    counter!(HANDSHAKE_FAILURES).absolute(t.handshake_failures);
    counter!(IDENTITY_REFUSALS).absolute(t.identity_refusals);
    counter!(DATAGRAMS, "direction" => "sent").absolute(t.datagrams_sent);
    counter!(DATAGRAMS, "direction" => "received").absolute(t.datagrams_received);
    counter!(DATAGRAM_BYTES, "direction" => "sent").absolute(t.datagram_bytes_sent);
    counter!(DATAGRAM_BYTES, "direction" => "received").absolute(t.datagram_bytes_received);
    counter!(DATAGRAMS_DROPPED, "reason" => "send").absolute(t.datagrams_dropped_send);
    counter!(DATAGRAMS_DROPPED, "reason" => "inbound_full").absolute(t.datagrams_dropped_recv);
    counter!(STREAMS_DROPPED, "reason" => "inbound").absolute(t.streams_dropped_recv);
    counter!(STREAM_BYTES, "direction" => "sent").absolute(t.stream_bytes_sent);
    counter!(STREAM_BYTES, "direction" => "received").absolute(t.stream_bytes_received);
    counter!(REQUESTS, "outcome" => "completed").absolute(t.requests_completed);
    counter!(REQUESTS, "outcome" => "failed").absolute(t.requests_failed);
}

fn export_snapshot(snapshot: &Snapshot) {
    let mut by_state: BTreeMap<&str, u64> = [("alive", 0), ("suspect", 0), ("down", 0)].into();
    for entry in &snapshot.members.members {
        let state = match entry.state {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        };
        *by_state.entry(state).or_default() += 1;
    }
    for (state, n) in by_state {
        gauge!(MEMBERS, "state" => state).set(n as f64);
    }

    let state = &snapshot.state;
    let pods = state.observed.pods().count();
    let records = [
        ("rcs", state.desired.live_rcs().count()),
        ("rc_records", state.desired.len()),
        ("services", state.desired.live_services().count()),
        ("nodes", state.observed.len()),
        ("pods", pods),
    ];
    for (kind, n) in records {
        gauge!(STATE_RECORDS, "kind" => kind).set(n as f64);
    }

    export_rcs(snapshot);

    let me = state.observed.get(snapshot.me);
    let reachable = me.is_some_and(|r| r.info.runtime_healthy);
    gauge!(ENGINE_REACHABLE).set(f64::from(u8::from(reachable)));
    let name = me.map_or_else(|| snapshot.me.to_string(), |r| r.info.name.clone());
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "node" => name).set(1.0);
}

/// What a scrape reports of one RC's pods.
#[derive(Default)]
struct RcPods {
    running: u32,
    ready: u32,
    restarts: u64,
}

/// Per RC: desired, running and ready (the counting rule of `get rc`, see
/// [`views`]), unplaced, and restarts of its pods on active nodes. One
/// pass over the pods: `views::rcs` walks them once per RC, too slow for
/// a scrape of 10,000 RCs.
fn export_rcs(snapshot: &Snapshot) {
    let mut unplaced: BTreeMap<&str, u64> = BTreeMap::new();
    for pod in snapshot.assignment.unplaced.keys() {
        *unplaced.entry(pod.rc.as_str()).or_default() += 1;
    }
    let active: BTreeSet<NodeId> = snapshot
        .state
        .observed
        .nodes()
        .map(|(node, _)| node)
        .filter(|&node| views::node_active(snapshot, node))
        .collect();
    let mut pods: BTreeMap<&str, RcPods> = BTreeMap::new();
    for (node, pod) in snapshot.state.observed.pods() {
        if !active.contains(&node) {
            continue;
        }
        let counts = pods.entry(pod.id.rc.as_str()).or_default();
        counts.restarts += u64::from(pod.restarts);
        if pod.phase == PodPhase::Running {
            counts.running += 1;
            counts.ready += u32::from(pod.ready);
        }
    }
    let none = RcPods::default();
    for rc in snapshot.state.desired.live_rcs() {
        let label = [("rc", rc.name.to_owned())];
        let counts = pods.get(rc.name).unwrap_or(&none);
        gauge!(RC_DESIRED, &label).set(f64::from(rc.replicas));
        gauge!(RC_RUNNING, &label).set(f64::from(counts.running));
        gauge!(RC_READY, &label).set(f64::from(counts.ready));
        let gone = unplaced.get(rc.name).copied().unwrap_or(0);
        gauge!(RC_UNPLACED, &label).set(gone as f64);
        gauge!(RC_RESTARTS, &label).set(counts.restarts as f64);
    }
}
