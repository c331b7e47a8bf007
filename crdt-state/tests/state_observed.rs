//! Observed state: single-writer node records merged by version.

mod state_support;

use shoal_crdt_state::error::StateError;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::{ObservedDelta, ObservedState};
use shoal_crdt_state::pod::{PodId, PodPhase};
use state_support::{node_info, pod_status};

const N1: NodeId = NodeId(1);

#[test]
fn every_local_change_bumps_the_version_and_ships_the_whole_record() {
    let mut s = ObservedState::new();
    let d1 = s.set_node_info(N1, node_info("alpha"));
    assert_eq!(d1.nodes[&N1].version, 1);
    let d2 = s
        .set_pod_status(N1, pod_status("web", 1, PodPhase::Pending, 0))
        .unwrap();
    let d3 = s
        .set_pod_status(N1, pod_status("web", 0, PodPhase::Running, 0))
        .unwrap();
    assert_eq!(d3.nodes[&N1].version, 3);
    let ids: Vec<String> = d3.nodes[&N1]
        .pods
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(ids, ["web-0", "web-1"], "pods sorted by id");
    // Unchanged status: nothing to ship, version kept.
    let same = s
        .set_pod_status(N1, pod_status("web", 0, PodPhase::Running, 0))
        .unwrap();
    assert!(same.is_empty());
    let d4 = s
        .remove_pod(
            N1,
            &PodId {
                rc: "web".into(),
                index: 1,
            },
        )
        .unwrap();
    assert_eq!(d4.nodes[&N1].version, 4);
    assert_eq!(d4.nodes[&N1].pods.len(), 1);
    // A peer that receives the deltas out of order ends with the newest.
    let mut peer = ObservedState::new();
    for d in [d4.clone(), d2, d1, d3] {
        peer.merge_delta(d);
    }
    assert_eq!(peer, s);
}

#[test]
fn pod_status_before_node_info_is_refused() {
    let mut s = ObservedState::new();
    let err = s
        .set_pod_status(N1, pod_status("web", 0, PodPhase::Running, 0))
        .unwrap_err();
    assert_eq!(err, StateError::UnknownNode { node: N1 });
    assert!(s.is_empty());
}

#[test]
fn same_version_with_different_content_resolves_the_same_everywhere() {
    // A node that lost its data dir restarted at version 1 with other content.
    let mut before = ObservedState::new();
    let old = before.set_node_info(N1, node_info("alpha"));
    let mut after = ObservedState::new();
    let new = after.set_node_info(N1, node_info("beta"));
    let mut x = ObservedState::new();
    x.merge_delta(old.clone());
    x.merge_delta(new.clone());
    let mut y = ObservedState::new();
    y.merge_delta(new);
    y.merge_delta(old);
    assert_eq!(x, y);
    // The restarted node catches up: after merging, its next write wins.
    let mut restarted = x.clone();
    let next = restarted.set_node_info(N1, node_info("gamma"));
    assert_eq!(next.nodes[&N1].version, 2);
    y.merge_delta(next);
    assert_eq!(y.get(N1).unwrap().info.name, "gamma");
}

#[test]
fn forgotten_nodes_disappear_from_the_view() {
    let mut s = ObservedState::new();
    s.set_node_info(N1, node_info("alpha"));
    s.set_node_info(NodeId(2), node_info("beta"));
    assert_eq!(s.forget(N1).unwrap().info.name, "alpha");
    let left: Vec<NodeId> = s.nodes().map(|(id, _)| id).collect();
    assert_eq!(left, [NodeId(2)]);
}

#[test]
fn a_reissued_record_replaces_a_copy_that_won_the_tie_break() {
    let mut owner = ObservedState::new();
    owner.set_node_info(N1, node_info("alpha"));
    let mut peer = ObservedState::new();
    peer.merge_delta(owner.to_delta());
    // Another copy of the owner's record under its version, which wins the tie-break.
    peer.merge_delta(peer_copy(&owner, "an-impostor"));
    peer.merge_delta(owner.to_delta());
    assert_eq!(peer.get(N1).unwrap().info.name, "an-impostor");
    // The owner re-issues its own content one version up: it replaces the copy.
    let reissued = owner.reissue(N1);
    assert_eq!(reissued.nodes[&N1].version, 2);
    assert_eq!(reissued.nodes[&N1].info.name, "alpha");
    peer.merge_delta(reissued);
    assert_eq!(peer, owner);
    assert!(ObservedState::new().reissue(N1).is_empty());
}

/// `state`'s record of N1 under the same version, with another name.
fn peer_copy(state: &ObservedState, name: &str) -> ObservedDelta {
    let mut record = state.get(N1).unwrap().clone();
    record.info.name = name.to_owned();
    ObservedDelta {
        nodes: [(N1, record)].into(),
    }
}
