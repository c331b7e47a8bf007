//! Admission at its edges (issue #16, the review of the takeover fix): a
//! member's horizon in a digest, a removal refused here that the node
//! must still hear of, a node that left gracefully, and a join transfer
//! that brings a forgetting with the record above it.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::identity::KeyBinding;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::node_decisions::NodeDecision;
use shoal_crdt_state::observed::ObservedDelta;
use shoal_crdt_state::{ClusterState, Delta, DesiredDelta, register, wire};

use super::identity_tests::three_peers;
use super::sync_message::{SyncEnvelope, SyncMessage};
use super::takeover_tests::{bound, forger_key, ms};
use super::testing::Cluster;
use super::tests::{START, addr, config};
use super::{Peer, PeerConfig};

/// A sync message from peer `from` to peer `to`.
fn send(cluster: &mut Cluster, from: usize, to: usize, message: SyncMessage) {
    let envelope = SyncEnvelope {
        from: cluster.peers[from].node(),
        reply_to: addr(from),
        message,
    };
    let bytes = wire::encode(&envelope).unwrap();
    cluster.with_peer(to, |peer, now| peer.handle_sync(now, addr(from), &bytes));
}

fn push(cluster: &mut Cluster, from: usize, to: usize, delta: Delta) {
    let message = SyncMessage::Push {
        delta,
        digest: None,
        piece: None,
    };
    send(cluster, from, to, message);
}

fn decisions(node: NodeId, decision: NodeDecision) -> Delta {
    Delta::from(DesiredDelta {
        nodes: [(node, decision)].into(),
        ..DesiredDelta::default()
    })
}

/// A removal written by peer `by` now, and nothing else.
fn removal(cluster: &Cluster, by: usize) -> NodeDecision {
    let release = Hlc::new(ms(cluster.now), 0, cluster.peers[by].node());
    NodeDecision {
        removed: Some(register::write(true, release)),
        ..NodeDecision::default()
    }
}

/// Three peers that collect what is a second old (so bindings made at
/// the start are settled below a horizon soon).
fn three_quick_collectors() -> Cluster {
    let mut cluster = Cluster::new(START, Duration::from_millis(1));
    for i in 0..3 {
        let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
        let config = PeerConfig {
            gc_grace: Duration::from_secs(1),
            gc_epoch: Duration::from_secs(1),
            ..config(i)
        };
        cluster.add(Peer::new(config), &seeds);
    }
    cluster.run_for(Duration::from_secs(5));
    cluster
}

#[test]
fn a_members_far_horizon_leaves_a_live_nodes_binding_in_place() {
    let mut cluster = three_quick_collectors();
    let b = cluster.peers[1].node();
    let held = *cluster.peers[2]
        .state()
        .desired
        .nodes()
        .bound_key(b)
        .unwrap();
    // The member's Pull: a horizon far ahead, and a digest without b.
    let mut empty = ClusterState::new();
    empty.desired.collect(u64::MAX);
    let digest = empty.digest();
    send(&mut cluster, 0, 2, SyncMessage::Pull { digest });
    assert_eq!(bound(&cluster, 2, b), Some(held.key));
    let horizon = cluster.peers[2].state().desired.collected_below_ms();
    assert!(
        horizon <= ms(cluster.now) + 1_000,
        "took a horizon of {horizon} at {}",
        ms(cluster.now)
    );
    // Then its own key for b, stamped just before the held binding (it
    // would win the join).
    let claim = NodeDecision {
        key: Some(KeyBinding {
            key: forger_key(),
            stamp: Hlc::new(held.stamp.physical_ms - 1, 0, cluster.peers[0].node()),
            after: None,
        }),
        ..NodeDecision::default()
    };
    push(&mut cluster, 0, 2, decisions(b, claim));
    assert_eq!(bound(&cluster, 2, b), Some(held.key));
    assert_eq!(cluster.peers[2].stats().bindings_refused, 1);
}

#[test]
fn a_refused_removal_is_sent_to_the_node_which_takes_it_back_everywhere() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    // Only peer 2 hears of the removal (peer 0 stands for a peer that
    // cannot reach b, and b cannot reach it): peer 2 refuses it.
    let forged = removal(&cluster, 0);
    let release = forged.removed.as_ref().unwrap().marker;
    let sent = cluster.peers[2].stats().sync_out;
    push(&mut cluster, 0, 2, decisions(b, forged.clone()));
    assert_eq!(cluster.peers[2].stats().removals_refused, 1);
    assert_eq!(cluster.peers[2].stats().sync_out, sent + 1, "told the node");
    // Once per node per period, however often it is offered.
    push(&mut cluster, 0, 2, decisions(b, forged));
    assert_eq!(cluster.peers[2].stats().removals_refused, 2);
    assert_eq!(cluster.peers[2].stats().sync_out, sent + 1);
    cluster.run_for(Duration::from_secs(3));
    for i in 0..3 {
        let decision = cluster.peers[i].state().desired.nodes().get(b).cloned();
        let removed = decision.and_then(|d| d.removed);
        assert!(
            removed
                .as_ref()
                .is_some_and(|r| !r.val && r.marker > release),
            "peer {i} holds {removed:?}, not b's take-back"
        );
    }
}

#[test]
fn a_node_that_left_gracefully_can_be_removed_as_soon_as_it_is_down() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    cluster.with_peer(1, |peer, now| peer.prepare_leave(now));
    cluster.run_for(Duration::from_millis(500));
    cluster.with_peer(1, |peer, now| peer.leave(now));
    cluster.crash(1);
    let mut waited = Duration::ZERO;
    while cluster.peers[2].members().contains_key(&b) {
        assert!(waited < Duration::from_secs(20), "never seen leaving");
        cluster.run_for(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    assert!(cluster.peers[2].held_for_grace(b), "its replicas are held");
    let delete = removal(&cluster, 0);
    push(&mut cluster, 0, 2, decisions(b, delete));
    assert_eq!(cluster.peers[2].stats().removals_refused, 0);
    assert!(cluster.peers[2].state().desired.nodes().is_removed(b));
}

/// What a node's take-back leaves: a forgetting below its record, and the
/// record, as a join transfer brings them to a peer that holds neither.
fn forgetting_and_record(cluster: &Cluster, node: NodeId) -> (u64, Delta) {
    let record = cluster.peers[2].state().observed.get(node).unwrap().clone();
    let through = record.version - 1;
    let binding = cluster.peers[2].state().desired.nodes().get(node).unwrap();
    let decision = NodeDecision {
        forgets_through: Some(through),
        key: binding.key,
        ..NodeDecision::default()
    };
    let mut delta = decisions(node, decision);
    delta.observed = ObservedDelta {
        nodes: [(node, record)].into(),
    };
    (through, delta)
}

#[test]
fn a_forgetting_below_a_signed_record_in_the_same_delta_is_taken() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let (through, delta) = forgetting_and_record(&cluster, b);
    cluster.peers[2].state.observed.forget(b);
    push(&mut cluster, 0, 2, delta);
    assert_eq!(cluster.peers[2].stats().removals_refused, 0);
    let decision = cluster.peers[2].state().desired.nodes().get(b).cloned();
    assert_eq!(decision.and_then(|d| d.forgets_through), Some(through));
    assert!(cluster.peers[2].state().observed.get(b).is_some());
}

#[test]
fn a_forged_record_in_the_same_delta_does_not_lower_the_bar() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let (_, mut delta) = forgetting_and_record(&cluster, b);
    // A version above the real one, not signed by b: the forgetting it
    // would cover takes b's current record.
    let record = delta.observed.nodes.get_mut(&b).unwrap();
    let current = record.version;
    record.version += 10;
    let decision = delta.desired.nodes.get_mut(&b).unwrap();
    decision.forgets_through = Some(current);
    cluster.peers[2].state.observed.forget(b);
    push(&mut cluster, 0, 2, delta);
    assert_eq!(cluster.peers[2].stats().removals_refused, 1);
    let decision = cluster.peers[2].state().desired.nodes().get(b).cloned();
    assert_eq!(decision.and_then(|d| d.forgets_through), None);
}
