//! Issue #16 between real `shoal up` processes over real QUIC on loopback:
//! a member (a transport holding the join token, its own key, an unbound
//! node id) pushes to every peer a removal of the live node1 together with
//! a binding of its own key after that release, then a claim stamped just
//! before node1's binding. Every peer counts node1 live and refuses both:
//! node1 stays bound to its key, alive everywhere, with its replicas, and
//! no peer refuses its connections.
#![cfg(feature = "shell")]

mod cluster_support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cluster_support::{Cluster, wait_until};
use shoal::peer::signing::NodeKeys;
use shoal::peer::sync_message::{SyncEnvelope, SyncMessage};
use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::identity::{CONCURRENT_CLAIM_MS, KeyBinding, RecordSigner};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::node_decisions::NodeDecision;
use shoal_crdt_state::{Delta, DesiredDelta, register, wire};
use shoal_gossip::quic::{JoinToken, NodeKey, QuicConfig, QuicTransport};

/// Loopback subnet of this file (127.0.115.x).
const SUBNET: u8 = 115;
const IMAGE: &str = "shoal-test/hello:1.0";
const MEMBER: NodeId = NodeId(0x7e57_0000_0000_7a4e);
const MEMBER_SEED: [u8; 32] = [0x42; 32];

fn sum(cluster: &Cluster, series: &str) -> u64 {
    (0..3).map(|i| cluster.counter(i, series)).sum()
}

fn wall_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Sends `decision` about `node` to each of `to`, as the member.
fn push_as_member(token: &str, to: &[SocketAddr], node: NodeId, decision: NodeDecision) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let token: JoinToken = token.parse().unwrap();
        let listen: SocketAddr = format!("127.0.{SUBNET}.40:0").parse().unwrap();
        let mut config = QuicConfig::new(listen, token);
        config.node_key = Some(NodeKey {
            node: MEMBER,
            seed: MEMBER_SEED,
        });
        let (transport, _inbound) = QuicTransport::bind(config).unwrap();
        let envelope = SyncEnvelope {
            from: MEMBER,
            reply_to: listen,
            message: SyncMessage::Push {
                delta: Delta::from(DesiredDelta {
                    nodes: [(node, decision)].into(),
                    ..DesiredDelta::default()
                }),
                digest: None,
                piece: None,
            },
        };
        let bytes = Bytes::from(wire::encode(&envelope).unwrap());
        for addr in to {
            transport
                .push(*addr, bytes.clone())
                .await
                .expect("the peer takes a member's push");
        }
        // Let the pushes land before the connections close.
        tokio::time::sleep(Duration::from_secs(1)).await;
        transport.shutdown().await;
    });
}

#[test]
fn a_member_cannot_remove_and_rebind_a_live_node() {
    // Every node binds its key when it first joins, after this.
    let before_bindings = wall_ms();
    let mut cluster = Cluster::start(SUBNET, 3);
    cluster.wait_for_all_alive(3, Duration::from_secs(30));
    let all_bound = wall_ms();
    cluster.apply_and_wait_running("web", 3, IMAGE);
    let node1_pods = cluster.running_pods_on("web", "node1");
    let node1 = NodeId(u64::from_str_radix(&cluster.node_id(1), 16).unwrap());
    let peers: Vec<SocketAddr> = (0..3)
        .map(|i| cluster.peers[i].peer_addr().parse().unwrap())
        .collect();
    let member_key = NodeKeys::from_seed(&MEMBER_SEED).public_key();

    // A removal of node1 and the member's key bound after it.
    let release = Hlc::new(wall_ms(), 0, MEMBER);
    let takeover = NodeDecision {
        removed: Some(register::write(true, release)),
        forgets_through: Some(1_000_000),
        key: Some(KeyBinding {
            key: member_key,
            stamp: Hlc::new(wall_ms(), 1, MEMBER),
            after: Some(release),
        }),
        ..NodeDecision::default()
    };
    push_as_member(&cluster.token, &peers, node1, takeover);
    let binding = "shoal_records_rejected_total{reason=\"binding\"}";
    let removal = "shoal_records_rejected_total{reason=\"removal\"}";
    // Bindings: refused at all three (node1 too: its id is live, it is
    // it). Removals: at peers 0 and 2; node1 takes its own in, and back.
    // The forgetting rides with the removal: refused too, unless node1's
    // record re-registered above it got there first.
    assert!(
        wait_until(Duration::from_secs(20), || sum(&cluster, binding) >= 3
            && sum(&cluster, removal) >= 2),
        "refusals: binding {}, removal {}\n{}",
        sum(&cluster, binding),
        sum(&cluster, removal),
        cluster.every_log_tail()
    );

    // The race of first starts: stamped a second before the cluster
    // started, so before node1's binding (made between then and
    // `all_bound`) and within CONCURRENT_CLAIM_MS of it: only the
    // live-holder check refuses it; let in, it would win the join.
    assert!(
        all_bound - before_bindings + 1_000 < CONCURRENT_CLAIM_MS,
        "the cluster took too long to come up for this claim to be a race"
    );
    let race = NodeDecision {
        key: Some(KeyBinding {
            key: member_key,
            stamp: Hlc::new(before_bindings - 1_000, 0, MEMBER),
            after: None,
        }),
        ..NodeDecision::default()
    };
    let before = sum(&cluster, binding);
    push_as_member(&cluster.token, &peers, node1, race);
    assert!(
        wait_until(Duration::from_secs(20), || sum(&cluster, binding)
            >= before + 3),
        "binding refusals: {} (was {before})",
        sum(&cluster, binding)
    );

    // Long enough for anything taken to spread and close node1's
    // connections.
    std::thread::sleep(Duration::from_secs(8));
    for i in 0..3 {
        assert_eq!(cluster.count_nodes(i, "Alive"), 3, "peer {i}");
        let log = std::fs::read_to_string(&cluster.peers[i].log).unwrap_or_default();
        if i != 1 {
            assert!(
                log.contains("refused a removal of node"),
                "peer {i}:\n{}",
                cluster.log_tail(i)
            );
        }
        assert!(
            log.contains("refused a key binding for node"),
            "peer {i}:\n{}",
            cluster.log_tail(i)
        );
    }
    assert_eq!(
        sum(&cluster, "shoal_transport_identity_refusals_total"),
        0,
        "node1 was refused somewhere:\n{}",
        cluster.every_log_tail()
    );
    assert!(
        cluster.peers[1].is_running(),
        "node1 keeps running: {}",
        cluster.log_tail(1)
    );
    assert_eq!(
        cluster.running_pods_on("web", "node1"),
        node1_pods,
        "node1 keeps its replicas"
    );
    cluster.terminate_all(&[0, 1, 2]);
}
