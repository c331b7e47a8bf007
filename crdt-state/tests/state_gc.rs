//! Garbage collection rules: what is settled, when every node agrees,
//! what collection removes, the fence, and catching up with a horizon.

mod state_support;

use shoal_crdt_state::ClusterState;
use shoal_crdt_state::gc::{self, GcAck};
use shoal_crdt_state::node::NodeId;
use state_support::{node_info, service, spec, stamp};

/// A state with a live RC, a deleted RC, a deleted service and a removed
/// node, all written before 1,000 ms; and a deleted RC written at 5,000.
fn state() -> ClusterState {
    let mut s = ClusterState::new();
    let d = &mut s.desired;
    d.apply(&spec("live", "img:1", 1), stamp(100, 1));
    d.apply(&spec("gone", "img:1", 1), stamp(100, 1));
    d.delete("gone", stamp(200, 1)).unwrap();
    d.apply(&spec("late", "img:1", 1), stamp(100, 1));
    d.delete("late", stamp(5_000, 1)).unwrap();
    d.apply_service(&service("svc", 80), stamp(100, 1));
    d.delete_service("svc", stamp(300, 1)).unwrap();
    s.remove_node(NodeId(9), true, stamp(400, 1));
    s.observed.set_node_info(NodeId(1), node_info("one"));
    s
}

#[test]
fn cutoffs_round_down_to_the_epoch_after_the_grace() {
    assert_eq!(gc::cutoff(10_500, 1_000, 1_000), 9_000);
    assert_eq!(gc::cutoff(500, 1_000, 1_000), 0);
}

#[test]
fn collection_needs_every_known_node_on_the_same_hash() {
    let s = state();
    let mine = GcAck {
        cutoff_ms: 1_000,
        settled: s.desired.settled_hash(1_000),
        collected_below_ms: 0,
    };
    let stale = GcAck {
        cutoff_ms: 0,
        ..mine
    };
    let other_content = GcAck {
        settled: mine.settled ^ 1,
        ..mine
    };
    let ahead = GcAck {
        cutoff_ms: 2_000,
        settled: 7,
        collected_below_ms: 1_000,
    };
    assert!(gc::ready(&mine, [Some(&mine), Some(&mine)]));
    assert!(gc::ready(&mine, [Some(&mine), Some(&ahead)]));
    assert!(!gc::ready(&mine, [Some(&mine), Some(&stale)]));
    assert!(!gc::ready(&mine, [Some(&mine), Some(&other_content)]));
    assert!(!gc::ready(&mine, [Some(&mine), None]));
}

#[test]
fn settled_hashes_differ_when_a_settled_record_differs() {
    let a = state();
    let mut b = state();
    assert_eq!(a.desired.settled_hash(1_000), b.desired.settled_hash(1_000));
    b.desired.apply(&spec("extra", "img:1", 1), stamp(150, 2));
    assert_ne!(a.desired.settled_hash(1_000), b.desired.settled_hash(1_000));
    // A record written after the cutoff is not part of it.
    let mut c = state();
    c.desired.apply(&spec("newer", "img:1", 1), stamp(1_500, 2));
    assert_eq!(a.desired.settled_hash(1_000), c.desired.settled_hash(1_000));
}

#[test]
fn collection_removes_settled_tombstones_and_removals_only() {
    let mut s = state();
    let collected = s.desired.collect(1_000);
    assert_eq!(collected.rcs, ["gone"]);
    assert_eq!(collected.services, ["svc"]);
    assert_eq!(collected.nodes, [NodeId(9)]);
    assert!(s.desired.get("live").is_some());
    assert!(
        s.desired.record("late").is_some(),
        "deleted after the cutoff"
    );
    assert_eq!(s.desired.collected_below_ms(), 1_000);
}

#[test]
fn the_fence_drops_old_copies_of_collected_records_but_not_new_writes() {
    let mut old = state();
    let mut s = state();
    s.desired.collect(1_000);
    // A peer that never saw the deletes sends its old live copies.
    let stale = {
        let mut fresh = ClusterState::new();
        fresh
            .desired
            .apply(&spec("gone", "img:1", 1), stamp(100, 1));
        fresh
            .desired
            .apply_service(&service("svc", 80), stamp(100, 1));
        fresh.desired.to_delta()
    };
    s.merge_delta(stale.into());
    assert!(s.desired.record("gone").is_none(), "resurrected");
    assert!(s.desired.service_record("svc").is_none(), "resurrected");
    // A new apply of the name (after the horizon) goes through.
    let recreate = old
        .desired
        .apply(&spec("gone", "img:2", 1), stamp(2_000, 3));
    s.merge_delta(recreate.into());
    assert!(s.desired.get("gone").is_some());
}

#[test]
fn a_peer_behind_the_horizon_drops_what_the_other_collected() {
    let mut ahead = state();
    ahead.desired.collect(1_000);
    // Behind: holds "gone" live (it missed the delete) and a node record
    // of a node the other side forgot.
    let mut behind = ClusterState::new();
    behind
        .desired
        .apply(&spec("live", "img:1", 1), stamp(100, 1));
    behind
        .desired
        .apply(&spec("gone", "img:1", 1), stamp(100, 1));
    behind
        .desired
        .apply(&spec("fresh", "img:1", 1), stamp(1_500, 2));
    behind.observed.set_node_info(NodeId(1), node_info("one"));
    behind.observed.set_node_info(NodeId(9), node_info("nine"));
    behind.observed.set_node_info(NodeId(5), node_info("five"));
    let alive = |n: NodeId| n == NodeId(5);
    let collected = behind.adopt_horizon(&ahead.digest(), u64::MAX, alive);
    assert_eq!(collected.rcs, ["gone"]);
    assert_eq!(collected.node_records, [NodeId(9)]);
    assert!(behind.desired.get("live").is_some());
    assert!(
        behind.desired.get("fresh").is_some(),
        "newer than the horizon"
    );
    assert!(
        behind.observed.get(NodeId(5)).is_some(),
        "alive in our view"
    );
    assert_eq!(behind.desired.collected_below_ms(), 1_000);
    // Not behind any more: nothing else happens.
    assert!(
        behind
            .adopt_horizon(&ahead.digest(), u64::MAX, alive)
            .is_empty()
    );
}

#[test]
fn a_peer_that_took_the_horizon_first_still_learns_old_bindings() {
    use shoal_crdt_state::identity::PublicKey;
    let mut old = ClusterState::new();
    old.desired
        .bind_key(NodeId(1), PublicKey([1; 32]), stamp(100, 1));
    let removal = old.remove_node(NodeId(2), true, stamp(200, 1));
    old.desired.collect(1_000);
    assert!(old.desired.nodes().get(NodeId(2)).is_none(), "collected");
    // A joiner takes the horizon from the first digest it sees, before
    // any record arrives (anti-entropy's Pull, a cut split transfer).
    let mut joiner = ClusterState::new();
    joiner.adopt_horizon(&old.digest(), u64::MAX, |_| false);
    assert_eq!(joiner.desired.collected_below_ms(), 1_000);
    joiner.merge(&old);
    assert_eq!(
        joiner.desired.nodes().bound_key(NodeId(1)).map(|b| b.key),
        Some(PublicKey([1; 32])),
        "a live node's binding older than the horizon is not fenced"
    );
    // A stale copy of the collected removal stays out.
    joiner.merge_delta(removal.into());
    assert!(joiner.desired.nodes().get(NodeId(2)).is_none());
    assert_eq!(joiner.digest(), old.digest());
}

#[test]
fn catching_up_drops_only_removals_the_sender_omits() {
    use shoal_crdt_state::identity::PublicKey;
    // A member's digest: a horizon far ahead, and no node decisions.
    let mut member = ClusterState::new();
    member.desired.collect(1_000);
    let mut victim = ClusterState::new();
    victim
        .desired
        .bind_key(NodeId(1), PublicKey([1; 32]), stamp(100, 1));
    victim.remove_node(NodeId(2), true, stamp(200, 1));
    let collected = victim.adopt_horizon(&member.digest(), u64::MAX, |_| true);
    assert_eq!(collected.nodes, [NodeId(2)], "the settled removal only");
    assert_eq!(
        victim.desired.nodes().bound_key(NodeId(1)).map(|b| b.key),
        Some(PublicKey([1; 32])),
        "a live node's binding is never collected"
    );
}

#[test]
fn catching_up_drops_the_binding_of_a_node_the_sender_forgot_whole_unless_it_is_alive() {
    use shoal_crdt_state::identity::PublicKey;
    // The sender collected node 1 (its removal and binding) and holds no
    // record of it; a peer that was away during the delete still holds
    // the binding from before.
    let mut sender = ClusterState::new();
    sender.desired.collect(1_000);
    let mut returning = ClusterState::new();
    returning
        .desired
        .bind_key(NodeId(1), PublicKey([1; 32]), stamp(100, 1));
    let alive = returning.clone();
    let collected = returning.adopt_horizon(&sender.digest(), u64::MAX, |_| false);
    assert_eq!(collected.nodes, [NodeId(1)]);
    assert!(returning.desired.nodes().bound_key(NodeId(1)).is_none());
    // The same binding of a node seen alive stays.
    let mut alive = alive;
    let collected = alive.adopt_horizon(&sender.digest(), u64::MAX, |_| true);
    assert!(collected.nodes.is_empty());
    assert!(alive.desired.nodes().bound_key(NodeId(1)).is_some());
}

#[test]
fn a_horizon_is_taken_at_most_up_to_the_cap() {
    let mut member = ClusterState::new();
    member.desired.collect(u64::MAX);
    let mut victim = ClusterState::new();
    victim
        .desired
        .apply(&spec("kept", "img:1", 1), stamp(5_000, 1));
    let cap = gc::horizon_cap(3_000, 1_000);
    assert_eq!(cap, 4_000);
    victim.adopt_horizon(&member.digest(), cap, |_| true);
    assert_eq!(victim.desired.collected_below_ms(), 4_000);
    assert!(victim.desired.get("kept").is_some(), "newer than the cap");
}
