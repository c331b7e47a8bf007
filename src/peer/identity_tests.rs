//! Signed node records between real peer cores (real ed25519): a record
//! of node B relayed with a changed body is rejected and not passed on,
//! the genuine one is taken, and a peer claiming B's id with another key
//! changes nothing the others hold about B; a copy of a held record is
//! not checked again, a copy with any other byte is.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_crdt_state::Delta;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::{NodeRecord, ObservedDelta};
use shoal_crdt_state::wire;

use super::signing::NodeKeys;
use super::sync_message::{SyncEnvelope, SyncMessage};
use super::testing::{Cluster, Recorded};
use super::tests::{START, addr, config};
use super::{Peer, PeerConfig};

/// Three peers (node ids 1, 2, 3) that all hold each other's records.
pub(super) fn three_peers() -> Cluster {
    let mut cluster = Cluster::new(START, Duration::from_millis(1));
    for i in 0..3 {
        let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
        cluster.add(Peer::new(config(i)), &seeds);
    }
    cluster.run_for(Duration::from_secs(5));
    for peer in &cluster.peers {
        assert_eq!(peer.state().observed.len(), 3, "every record everywhere");
    }
    cluster
}

/// A sync push of `record` as node `node`'s, sent by peer `relayer`.
fn relay(cluster: &mut Cluster, relayer: usize, to: usize, node: NodeId, record: NodeRecord) {
    let envelope = SyncEnvelope {
        from: cluster.peers[relayer].node(),
        reply_to: addr(relayer),
        message: SyncMessage::Push {
            delta: Delta::from(ObservedDelta {
                nodes: [(node, record)].into(),
            }),
            digest: None,
            piece: None,
        },
    };
    let bytes = wire::encode(&envelope).unwrap();
    let from = addr(relayer);
    cluster.with_peer(to, |peer, now| peer.handle_sync(now, from, &bytes));
}

#[test]
fn a_record_of_node_b_relayed_with_a_changed_body_is_rejected_and_not_passed_on() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let genuine = cluster.peers[0].state().observed.get(b).unwrap().clone();
    // Peer 0 relays B's record to peer 2 with a newer version and another
    // address: what a member would do to steer traffic for B to itself.
    let mut altered = genuine.clone();
    altered.version += 10;
    altered.info.peer_addr = "127.0.0.1:1".to_owned();
    relay(&mut cluster, 0, 2, b, altered);
    let stats = cluster.peers[2].stats();
    assert_eq!(stats.records_forged, 1);
    assert_eq!(cluster.peers[2].state().observed.get(b), Some(&genuine));
    cluster.run_for(Duration::from_secs(3));
    for peer in &cluster.peers {
        let held = peer.state().observed.get(b).unwrap();
        assert_ne!(held.info.peer_addr, "127.0.0.1:1", "at {}", peer.node());
    }
    // The same record, unaltered, relayed by the same peer, is taken.
    let current = cluster.peers[1].state().observed.get(b).unwrap().clone();
    relay(&mut cluster, 0, 2, b, current.clone());
    assert_eq!(cluster.peers[2].stats().records_forged, 1);
    assert_eq!(cluster.peers[2].state().observed.get(b), Some(&current));
}

#[test]
fn a_peer_claiming_an_existing_node_id_with_another_key_changes_nothing() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let genuine_name = cluster.peers[0]
        .state()
        .observed
        .get(b)
        .unwrap()
        .info
        .name
        .clone();
    // Node id of peer 1, its own key and name, at a fourth address.
    let mut forger: PeerConfig = config(3);
    forger.node = b;
    forger.keys = NodeKeys::from_seed(&[0xf0; 32]);
    forger.info.name = "forger".to_owned();
    cluster.add(Peer::new(forger), &[addr(0)]);
    cluster.run_for(Duration::from_secs(10));
    for i in [0, 2] {
        let peer = &cluster.peers[i];
        let record = peer.state().observed.get(b).unwrap();
        assert_eq!(record.info.name, genuine_name, "at peer {i}");
        assert_eq!(
            peer.state().desired.nodes().bound_key(b).map(|k| k.key),
            Some(shoal_crdt_state::identity::RecordSigner::public_key(
                &NodeKeys::insecure_for_tests(b)
            )),
            "at peer {i}"
        );
    }
    // The forger's records number below the genuine node's (dropped
    // unchecked); the forger, holding its own binding, rejects the
    // genuine node's records as forged.
    assert!(cluster.peers[3].stats().records_forged > 0);
    let refused: u64 = [0, 2]
        .iter()
        .map(|&i| cluster.peers[i].stats().bindings_refused)
        .sum();
    assert!(refused > 0, "the forger's binding was refused: b is live");
    // Each side refuses the other's binding of the id live to it: the
    // forger learns of the clash from the transport (every handshake
    // refused), not from the replicated binding.
    assert!(cluster.peers[3].stats().bindings_refused > 0);
    assert!(cluster.peers[3].identity_conflict.is_none());
}

#[test]
fn a_copy_of_a_held_record_is_not_checked_again_but_any_other_bytes_are() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let held = cluster.peers[2].state().observed.get(b).unwrap().clone();
    let before = cluster.peers[2].stats();
    // The very record peer 2 holds: merging it changes nothing, so its
    // signature (checked when it was stored) is not checked again.
    relay(&mut cluster, 0, 2, b, held.clone());
    let after_copy = cluster.peers[2].stats();
    assert_eq!(
        after_copy.records_already_held,
        before.records_already_held + 1
    );
    assert_eq!(after_copy.records_verified, before.records_verified);
    // The same body under another signature is checked, and rejected.
    let mut resigned = held.clone();
    resigned.signature.0[0] ^= 1;
    relay(&mut cluster, 0, 2, b, resigned);
    let after_resigned = cluster.peers[2].stats();
    assert_eq!(
        after_resigned.records_verified,
        after_copy.records_verified + 1
    );
    assert_eq!(after_resigned.records_forged, after_copy.records_forged + 1);
    assert_eq!(cluster.peers[2].state().observed.get(b), Some(&held));
    // An older version, forged: a merge would keep the held one anyway,
    // so it is dropped unchecked and changes nothing.
    let mut older = held.clone();
    older.version -= 1;
    older.info.peer_addr = "127.0.0.1:1".to_owned();
    relay(&mut cluster, 0, 2, b, older);
    let after_older = cluster.peers[2].stats();
    assert_eq!(
        after_older.records_verified,
        after_resigned.records_verified
    );
    assert_eq!(
        after_older.records_already_held,
        after_copy.records_already_held + 1
    );
    assert_eq!(cluster.peers[2].state().observed.get(b), Some(&held));
}

#[test]
fn messages_naming_another_sender_than_their_connection_are_dropped() {
    let mut cluster = three_peers();
    let (a, b) = (cluster.peers[0].node(), cluster.peers[1].node());
    // A SWIM packet peer 0 sent, as it left peer 0.
    cluster.recorded = Some(Vec::new());
    cluster.run_for(Duration::from_secs(2));
    let packet = cluster
        .recorded
        .take()
        .unwrap()
        .into_iter()
        .find_map(|sent| match sent {
            Recorded::Datagram(bytes) if shoal_gossip::datagram_sender(&bytes) == Some(a) => {
                Some(bytes)
            }
            _ => None,
        })
        .expect("peer 0 sent a SWIM packet");
    let from = addr(0);
    let before = cluster.peers[2].stats();
    // Arriving on a connection that authenticated node b: dropped.
    cluster.with_peer(2, |peer, now| {
        peer.handle_datagram_from(now, from, Some(b), &packet)
    });
    let after = cluster.peers[2].stats();
    assert_eq!(after.impersonations, before.impersonations + 1);
    assert_eq!(after.rejected_datagrams, before.rejected_datagrams + 1);
    // On node a's own connection: taken.
    cluster.with_peer(2, |peer, now| {
        peer.handle_datagram_from(now, from, Some(a), &packet)
    });
    assert_eq!(
        cluster.peers[2].stats().impersonations,
        after.impersonations
    );
    assert_eq!(
        cluster.peers[2].stats().rejected_datagrams,
        after.rejected_datagrams
    );

    // A sync message whose envelope names node a, on node b's connection:
    // dropped before anything in it is merged, even a genuine record.
    let mut newer = cluster.peers[0].state().observed.get(a).unwrap().clone();
    newer.version += 1;
    let envelope = SyncEnvelope {
        from: a,
        reply_to: addr(0),
        message: SyncMessage::Push {
            delta: Delta::from(ObservedDelta {
                nodes: [(a, newer)].into(),
            }),
            digest: None,
            piece: None,
        },
    };
    let bytes = wire::encode(&envelope).unwrap();
    let held = cluster.peers[2].state().observed.get(a).cloned();
    cluster.with_peer(2, |peer, now| {
        peer.handle_sync_from(now, from, Some(b), &bytes)
    });
    let stats = cluster.peers[2].stats();
    assert_eq!(stats.impersonations, after.impersonations + 1);
    assert_eq!(stats.records_forged, 0, "dropped before any record check");
    assert_eq!(cluster.peers[2].state().observed.get(a).cloned(), held);
    // Relayed by node b on its own connection, the records in it are
    // anyone's: each is checked against its node's key (this one's
    // signature no longer matches its changed version).
    let relayed = SyncEnvelope {
        from: b,
        ..envelope
    };
    let bytes = wire::encode(&relayed).unwrap();
    cluster.with_peer(2, |peer, now| {
        peer.handle_sync_from(now, addr(1), Some(b), &bytes)
    });
    let stats = cluster.peers[2].stats();
    assert_eq!(stats.impersonations, after.impersonations + 1);
    assert_eq!(stats.records_forged, 1);
}

#[test]
fn the_node_decision_count_moves_only_with_node_decisions() {
    let mut cluster = three_peers();
    let changes = |c: &Cluster| {
        let peer = &c.peers[2];
        (peer.state_changes(), peer.node_decision_changes())
    };
    let (state_before, nodes_before) = changes(&cluster);
    cluster
        .command(0, super::Command::Apply(super::tests::hello(1)))
        .unwrap();
    cluster.run_for(Duration::from_secs(2));
    let (state_after, nodes_after) = changes(&cluster);
    assert!(state_after > state_before, "the RC arrived");
    assert_eq!(nodes_after, nodes_before, "no node decision changed");

    let node = cluster.peers[1].node();
    cluster
        .command(0, super::Command::Cordon { node, on: true })
        .unwrap();
    cluster.run_for(Duration::from_secs(2));
    assert!(
        changes(&cluster).1 > nodes_after,
        "a cordon is a node decision"
    );
}
