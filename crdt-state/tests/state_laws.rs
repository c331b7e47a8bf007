//! CRDT laws, checked with proptest on states built two ways:
//! - realistic: peers with their own clocks issue random commands and pull
//!   from each other at random;
//! - adversarial: records with hand-picked clashing stamps and versions
//!   (what a buggy or hostile peer could send), which must still converge.

mod state_support;

use std::collections::BTreeMap;

use proptest::prelude::*;
use shoal_crdt_state::desired::{DesiredDelta, DesiredState, RcBody, RcRecord, Revision};
use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::{NodeRecord, ObservedDelta, ObservedState};
use shoal_crdt_state::pod::PodPhase;
use shoal_crdt_state::register;
use shoal_crdt_state::service::{ServiceBody, ServicePort, ServiceRecord, ServiceType, TargetPort};
use shoal_crdt_state::spec::Protocol;
use shoal_crdt_state::sync::{ClusterState, Delta};
use shoal_crdt_state::wire;
use state_support::{
    IMAGES, NAMES, World, arb_steps, exchange, node_info, pod_status, spec, template,
};

fn join<T: Clone>(a: &T, b: &T, merge: impl Fn(&mut T, &T)) -> T {
    let mut out = a.clone();
    merge(&mut out, b);
    out
}

fn check_laws<T: Clone + PartialEq + std::fmt::Debug>(
    a: &T,
    b: &T,
    c: &T,
    merge: impl Fn(&mut T, &T) + Copy,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(join(a, b, merge), join(b, a, merge), "commutative");
    prop_assert_eq!(
        join(&join(a, b, merge), c, merge),
        join(a, &join(b, c, merge), merge),
        "associative"
    );
    prop_assert_eq!(&join(a, a, merge), a, "idempotent");
    let abc = join(&join(a, b, merge), c, merge);
    prop_assert_eq!(join(&abc, b, merge), abc, "absorbs a part already merged");
    Ok(())
}

// ---- adversarial records ----

fn arb_stamp() -> impl Strategy<Value = Hlc> {
    // Few values on purpose: equal stamps with different values happen often.
    (0u64..3, 0u64..2).prop_map(|(ms, n)| Hlc::new(ms, 0, NodeId(n)))
}

fn arb_body() -> impl Strategy<Value = RcBody> {
    // Selector and template vary independently, so the body's order and its
    // template's order disagree (the case where a careless tie-break diverges).
    (0..2usize, 0..IMAGES.len(), 0u32..2, 0u64..3).prop_map(|(sel, image, surge, revision)| {
        let mut body = RcBody::of(&spec("web", IMAGES[image], 1));
        body.selector = BTreeMap::from([("tier".to_owned(), NAMES[sel].to_owned())]);
        body.update_strategy.max_surge = shoal_crdt_state::spec::Allowance::Count(surge);
        body.revision = revision;
        body
    })
}

fn arb_record() -> impl Strategy<Value = RcRecord> {
    (
        proptest::option::of((arb_body(), arb_stamp())),
        proptest::option::of((0u32..3, arb_stamp())),
        proptest::option::of((any::<bool>(), arb_stamp())),
        proptest::option::of((any::<bool>(), arb_stamp())),
        prop::collection::vec((arb_stamp(), 0..IMAGES.len(), 0u64..3), 0..14),
    )
        .prop_map(|(body, replicas, deleted, paused, history)| RcRecord {
            body: body.map(|(v, s)| register::write(v, s)),
            replicas: replicas.map(|(v, s)| register::write(v, s)),
            deleted: deleted.map(|(v, s)| register::write(v, s)),
            paused: paused.map(|(v, s)| register::write(v, s)),
            history: history
                .into_iter()
                .map(|(stamp, i, revision)| Revision {
                    stamp,
                    template: template("web", IMAGES[i]),
                    revision,
                })
                .collect(),
        })
}

/// Service bodies that differ in selector and port, so equal stamps often
/// carry different bodies.
fn arb_service_body() -> impl Strategy<Value = ServiceBody> {
    (0..2usize, 0u16..2).prop_map(|(sel, port)| ServiceBody {
        selector: BTreeMap::from([("tier".to_owned(), NAMES[sel].to_owned())]),
        ports: vec![ServicePort {
            name: None,
            port: 8080 + port,
            target_port: TargetPort::Number(80),
            protocol: Protocol::Tcp,
            node_port: None,
        }],
        service_type: ServiceType::ClusterIP,
        proxy_protocol: Default::default(),
        last_applied: None,
    })
}

fn arb_service_record() -> impl Strategy<Value = ServiceRecord> {
    (
        proptest::option::of((arb_service_body(), arb_stamp())),
        proptest::option::of((any::<bool>(), arb_stamp())),
    )
        .prop_map(|(body, deleted)| ServiceRecord {
            body: body.map(|(v, s)| register::write(v, s)),
            deleted: deleted.map(|(v, s)| register::write(v, s)),
        })
}

fn arb_desired() -> impl Strategy<Value = DesiredState> {
    let names = || prop::sample::select(&NAMES[..2]);
    (
        prop::collection::btree_map(names(), arb_record(), 0..3),
        prop::collection::btree_map(names(), arb_service_record(), 0..3),
    )
        .prop_map(|(rcs, services)| {
            let mut state = DesiredState::new();
            state.merge_delta(DesiredDelta {
                rcs: rcs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                services: services
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect(),
                ..DesiredDelta::default()
            });
            state
        })
}

fn arb_node_record() -> impl Strategy<Value = NodeRecord> {
    (
        0u64..3,
        0u8..3,
        prop::collection::vec((0u32..3, 0u32..2), 0..4),
    )
        .prop_map(|(version, name, pods)| NodeRecord {
            gc: Default::default(),
            signature: Default::default(),
            version,
            info: node_info(&format!("n{name}")),
            pods: pods
                .into_iter()
                .map(|(i, r)| pod_status("web", i, PodPhase::Running, r))
                .collect(),
        })
}

fn arb_observed() -> impl Strategy<Value = ObservedState> {
    prop::collection::btree_map((0u64..3).prop_map(NodeId), arb_node_record(), 0..3).prop_map(
        |nodes| {
            let mut state = ObservedState::new();
            state.merge_delta(ObservedDelta { nodes });
            state
        },
    )
}

proptest! {
    // Cheap cases, and the bad interleavings are rare: run many.
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn desired_merge_is_a_join_even_with_clashing_stamps(
        a in arb_desired(), b in arb_desired(), c in arb_desired()
    ) {
        check_laws(&a, &b, &c, DesiredState::merge)?;
    }

    #[test]
    fn observed_merge_is_a_join_even_with_clashing_versions(
        a in arb_observed(), b in arb_observed(), c in arb_observed()
    ) {
        check_laws(&a, &b, &c, ObservedState::merge)?;
    }
}

fn arb_cluster() -> impl Strategy<Value = ClusterState> {
    (arb_desired(), arb_observed())
        .prop_map(|(desired, observed)| ClusterState { desired, observed })
}

/// Peers `i` and `j` run one anti-entropy round, `i` starting it.
fn exchange_between(peers: &mut [ClusterState; 3], i: usize, j: usize) {
    let (mut a, mut b) = (peers[j].clone(), peers[i].clone());
    exchange(&mut a, &mut b);
    (peers[j], peers[i]) = (a, b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn clashing_states_converge_through_digest_exchanges_in_any_order(
        states in prop::array::uniform3(arb_cluster()),
        rounds in prop::collection::vec((0..3usize, 0..3usize), 0..12),
    ) {
        let everything = join(
            &join(&states[0], &states[1], |x, y| { x.merge(y); }),
            &states[2],
            |x, y| { x.merge(y); },
        );
        let mut peers = states;
        // Random rounds, pairs repeated and in both directions: each one
        // leaves its two peers equal to the join of what they held.
        for (i, j) in rounds.into_iter().filter(|(i, j)| i != j) {
            let expected = join(&peers[i], &peers[j], |x, y| { x.merge(y); });
            exchange_between(&mut peers, i, j);
            prop_assert_eq!(&peers[i], &expected);
            prop_assert_eq!(&peers[j], &expected);
        }
        // Rounds that connect everyone: every peer holds the join of all.
        for (i, j) in [(0, 1), (2, 1), (1, 0)] {
            exchange_between(&mut peers, i, j);
        }
        for peer in &peers {
            prop_assert_eq!(peer, &everything);
            prop_assert!(peer.missing_for(&peers[0].digest()).is_empty());
            prop_assert!(peers[0].missing_for(&peer.digest()).is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn desired_merge_is_a_join_for_real_peers(steps in arb_steps(3, 60)) {
        let world = World::run(3, &steps);
        let [a, b, c] = [0, 1, 2].map(|i| world.peers[i].state.desired.clone());
        check_laws(&a, &b, &c, DesiredState::merge)?;
    }

    #[test]
    fn observed_merge_is_a_join_for_real_peers(steps in arb_steps(3, 60)) {
        let world = World::run(3, &steps);
        let [a, b, c] = [0, 1, 2].map(|i| world.peers[i].state.observed.clone());
        check_laws(&a, &b, &c, ObservedState::merge)?;
    }

    #[test]
    fn deltas_in_any_order_with_duplicates_converge(
        steps in arb_steps(3, 60),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
        seed in any::<u64>(),
    ) {
        let world = World::run(3, &steps);
        let deltas = &world.deltas;
        // Every delta at least once, in a seed-shuffled order, plus duplicates.
        let mut sequence: Vec<usize> = (0..deltas.len()).collect();
        let mut x = seed | 1;
        for i in (1..sequence.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            sequence.swap(i, (x % (i as u64 + 1)) as usize);
        }
        if !deltas.is_empty() {
            for idx in &order {
                let at = idx.index(sequence.len() + 1);
                sequence.insert(at, idx.index(deltas.len()));
            }
        }
        let mut in_order = ClusterState::new();
        for d in deltas {
            in_order.merge_delta(d.clone());
        }
        let mut shuffled = ClusterState::new();
        for &i in &sequence {
            shuffled.merge_delta(deltas[i].clone());
        }
        prop_assert_eq!(&shuffled, &in_order);
        // The deltas carry everything the peers wrote: merging all peers agrees.
        let mut everything = ClusterState::new();
        for peer in &world.peers {
            everything.merge(&peer.state);
        }
        prop_assert_eq!(&everything, &in_order);
        // Batched into one delta first, they still give the same state.
        let mut batch = Delta::default();
        for &i in sequence.iter().rev() {
            batch.merge(deltas[i].clone());
        }
        let mut batched = ClusterState::new();
        batched.merge_delta(batch);
        prop_assert_eq!(&batched, &in_order);
    }

    #[test]
    fn one_digest_exchange_makes_two_peers_equal(steps in arb_steps(3, 60)) {
        let world = World::run(3, &steps);
        let mut a = world.peers[0].state.clone();
        let mut b = world.peers[1].state.clone();
        let expected = join(&a, &b, |x, y| { x.merge(y); });
        exchange(&mut a, &mut b);
        prop_assert_eq!(&a, &expected);
        prop_assert_eq!(&b, &expected);
        // Once equal, nothing is missing either way.
        prop_assert!(a.missing_for(&b.digest()).is_empty());
        prop_assert!(b.missing_for(&a.digest()).is_empty());
    }

    #[test]
    fn cached_digest_entries_always_match_the_records(steps in arb_steps(3, 60)) {
        // Digests were built along the way (every pull), then records
        // changed: a state decoded afresh, with nothing cached, must give
        // the same digest.
        let world = World::run(3, &steps);
        for peer in &world.peers {
            let bytes = wire::encode(&peer.state).unwrap();
            let fresh: ClusterState = wire::decode(&bytes, wire::MAX_MESSAGE_BYTES).unwrap();
            prop_assert_eq!(peer.state.digest(), fresh.digest());
        }
    }

    #[test]
    fn a_copy_of_a_state_never_changes_when_the_original_does(steps in arb_steps(3, 60)) {
        // Copies share their records with the original (copy-on-write): a
        // copy taken before any step (a snapshot for readers, or for the
        // disk) must keep its content, its encoding and a digest that
        // matches it, whatever the original goes through afterwards.
        let mut world = World::new(3);
        let mut copies: Vec<(ClusterState, Vec<u8>)> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let state = &world.peers[i % 3].state;
            if i % 2 == 0 {
                let _ = state.digest(); // cache entries, then share them
            }
            copies.push((state.clone(), wire::encode(state).unwrap()));
            world.step(step);
        }
        for (copy, bytes) in &copies {
            prop_assert_eq!(&wire::encode(copy).unwrap(), bytes);
            let fresh: ClusterState = wire::decode(bytes, wire::MAX_MESSAGE_BYTES).unwrap();
            prop_assert_eq!(copy.digest(), fresh.digest());
        }
        for peer in &world.peers {
            let fresh: ClusterState =
                wire::decode(&wire::encode(&peer.state).unwrap(), wire::MAX_MESSAGE_BYTES).unwrap();
            prop_assert_eq!(peer.state.digest(), fresh.digest());
        }
    }

    #[test]
    fn missing_for_sends_only_what_is_lacking_older_or_different(steps in arb_steps(3, 60)) {
        let world = World::run(3, &steps);
        let a = &world.peers[0].state;
        let b = &world.peers[1].state;
        let delta = a.missing_for(&b.digest());
        let (a_digest, b_digest) = (a.digest(), b.digest());
        for (name, rec) in &delta.desired.rcs {
            let theirs = b_digest.desired.get(name).copied().unwrap_or_default();
            let ours = a_digest.desired[name];
            // Sent when newer, or under the same stamp with another value.
            let wanted = |mine: Option<Hlc>, other: Option<Hlc>, differs: bool| {
                mine > other || (mine == other && differs)
            };
            if let Some(reg) = &rec.body {
                // Sent when different: an older body becomes history on their side.
                prop_assert!(
                    Some(reg.marker) != theirs.body || ours.content.body != theirs.content.body
                );
            }
            if let Some(reg) = &rec.replicas {
                let differs = reg.val != theirs.content.replicas;
                prop_assert!(wanted(Some(reg.marker), theirs.replicas, differs));
            }
            if let Some(reg) = &rec.deleted {
                let differs = reg.val != theirs.content.deleted;
                prop_assert!(wanted(Some(reg.marker), theirs.deleted, differs));
            }
        }
        for (name, rec) in &delta.desired.services {
            let theirs = b_digest.services.get(name).copied().unwrap_or_default();
            let ours = a_digest.services[name];
            if rec.body.is_some() {
                prop_assert!(
                    ours.body > theirs.body
                        || (ours.body == theirs.body && ours.body_hash != theirs.body_hash)
                );
            }
            if rec.deleted.is_some() {
                prop_assert!(
                    ours.deleted > theirs.deleted
                        || (ours.deleted == theirs.deleted && ours.deleted_flag != theirs.deleted_flag)
                );
            }
        }
        for (node, rec) in &delta.observed.nodes {
            let ours = a_digest.observed[node];
            let wanted = b_digest.observed.get(node).is_none_or(|theirs| {
                theirs.version < rec.version
                    || (theirs.version == rec.version && theirs.content != ours.content)
            });
            prop_assert!(wanted);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The anti-entropy shortcut: a peer whose digest holds all of the
    /// other's does not ask; that must never leave it lacking anything.
    #[test]
    fn holding_all_of_a_digest_means_nothing_is_missing(
        states in prop::array::uniform2(arb_cluster()),
        steps in arb_steps(3, 60),
    ) {
        let world = World::run(3, &steps);
        let realistic = [&world.peers[0].state, &world.peers[1].state, &world.peers[2].state];
        let realistic_pairs = [(0, 1), (1, 0), (0, 2), (2, 1)].map(|(i, j)| (realistic[i], realistic[j]));
        let clashing_pairs = [(&states[0], &states[1]), (&states[1], &states[0])];
        for (a, b) in clashing_pairs.into_iter().chain(realistic_pairs) {
            if a.digest().holds_all_of(&b.digest()) {
                prop_assert!(b.missing_for(&a.digest()).is_empty());
            }
        }
        // Single writers, no clashes: once `a` has merged `b`, and their
        // desired states are equal, `a` holds all of `b` (newer records).
        for (a, b) in realistic_pairs {
            let mut merged = a.clone();
            merged.merge(b);
            if merged.desired == b.desired {
                prop_assert!(merged.digest().holds_all_of(&b.digest()));
            }
        }
    }
}

#[test]
fn a_peer_ahead_on_node_records_holds_all_of_one_behind_not_the_reverse() {
    let node = NodeId(7);
    let mut behind = ClusterState::new();
    behind.observed.set_node_info(node, node_info("seven"));
    let mut ahead = behind.clone();
    ahead
        .observed
        .set_pod_status(node, pod_status("web", 0, PodPhase::Running, 0))
        .unwrap();
    assert!(ahead.digest().holds_all_of(&behind.digest()));
    assert!(!behind.digest().holds_all_of(&ahead.digest()));
    // The same version with other content: each lacks the other's.
    let mut clash = behind.clone();
    clash
        .observed
        .set_pod_status(node, pod_status("db", 0, PodPhase::Running, 0))
        .unwrap();
    assert!(!clash.digest().holds_all_of(&ahead.digest()));
    assert!(!ahead.digest().holds_all_of(&clash.digest()));
    // A record the other has and we lack entirely.
    assert!(!ClusterState::new().digest().holds_all_of(&behind.digest()));
    // A later collection horizon of ours is something they would take.
    let mut collected = ahead.digest();
    collected.collected_below_ms = 1;
    assert!(!collected.holds_all_of(&ahead.digest()));
    assert!(ahead.digest().holds_all_of(&collected));
}

#[test]
fn adversarial_clash_keeps_every_loser_in_history_in_any_order() {
    let at = |ms, node| Hlc::new(ms, 0, NodeId(node));
    let body = |image: &str, sel: &str| {
        let mut b = RcBody::of(&spec("web", image, 1));
        b.selector = BTreeMap::from([("app".to_owned(), sel.to_owned())]);
        b
    };
    let rec = |b: RcBody, s: Hlc| RcRecord {
        body: Some(register::write(b, s)),
        ..RcRecord::default()
    };
    // Two different bodies share a stamp; a third is later.
    let x = rec(body("a:1", "zzz"), at(5, 1));
    let y = rec(body("z:9", "aaa"), at(5, 1));
    let z = rec(body("m:5", "web"), at(7, 2));
    let states: Vec<DesiredState> = [x, y, z]
        .into_iter()
        .map(|r| {
            let mut s = DesiredState::new();
            s.merge_delta(DesiredDelta {
                rcs: BTreeMap::from([("web".to_owned(), r)]),
                ..DesiredDelta::default()
            });
            s
        })
        .collect();
    let left = join(
        &join(&states[0], &states[1], DesiredState::merge),
        &states[2],
        DesiredState::merge,
    );
    let right = join(
        &states[0],
        &join(&states[1], &states[2], DesiredState::merge),
        DesiredState::merge,
    );
    assert_eq!(left, right);
    let web = left.record("web").unwrap();
    assert_eq!(
        web.body.as_ref().unwrap().val.template.primary_image(),
        "m:5"
    );
    let history: Vec<&str> = web
        .history
        .iter()
        .map(|r| r.template.primary_image())
        .collect();
    assert_eq!(
        history,
        ["z:9"],
        "one entry per stamp, the larger template wins the clash"
    );
}
