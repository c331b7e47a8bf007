//! The pure core's counters, which `/metrics` exports: on three peers on a
//! virtual clock, SWIM probes and anti-entropy are counted as they happen,
//! sync messages by kind on both ends, and a crashed peer is suspected and
//! counted down by the survivors.

use std::net::SocketAddr;
use std::time::Duration;

use shoal::peer::testing::Cluster;
use shoal::peer::{Peer, PeerConfig};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::spec::Resources;

const START: Duration = Duration::from_secs(1_700_000_000);

fn addr(i: usize) -> SocketAddr {
    format!("127.0.0.1:{}", 17_700 + i).parse().unwrap()
}

fn config(i: usize) -> PeerConfig {
    let room = Resources {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };
    let info = NodeInfo {
        peer_addr: addr(i).to_string(),
        ..NodeInfo::healthy(format!("node-{i}"), room)
    };
    PeerConfig::new(NodeId(i as u64 + 1), addr(i), info)
}

fn three_peers() -> Cluster {
    let mut cluster = Cluster::new(START, Duration::from_millis(1));
    for i in 0..3 {
        let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
        cluster.add(Peer::new(config(i)), &seeds);
    }
    cluster
}

#[test]
fn probes_anti_entropy_and_sync_kinds_are_counted_on_both_ends() {
    let mut cluster = three_peers();
    cluster.run_for(Duration::from_secs(10));
    let mut sent = [0u64; 3];
    let mut received = [0u64; 3];
    for peer in &cluster.peers {
        let (stats, swim) = (peer.stats(), peer.membership_stats());
        assert!(swim.probes >= 3, "{swim:?}");
        assert!(stats.anti_entropy_rounds >= 5, "{stats:?}");
        assert_eq!(swim.downs, 0, "nobody went down: {swim:?}");
        for (k, (_, count)) in stats.sync_sent.by_kind().iter().enumerate() {
            sent[k] += count.messages;
        }
        for (k, (_, count)) in stats.sync_received.by_kind().iter().enumerate() {
            received[k] += count.messages;
        }
        assert_eq!(
            stats.sync_sent.hello.messages,
            stats.anti_entropy_rounds + stats.holder_asks,
            "a round opens with one hello, and so does an ask while a pod drains"
        );
    }
    // No loss in this network: every message sent arrives (bar the last
    // millisecond's, still in flight).
    for k in 0..3 {
        assert!(sent[k] > 0, "kind {k} never sent");
        assert!(
            received[k] + 3 >= sent[k] && received[k] <= sent[k],
            "kind {k}: {sent:?} {received:?}"
        );
    }
}

#[test]
fn a_crashed_peer_is_suspected_and_counted_down_by_the_survivors() {
    let mut cluster = three_peers();
    cluster.run_for(Duration::from_secs(5));
    cluster.crash(2);
    cluster.run_for(Duration::from_secs(30));
    let survivors = &cluster.peers[..2];
    let suspicions: u64 = survivors
        .iter()
        .map(|p| p.membership_stats().suspicions)
        .sum();
    assert!(suspicions >= 1, "a survivor's probe must have failed");
    for peer in survivors {
        assert!(
            peer.membership_stats().downs >= 1,
            "{:?}",
            peer.membership_stats()
        );
    }
}
