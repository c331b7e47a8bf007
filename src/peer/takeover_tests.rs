//! A member taking over a live node's id (issue #16): a removal of the id
//! with a binding of its own key after that release, or a claim stamped
//! just before the held binding's. Peers that see the node live refuse
//! both, and keep refusing when the member offers them again; once the
//! node is down, the same writes are taken (what `node delete` of a down
//! node and a rebinding look like).

use std::time::Duration;

use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::identity::{self, KeyBinding, PublicKey, RecordSigner};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::node_decisions::NodeDecision;
use shoal_crdt_state::{Delta, DesiredDelta, gc, register, wire};

use super::admission::DOWN_STILL_LIVE_FOR;
use super::identity_tests::three_peers;
use super::signing::NodeKeys;
use super::sync_message::{SyncEnvelope, SyncMessage};
use super::testing::Cluster;
use super::tests::addr;

pub(super) fn forger_key() -> PublicKey {
    NodeKeys::from_seed(&[0xf0; 32]).public_key()
}

pub(super) fn ms(now: Duration) -> u64 {
    u64::try_from(now.as_millis()).unwrap()
}

/// What a member (node `by`) writes to take a node's id at `now`: a
/// removal forgetting its records so far, and its own key bound after it.
fn removal_and_binding(by: NodeId, now: Duration, through: u64) -> NodeDecision {
    let release = Hlc::new(ms(now), 0, by);
    NodeDecision {
        removed: Some(register::write(true, release)),
        forgets_through: Some(through),
        key: Some(KeyBinding {
            key: forger_key(),
            stamp: Hlc::new(ms(now), 1, by),
            after: Some(release),
        }),
        ..NodeDecision::default()
    }
}

/// A sync push of `decision` about `node`, sent by peer `from` to peer `to`.
fn push(cluster: &mut Cluster, from: usize, to: usize, node: NodeId, decision: NodeDecision) {
    let envelope = SyncEnvelope {
        from: cluster.peers[from].node(),
        reply_to: addr(from),
        message: SyncMessage::Push {
            delta: Delta::from(DesiredDelta {
                nodes: [(node, decision)].into(),
                ..DesiredDelta::default()
            }),
            digest: None,
            piece: None,
        },
    };
    let bytes = wire::encode(&envelope).unwrap();
    cluster.with_peer(to, |peer, now| peer.handle_sync(now, addr(from), &bytes));
}

pub(super) fn bound(cluster: &Cluster, at: usize, node: NodeId) -> Option<PublicKey> {
    let nodes = cluster.peers[at].state().desired.nodes();
    nodes.bound_key(node).map(|b| b.key)
}

#[test]
fn a_removal_and_binding_of_a_live_member_are_refused() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let key_b = bound(&cluster, 2, b).unwrap();
    let through = cluster.peers[2].state().observed.get(b).unwrap().version;
    let forged = removal_and_binding(cluster.peers[0].node(), cluster.now, through);
    push(&mut cluster, 0, 2, b, forged);
    let stats = cluster.peers[2].stats();
    assert_eq!(stats.bindings_refused, 1);
    assert_eq!(stats.removals_refused, 2, "the removal and its forgetting");
    assert_eq!(bound(&cluster, 2, b), Some(key_b));
    assert!(!cluster.peers[2].state().desired.nodes().is_removed(b));
    assert!(cluster.peers[2].state().observed.get(b).is_some());

    // The race of first starts: another key stamped just before the held
    // binding's.
    let held = cluster.peers[2]
        .state()
        .desired
        .nodes()
        .bound_key(b)
        .copied();
    let held = held.unwrap();
    let backdated = NodeDecision {
        key: Some(KeyBinding {
            key: forger_key(),
            stamp: Hlc::new(held.stamp.physical_ms - 1, 0, held.stamp.node),
            after: None,
        }),
        ..NodeDecision::default()
    };
    push(&mut cluster, 0, 2, b, backdated);
    assert_eq!(cluster.peers[2].stats().bindings_refused, 2);
    assert_eq!(bound(&cluster, 2, b), Some(key_b));

    // The node itself takes its removal in, and back; not the binding.
    let forged = removal_and_binding(cluster.peers[0].node(), cluster.now, through);
    push(&mut cluster, 0, 1, b, forged);
    assert_eq!(cluster.peers[1].stats().bindings_refused, 1);
    assert_eq!(cluster.peers[1].stats().removals_refused, 0);
    cluster.run_for(Duration::from_secs(5));
    for i in 0..3 {
        let peer = &cluster.peers[i];
        assert_eq!(bound(&cluster, i, b), Some(key_b), "at peer {i}");
        assert!(!peer.state().desired.nodes().is_removed(b), "at peer {i}");
        assert!(peer.state().observed.get(b).is_some(), "at peer {i}");
    }
}

#[test]
fn a_member_holding_a_forged_binding_offers_it_once_a_round_and_is_refused() {
    let mut cluster = three_peers();
    let (a, b) = (cluster.peers[0].node(), cluster.peers[1].node());
    let key_b = bound(&cluster, 2, b).unwrap();
    // The member's own peer holds the forged writes (it wrote them) and
    // offers them with every anti-entropy round.
    let through = cluster.peers[2].state().observed.get(b).unwrap().version;
    let forged = removal_and_binding(a, cluster.now, through);
    cluster.peers[0]
        .state
        .merge_delta(Delta::from(DesiredDelta {
            nodes: [(b, forged)].into(),
            ..DesiredDelta::default()
        }));
    cluster.peers[0].state_changes += 1;
    assert_eq!(bound(&cluster, 0, b), Some(forger_key()), "at the member");
    let before = cluster.peers[2].stats();
    let span = Duration::from_secs(20);
    cluster.run_for(span);
    let after = cluster.peers[2].stats();
    assert_eq!(bound(&cluster, 2, b), Some(key_b));
    assert_eq!(bound(&cluster, 1, b), Some(key_b));
    let refused = after.bindings_refused - before.bindings_refused;
    let rounds = after.anti_entropy_rounds - before.anti_entropy_rounds;
    assert!(refused > 0, "offered again");
    // Both sides start rounds, about one a second each: a few refusals a
    // round at most, no storm.
    assert!(
        refused <= 2 * (rounds + span.as_secs()),
        "{refused} refusals in {rounds} rounds"
    );
}

#[test]
fn the_same_writes_for_a_member_that_is_down_are_taken() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let through = cluster.peers[2].state().observed.get(b).unwrap().version;
    cluster.crash(1);
    // Declared down at peer 2, then the grace against false rumours.
    cluster.run_for(Duration::from_secs(10));
    assert!(!cluster.peers[2].members().contains_key(&b));
    let forged = removal_and_binding(cluster.peers[0].node(), cluster.now, through);
    let before = cluster.peers[2].stats();
    push(&mut cluster, 0, 2, b, forged);
    let after = cluster.peers[2].stats();
    assert_eq!(after.bindings_refused, before.bindings_refused);
    assert_eq!(after.removals_refused, before.removals_refused);
    assert_eq!(bound(&cluster, 2, b), Some(forger_key()));
    assert!(cluster.peers[2].state().desired.nodes().is_removed(b));
}

#[test]
fn a_member_declared_down_a_moment_ago_still_counts_as_live() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let through = cluster.peers[2].state().observed.get(b).unwrap().version;
    cluster.crash(1);
    let mut waited = Duration::ZERO;
    while cluster.peers[2].members().contains_key(&b) {
        assert!(waited < Duration::from_secs(20), "never declared down");
        cluster.run_for(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    let key_b = bound(&cluster, 2, b);
    let forged = removal_and_binding(cluster.peers[0].node(), cluster.now, through);
    push(&mut cluster, 0, 2, b, forged.clone());
    assert_eq!(cluster.peers[2].stats().bindings_refused, 1);
    assert_eq!(bound(&cluster, 2, b), key_b);
    cluster.run_for(DOWN_STILL_LIVE_FOR);
    push(&mut cluster, 0, 2, b, forged);
    assert_eq!(cluster.peers[2].stats().bindings_refused, 1);
    assert_eq!(bound(&cluster, 2, b), Some(forger_key()));
}

#[test]
fn a_node_told_to_forget_through_the_last_version_refuses_it_and_keeps_registering() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    let release = Hlc::new(ms(cluster.now), 0, cluster.peers[0].node());
    let absurd = NodeDecision {
        removed: Some(register::write(true, release)),
        forgets_through: Some(u64::MAX),
        ..NodeDecision::default()
    };
    // To the node itself, which takes its own removal in (and back).
    push(&mut cluster, 0, 1, b, absurd);
    assert_eq!(cluster.peers[1].stats().removals_refused, 1);
    cluster.run_for(Duration::from_secs(5));
    let decision = cluster.peers[1].state().desired.nodes().get(b).cloned();
    assert!(decision.is_none_or(|d| d.forgets_through.is_none_or(|t| t < u64::MAX)));
    for at in [0, 2] {
        let record = cluster.peers[at].state().observed.get(b).map(|r| r.version);
        assert!(
            record.is_some_and(|v| v < identity::MAX_FORGETTABLE_VERSION),
            "peer {at} holds {record:?} for the node"
        );
    }
}

#[test]
fn a_horizon_ahead_is_taken_only_once_this_peer_holds_all_the_sender_holds() {
    let mut cluster = three_peers();
    // As far ahead as a peer takes (one epoch past its cutoff).
    let (grace, epoch) = (10 * 60_000, 60_000);
    let horizon = gc::horizon_cap(gc::cutoff(ms(cluster.now), grace, epoch), epoch);
    // A digest of a state at that horizon holding an RC, written before
    // it, that peer 2 lacks.
    let mut ahead = cluster.peers[0].state().clone();
    let extra = super::tests::hello(1);
    let held = |cluster: &Cluster| cluster.peers[2].state().desired.collected_below_ms();
    // After peer 2's own horizon (older is collected there), before the new one.
    let written = held(&cluster) + 1_000;
    assert!(written < horizon);
    let stamp = Hlc::new(written, 0, cluster.peers[0].node());
    let delta = ahead.desired.apply(&extra, stamp);
    ahead.desired.collect(horizon);
    let sender = cluster.peers[0].node();
    let pull = |digest: shoal_crdt_state::Digest| SyncEnvelope {
        from: sender,
        reply_to: addr(0),
        message: SyncMessage::Pull { digest },
    };
    let bytes = wire::encode(&pull(ahead.digest())).unwrap();
    cluster.with_peer(2, |peer, now| peer.handle_sync(now, addr(0), &bytes));
    let before = held(&cluster);
    assert!(before < horizon, "taken before the RC below it arrived");
    assert_eq!(cluster.peers[2].stats().horizon_catch_ups_deferred, 1);
    // Once it holds the RC, the same digest's horizon is taken.
    let envelope = SyncEnvelope {
        from: sender,
        reply_to: addr(0),
        message: SyncMessage::Push {
            delta: Delta::from(delta),
            digest: None,
            piece: None,
        },
    };
    let push = wire::encode(&envelope).unwrap();
    cluster.with_peer(2, |peer, now| peer.handle_sync(now, addr(0), &push));
    let bytes = wire::encode(&pull(ahead.digest())).unwrap();
    cluster.with_peer(2, |peer, now| peer.handle_sync(now, addr(0), &bytes));
    assert!(held(&cluster) > before, "not taken once the RC is held");
    assert!(
        cluster.peers[2]
            .state()
            .desired
            .record(&extra.name)
            .is_some(),
        "the RC below the horizon is kept"
    );
}

#[test]
fn a_peer_behind_the_horizon_does_not_hand_back_a_node_the_sender_collected() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    cluster.crash(1);
    // Down, out of the member view, and its binding settled below the
    // horizon a peer takes (one epoch past a ten-minute cutoff).
    cluster.run_for(Duration::from_secs(11 * 60));
    assert!(!cluster.peers[2].members().contains_key(&b));
    assert!(cluster.peers[2].state().observed.get(b).is_some());
    let (grace, epoch) = (10 * 60_000, 60_000);
    let horizon = gc::horizon_cap(gc::cutoff(ms(cluster.now), grace, epoch), epoch);
    // The sender collected b (its digest omits it whole) and holds an RC
    // peer 2 lacks, so peer 2 does not catch up yet and answers first.
    let mut sender = shoal_crdt_state::ClusterState::new();
    let stamp = Hlc::new(ms(cluster.now), 0, cluster.peers[0].node());
    sender.desired.apply(&super::tests::hello(1), stamp);
    sender.desired.collect(horizon);
    let envelope = SyncEnvelope {
        from: cluster.peers[0].node(),
        reply_to: addr(0),
        message: SyncMessage::Pull {
            digest: sender.digest(),
        },
    };
    let bytes = wire::encode(&envelope).unwrap();
    let answers = cluster.with_peer(2, |peer, now| {
        peer.handle_sync(now, addr(0), &bytes);
        std::iter::from_fn(|| peer.poll_output()).collect::<Vec<_>>()
    });
    let mut answered = Vec::new();
    for output in answers {
        if let super::Output::Sync { bytes, .. } = output {
            let envelope: SyncEnvelope = wire::decode(&bytes, usize::MAX).unwrap();
            if let SyncMessage::Push { delta, .. } = envelope.message {
                answered.push(delta);
            }
        }
    }
    assert!(
        !answered.is_empty(),
        "peer 2 answers with what the sender lacks"
    );
    let names = |d: &Delta| {
        (
            d.desired.nodes.keys().copied().collect::<Vec<_>>(),
            d.observed.nodes.keys().copied().collect::<Vec<_>>(),
        )
    };
    for delta in &answered {
        let (decisions, records) = names(delta);
        assert!(
            !decisions.contains(&b) && !records.contains(&b),
            "b handed back"
        );
    }
    let me = cluster.peers[2].node();
    assert!(
        answered.iter().any(|d| d.observed.nodes.contains_key(&me)),
        "live nodes still sent"
    );
}

#[test]
fn a_digest_omitting_a_node_declared_down_a_moment_ago_does_not_drop_its_binding() {
    let mut cluster = three_peers();
    let b = cluster.peers[1].node();
    // Bound long enough ago to be settled below the horizon taken.
    cluster.run_for(Duration::from_secs(11 * 60));
    let key_b = bound(&cluster, 2, b).unwrap();
    cluster.crash(1);
    while cluster.peers[2].members().contains_key(&b) {
        cluster.run_for(Duration::from_millis(100));
    }
    // Within DOWN_STILL_LIVE_FOR: a member's Pull whose digest is peer 2's
    // own without b, at the horizon peer 2 would take.
    let (grace, epoch) = (10 * 60_000, 60_000);
    let horizon = gc::horizon_cap(gc::cutoff(ms(cluster.now), grace, epoch), epoch);
    let mut state = cluster.peers[2].state().clone();
    state.desired.collect(horizon);
    let mut crafted = state.digest();
    crafted.nodes.remove(&b);
    crafted.observed.remove(&b);
    let envelope = SyncEnvelope {
        from: cluster.peers[0].node(),
        reply_to: addr(0),
        message: SyncMessage::Pull { digest: crafted },
    };
    let bytes = wire::encode(&envelope).unwrap();
    cluster.with_peer(2, |peer, now| peer.handle_sync(now, addr(0), &bytes));
    assert!(cluster.peers[2].state().desired.collected_below_ms() >= horizon - epoch);
    assert_eq!(bound(&cluster, 2, b), Some(key_b), "b's binding dropped");
}

#[test]
fn an_old_decision_of_a_node_not_held_and_not_live_is_refused_as_collected() {
    let mut cluster = three_peers();
    let horizon = ms(cluster.now) - 60_000;
    cluster.with_peer(2, |peer, _| {
        peer.state.desired.collect(horizon);
    });
    let ghost = NodeId(0xdead);
    let old = NodeDecision {
        key: Some(KeyBinding {
            key: forger_key(),
            stamp: Hlc::new(horizon - 1_000, 0, ghost),
            after: None,
        }),
        ..NodeDecision::default()
    };
    push(&mut cluster, 0, 2, ghost, old);
    assert!(
        bound(&cluster, 2, ghost).is_none(),
        "a collected node came back"
    );
    let fresh_node = NodeId(0xbeef);
    let fresh = NodeDecision {
        key: Some(KeyBinding {
            key: forger_key(),
            stamp: Hlc::new(ms(cluster.now), 0, fresh_node),
            after: None,
        }),
        ..NodeDecision::default()
    };
    push(&mut cluster, 0, 2, fresh_node, fresh);
    assert_eq!(
        bound(&cluster, 2, fresh_node),
        Some(forger_key()),
        "a new node is taken"
    );
}

#[test]
fn a_joiner_whose_seed_does_not_answer_collects_nothing_alone() {
    let mut cluster = Cluster::new(super::tests::START, Duration::from_millis(1));
    // Peer 0 joins through an address nobody answers at; peer 1 forms a
    // cluster of its own.
    cluster.add(super::Peer::new(super::tests::config(0)), &[addr(9)]);
    cluster.add(super::Peer::new(super::tests::config(1)), &[]);
    cluster.run_for(Duration::from_secs(10));
    let horizon = |i: usize| cluster.peers[i].state().desired.collected_below_ms();
    assert_eq!(horizon(0), 0, "collected knowing only itself");
    assert!(
        horizon(1) > 0,
        "a peer that formed the cluster alone collects"
    );
}
