//! Decisions about nodes (cordon, delete) as replicated state: per-field
//! last writer wins, and a removed node's record leaves every peer.

mod state_support;

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::{ClusterState, Delta};
use state_support::{exchange, node_info, stamp};

const X: NodeId = NodeId(42);

/// A state holding node X's self-report at `version`.
fn with_record_of_x(version: u64) -> ClusterState {
    let mut state = ClusterState::new();
    for v in 0..version {
        let mut info = node_info("x");
        info.version = format!("v{v}");
        state.observed.set_node_info(X, info);
    }
    assert_eq!(state.observed.get(X).map(|r| r.version), Some(version));
    state
}

#[test]
fn concurrent_cordon_and_uncordon_settle_on_the_later_stamp_everywhere() {
    let mut a = ClusterState::new();
    let mut b = ClusterState::new();
    let cordon = a.desired.cordon(X, true, stamp(10, 1));
    let uncordon = b.desired.cordon(X, false, stamp(11, 2));
    a.merge_delta(uncordon.clone().into());
    b.merge_delta(cordon.clone().into());
    assert!(!a.desired.nodes().is_cordoned(X));
    assert!(!b.desired.nodes().is_cordoned(X));
    assert_eq!(a.digest(), b.digest());
    // Writing what already holds is no change.
    assert!(a.desired.cordon(X, false, stamp(12, 1)).is_empty());
}

#[test]
fn a_removed_node_leaves_the_observed_state_and_stale_copies_are_ignored() {
    let mut peer = with_record_of_x(3);
    let stale = peer.observed.to_delta();
    let removal = peer.remove_node(X, true, stamp(20, 1));
    let mut other = with_record_of_x(3);
    other.merge_delta(removal.clone().into());
    assert!(other.observed.get(X).is_none(), "the record is dropped");
    // A peer that had not heard sends its old copy: ignored.
    other.merge_delta(stale.clone().into());
    assert!(other.observed.get(X).is_none(), "a stale copy came back");
    // Anti-entropy between a peer that knows and one that does not: both
    // end without the record.
    let mut late = with_record_of_x(3);
    exchange(&mut other, &mut late);
    assert!(late.observed.get(X).is_none());
    assert!(late.desired.nodes().is_removed(X));
}

#[test]
fn a_removed_node_that_registers_again_is_back_everywhere() {
    let mut a = with_record_of_x(2);
    let mut b = with_record_of_x(2);
    let removal = a.remove_node(X, true, stamp(20, 1));
    a.merge_delta(removal.into());
    exchange(&mut a, &mut b);
    assert!(a.observed.get(X).is_none() && b.observed.get(X).is_none());
    // X comes back: it takes the removal back (later stamp) and reports again.
    let mut x = a.clone();
    let back = x.remove_node(X, false, stamp(30, X.0));
    let record = x.set_node_info(X, node_info("x"));
    let mut delta = Delta::from(back);
    delta.observed.merge(record);
    b.merge_delta(delta);
    exchange(&mut a, &mut b);
    assert!(!a.desired.nodes().is_removed(X));
    assert!(a.observed.get(X).is_some() && b.observed.get(X).is_some());
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn decisions_that_differ_under_one_stamp_are_repaired_in_one_exchange() {
    let mut a = ClusterState::new();
    let mut b = ClusterState::new();
    a.desired.cordon(X, true, stamp(10, 1));
    b.desired.cordon(X, false, stamp(10, 1));
    exchange(&mut a, &mut b);
    assert_eq!(a.desired.nodes(), b.desired.nodes());
    assert_eq!(a.digest(), b.digest());
}

/// Every order of `deltas` (each delivered twice) merged into `start`.
fn merged_in_every_order(start: &ClusterState, deltas: &[Delta]) -> Vec<ClusterState> {
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for rest in permutations(n - 1) {
            for at in 0..=rest.len() {
                let mut p = rest.clone();
                p.insert(at, n - 1);
                out.push(p);
            }
        }
        out
    }
    permutations(deltas.len())
        .into_iter()
        .map(|order| {
            let mut state = start.clone();
            for i in order.iter().chain(order.iter().rev()) {
                state.merge_delta(deltas[*i].clone());
            }
            state
        })
        .collect()
}

#[test]
fn a_removal_its_take_back_and_the_new_record_merge_alike_in_every_order() {
    // Peer A removes X (holding X's record at version 2); X, alive, learns
    // of it, takes it back with a newer stamp and reports again. A third
    // peer that still holds X's old record receives the three writes as
    // separate messages, in any order.
    let old = with_record_of_x(2);
    let mut a = old.clone();
    let removal: Delta = a.remove_node(X, true, stamp(20, 1)).into();
    let mut x = old.clone();
    x.merge_delta(removal.clone());
    let take_back: Delta = x.remove_node(X, false, stamp(30, X.0)).into();
    let record: Delta = x.set_node_info(X, node_info("x-again")).into();
    let outcomes = merged_in_every_order(&old, &[removal, take_back, record]);
    for state in &outcomes {
        assert_eq!(state, &outcomes[0], "the merge depends on delivery order");
        assert_eq!(state.desired, x.desired);
        assert_eq!(state.observed, x.observed);
    }
    let back = outcomes[0]
        .observed
        .get(X)
        .expect("X's new record survives");
    assert_eq!(back.info.name, "x-again");
}
