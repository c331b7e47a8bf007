//! Divergence that stamps cannot see: two different values under one stamp
//! (a register) or one version (a node record). However they got there — a
//! bug, a broken or hostile peer, a restored backup — one anti-entropy round
//! must find and repair them, to the same value whichever side starts.

mod state_support;

use std::collections::BTreeMap;

use shoal_crdt_state::desired::{DesiredDelta, RcBody, RcRecord};
use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::{NodeRecord, ObservedDelta};
use shoal_crdt_state::pod::PodPhase;
use shoal_crdt_state::register;
use shoal_crdt_state::sync::ClusterState;
use state_support::{exchange, node_info, pod_status, spec, stamp};

const WRITER: NodeId = NodeId(0x1000);

/// A cluster state holding `records`, each taken as is (never merged with
/// another version of itself).
fn state_with(rcs: Vec<(&str, RcRecord)>, nodes: Vec<(NodeId, NodeRecord)>) -> ClusterState {
    let mut state = ClusterState::new();
    state.desired.merge_delta(DesiredDelta {
        rcs: rcs.into_iter().map(|(n, r)| (n.to_owned(), r)).collect(),
        ..DesiredDelta::default()
    });
    state.observed.merge_delta(ObservedDelta {
        nodes: nodes.into_iter().collect(),
    });
    state
}

/// RC `web` as applied once: body, replicas and deleted flag, one stamp.
fn web(image: &str, replicas: u32, at: Hlc) -> RcRecord {
    RcRecord {
        body: Some(register::write(
            RcBody::of(&spec("web", image, replicas)),
            at,
        )),
        replicas: Some(register::write(replicas, at)),
        deleted: Some(register::write(false, at)),
        paused: None,
        history: Vec::new(),
    }
}

/// What a peer holding both would keep: the merge's tie-break.
fn joined(a: &ClusterState, b: &ClusterState) -> ClusterState {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// One exchange started by each side in turn: both runs end in the join,
/// and after it nothing is missing either way.
fn assert_one_exchange_repairs(a: &ClusterState, b: &ClusterState) -> ClusterState {
    let expected = joined(a, b);
    assert_eq!(expected, joined(b, a), "the tie-break is commutative");
    for (first, second) in [(a, b), (b, a)] {
        let (mut x, mut y) = (first.clone(), second.clone());
        exchange(&mut x, &mut y);
        assert_eq!(x, expected, "the side that merged first diverges");
        assert_eq!(y, expected, "the side that merged last diverges");
        assert!(x.missing_for(&y.digest()).is_empty());
        assert!(y.missing_for(&x.digest()).is_empty());
    }
    expected
}

fn body_image(state: &ClusterState) -> String {
    let web = state.desired.get("web").expect("web is live");
    web.template().primary_image().to_owned()
}

#[test]
fn two_templates_under_one_stamp_converge_after_one_exchange_whichever_side_starts() {
    let at = stamp(1_700_000_000_000, WRITER.0);
    let original = state_with(vec![("web", web("nginx:1.27", 3, at))], vec![]);
    // A restored or edited copy: another image under the very same stamp.
    let edited = state_with(vec![("web", web("evil/miner:6.6.6", 3, at))], vec![]);
    let both = assert_one_exchange_repairs(&original, &edited);
    // The larger encoding wins (the longer image name here), and the loser
    // is kept as history, like any overwritten template.
    assert_eq!(body_image(&both), "evil/miner:6.6.6");
    let history = &both.desired.record("web").unwrap().history;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].template.primary_image(), "nginx:1.27");
}

#[test]
fn two_replica_counts_under_one_stamp_converge_and_only_that_register_travels() {
    let at = stamp(1_700_000_000_000, WRITER.0);
    let three = state_with(vec![("web", web("nginx:1.27", 3, at))], vec![]);
    let mut five_record = web("nginx:1.27", 3, at);
    five_record.replicas = Some(register::write(5, at));
    let five = state_with(vec![("web", five_record)], vec![]);
    let both = assert_one_exchange_repairs(&three, &five);
    assert_eq!(both.desired.get("web").unwrap().replicas, 5);
    // Exact: the clashing register is sent, not the equal body beside it.
    let sent = three.missing_for(&five.digest());
    let web = &sent.desired.rcs["web"];
    assert_eq!(web.replicas.as_ref().map(|r| r.val), Some(3));
    assert!(web.body.is_none() && web.deleted.is_none() && web.history.is_empty());
}

#[test]
fn a_clash_beside_a_newer_write_of_the_same_rc_still_takes_one_exchange() {
    let at = stamp(1_700_000_000_000, WRITER.0);
    let later = stamp(1_700_000_000_500, WRITER.0 + 1);
    let original = web("nginx:1.27", 3, at);
    // One side scaled since (a newer replicas stamp), and its body was
    // replaced under the old stamp.
    let mut edited = web("evil/miner:6.6.6", 3, at);
    edited.replicas = Some(register::write(7, later));
    let a = state_with(vec![("web", original)], vec![]);
    let b = state_with(vec![("web", edited)], vec![]);
    let both = assert_one_exchange_repairs(&a, &b);
    assert_eq!(body_image(&both), "evil/miner:6.6.6");
    assert_eq!(both.desired.get("web").unwrap().replicas, 7);
}

#[test]
fn two_node_records_under_one_version_converge_after_one_exchange_whichever_side_starts() {
    let node = NodeId(7);
    let record = |restarts: u32| NodeRecord {
        gc: Default::default(),
        signature: Default::default(),
        version: 4,
        info: node_info("seven"),
        pods: vec![pod_status("web", 0, PodPhase::Running, restarts)],
    };
    let a = state_with(vec![], vec![(node, record(0))]);
    let b = state_with(vec![], vec![(node, record(9))]);
    let both = assert_one_exchange_repairs(&a, &b);
    let kept = both.observed.get(node).unwrap();
    assert_eq!(kept.version, 4);
    assert_eq!(kept.pods[0].restarts, 9, "the larger encoding wins");
}

#[test]
fn clashes_in_both_halves_and_many_rcs_converge_in_one_exchange() {
    let at = |ms| stamp(1_700_000_000_000 + ms, WRITER.0);
    let mut left = Vec::new();
    let mut right = Vec::new();
    let names = ["api", "cache", "db", "web"];
    for (i, name) in names.iter().enumerate() {
        let mine = web("nginx:1.27", 2, at(i as u64));
        let mut theirs = mine.clone();
        match i {
            0 => {
                theirs.body.as_mut().unwrap().val.update_strategy.max_surge =
                    shoal_crdt_state::spec::Allowance::Count(4)
            }
            1 => theirs.deleted = Some(register::write(true, at(1))),
            2 => {} // held alike on both sides
            _ => {
                theirs.body.as_mut().unwrap().val.selector =
                    BTreeMap::from([("app".to_owned(), "zzz".to_owned())]);
            }
        }
        left.push((*name, mine));
        right.push((*name, theirs));
    }
    let nodes = |n: u64, name: &str| {
        (
            NodeId(n),
            NodeRecord {
                gc: Default::default(),
                signature: Default::default(),
                version: 2,
                info: node_info(name),
                pods: Vec::new(),
            },
        )
    };
    let a = state_with(left, vec![nodes(1, "one"), nodes(2, "two")]);
    let b = state_with(right, vec![nodes(1, "one"), nodes(2, "TWO")]);
    assert_one_exchange_repairs(&a, &b);
}
