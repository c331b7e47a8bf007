//! A member cannot pose as another node at the transport: with node keys,
//! each side of a connection checks the node id the other's certificate
//! names against the key bindings, and what arrives is attributed to the
//! authenticated id.
#![cfg(feature = "quic")]

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ring::signature::{Ed25519KeyPair, KeyPair};
use shoal_crdt_state::identity::PublicKey;
use shoal_crdt_state::node::NodeId;
use shoal_gossip::quic::{Inbound, JoinToken, KeyBindings, NodeKey, QuicConfig, QuicTransport};
use tokio::time::timeout;

type Book = Arc<RwLock<HashMap<NodeId, PublicKey>>>;

fn public_key(seed: [u8; 32]) -> PublicKey {
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    PublicKey(pair.public_key().as_ref().try_into().unwrap())
}

/// A transport on 127.0.112.`host` running as `node` with key `seed`,
/// checking peers against `book`.
fn node(host: u8, node: u64, seed: [u8; 32], book: &Book) -> (QuicTransport, Inbound) {
    let token = JoinToken::from_seed([3; 32]);
    let mut config = QuicConfig::new(format!("127.0.112.{host}:0").parse().unwrap(), token);
    config.connect_timeout = Duration::from_secs(2);
    config.node_key = Some(NodeKey {
        node: NodeId(node),
        seed,
    });
    let book = book.clone();
    config.key_bindings = Some(KeyBindings(Arc::new(move |id| {
        book.read().unwrap().get(&id).copied()
    })));
    QuicTransport::bind(config).unwrap()
}

/// The first datagram `to` gets within a second, after clearing its queue.
async fn ping(from: &QuicTransport, to: &QuicTransport, inbound: &mut Inbound) -> Option<NodeId> {
    while inbound.datagrams.try_recv().is_ok() {}
    let _ = from.send_datagram(to.local_addr(), Bytes::from_static(b"ping"));
    let (_, node, bytes) = timeout(Duration::from_secs(3), inbound.datagrams.recv())
        .await
        .ok()??;
    assert_eq!(bytes, "ping");
    node
}

#[tokio::test]
async fn a_node_id_bound_to_another_key_is_refused_on_both_sides() {
    let book: Book = Arc::default();
    book.write().unwrap().insert(NodeId(1), public_key([1; 32]));
    let (real, mut real_in) = node(1, 1, [1; 32], &book);
    let (other, mut other_in) = node(2, 2, [2; 32], &book);
    // An unbound id (node 2, joining) is accepted, and what it sends is
    // attributed to the id its certificate names; and the other way round.
    assert_eq!(ping(&other, &real, &mut real_in).await, Some(NodeId(2)));
    assert_eq!(ping(&real, &other, &mut other_in).await, Some(NodeId(1)));

    // A member holding the token claims node 1 with its own key.
    let (poser, mut poser_in) = node(3, 1, [9; 32], &book);
    assert_eq!(ping(&poser, &real, &mut real_in).await, None);
    assert_eq!(ping(&poser, &other, &mut other_in).await, None);
    // Dialled by others, it is refused as a server too.
    assert_eq!(ping(&other, &poser, &mut poser_in).await, None);
    let refusals = |t: &QuicTransport| t.stats().identity_refusals;
    assert!(refusals(&real) >= 1, "{:?}", real.stats());
    assert!(refusals(&other) >= 2, "{:?}", other.stats());
    let why = other.dial_failure(poser.local_addr()).unwrap_or_default();
    assert!(why.contains("is bound to another key"), "{why}");

    // Still fine between the real nodes.
    assert_eq!(ping(&real, &other, &mut other_in).await, Some(NodeId(1)));
    for t in [real, other, poser] {
        t.shutdown().await;
    }
}

#[tokio::test]
async fn a_live_connection_is_closed_when_its_node_id_is_bound_to_another_key() {
    let book: Book = Arc::default();
    let (real, mut real_in) = node(4, 1, [1; 32], &book);
    let (joiner, mut joiner_in) = node(5, 2, [2; 32], &book);
    assert_eq!(ping(&joiner, &real, &mut real_in).await, Some(NodeId(2)));
    assert_eq!(real.connected_peers(), vec![joiner.local_addr()]);

    // Rechecking with unchanged bindings leaves the connection alone.
    real.recheck_peers();
    assert_eq!(ping(&real, &joiner, &mut joiner_in).await, Some(NodeId(1)));

    // Node 2's id turns out bound to another key (the joiner was posing):
    // the connection it opened while unbound is closed, with the reason.
    book.write().unwrap().insert(NodeId(2), public_key([7; 32]));
    real.recheck_peers();
    let closed = async {
        while !real.connected_peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    timeout(Duration::from_secs(3), closed)
        .await
        .expect("the connection closes");
    let why = async {
        loop {
            if let Some(why) = joiner.dial_failure(real.local_addr()) {
                return why;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let why = timeout(Duration::from_secs(3), why).await.unwrap();
    assert!(why.contains("is bound to another key"), "{why}");
    assert_eq!(ping(&joiner, &real, &mut real_in).await, None);
    assert!(real.stats().identity_refusals >= 1, "{:?}", real.stats());
    for t in [real, joiner] {
        t.shutdown().await;
    }
}
