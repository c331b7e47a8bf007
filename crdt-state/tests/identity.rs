//! Node identity: key bindings (first writer wins, released by a removal)
//! and node records checked against them. The cryptography is the
//! caller's; here a keyed hash stands in for ed25519 (the peer's tests use
//! the real thing), since what is tested is which record is accepted.

mod state_support;

use proptest::prelude::*;
use shoal_crdt_state::identity::{
    self, CONCURRENT_CLAIM_MS, KeyBinding, PublicKey, RecordRejection, RecordSigner,
    RecordVerifier, Signature,
};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::node_decisions::NodeDecision;
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::PodPhase;
use shoal_crdt_state::register;
use shoal_crdt_state::sync::{ClusterState, Digest};
use shoal_crdt_state::wire;
use state_support::{exchange, node_info, pod_status, stamp};

/// A stand-in signer: the "signature" is a hash of key and message.
struct ToyKey(u8);

fn toy_signature(key: &PublicKey, message: &[u8]) -> Signature {
    let mut input = key.0.to_vec();
    input.extend_from_slice(message);
    Signature(xxhash_rust::xxh3::xxh3_128(&input).to_le_bytes().to_vec())
}

impl RecordSigner for ToyKey {
    fn public_key(&self) -> PublicKey {
        PublicKey([self.0; 32])
    }
    fn sign(&self, message: &[u8]) -> Signature {
        toy_signature(&self.public_key(), message)
    }
}

struct ToyVerifier;

impl RecordVerifier for ToyVerifier {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        toy_signature(key, message) == *signature
    }
}

const NODE: NodeId = NodeId(7);

fn binding(key: u8, ms: u64, after: Option<u64>) -> KeyBinding {
    KeyBinding {
        key: PublicKey([key; 32]),
        stamp: stamp(ms, u64::from(key)),
        after: after.map(|ms| stamp(ms, 99)),
    }
}

/// A state in which `NODE` is bound to `key` and has published a signed
/// record with one pod.
fn published(key: &ToyKey) -> ClusterState {
    let mut state = ClusterState::new();
    state
        .desired
        .bind_key(NODE, key.public_key(), stamp(1_000, 7));
    state.observed.set_node_info(NODE, node_info("n7"));
    state
        .observed
        .set_pod_status(NODE, pod_status("web", 0, PodPhase::Running, 0))
        .unwrap();
    state.observed.sign(NODE, key);
    state
}

fn check(state: &ClusterState, node: NodeId, from: &ClusterState) -> Result<(), RecordRejection> {
    let record = from.observed.get(NODE).expect("a record");
    identity::check_record(
        state.desired.nodes().bound_key(node),
        node,
        record,
        &ToyVerifier,
    )
}

#[test]
fn a_record_signed_by_the_bound_key_is_accepted() {
    let state = published(&ToyKey(1));
    assert_eq!(check(&state, NODE, &state), Ok(()));
}

#[test]
fn a_record_whose_body_changed_on_the_way_is_rejected() {
    let state = published(&ToyKey(1));
    let mut relayed = state.observed.get(NODE).unwrap().clone();
    relayed.pods[0].ready = !relayed.pods[0].ready;
    let verdict = identity::check_record(
        state.desired.nodes().bound_key(NODE),
        NODE,
        &relayed,
        &ToyVerifier,
    );
    assert!(
        matches!(verdict, Err(RecordRejection::BadSignature { .. })),
        "{verdict:?}"
    );
}

#[test]
fn a_record_signed_by_another_key_is_rejected() {
    let state = published(&ToyKey(1));
    let forged = published(&ToyKey(2));
    assert!(matches!(
        check(&state, NODE, &forged),
        Err(RecordRejection::BadSignature { .. })
    ));
}

#[test]
fn a_record_replayed_under_another_node_id_is_rejected() {
    let mut state = published(&ToyKey(1));
    // Node 8 bound to the same key: the signature covers the node id.
    state
        .desired
        .bind_key(NodeId(8), ToyKey(1).public_key(), stamp(1_000, 8));
    assert!(matches!(
        check(&state, NodeId(8), &state),
        Err(RecordRejection::BadSignature { .. })
    ));
}

#[test]
fn a_record_of_an_unbound_node_is_rejected() {
    let signed = published(&ToyKey(1));
    assert_eq!(
        check(&ClusterState::new(), NODE, &signed),
        Err(RecordRejection::Unbound { node: NODE })
    );
}

#[test]
fn signing_again_after_a_write_is_what_makes_the_record_valid() {
    let key = ToyKey(1);
    let mut state = published(&key);
    state
        .observed
        .set_pod_status(NODE, pod_status("web", 1, PodPhase::Running, 0))
        .unwrap();
    assert!(
        check(&state, NODE, &state).is_err(),
        "the old signature no longer covers it"
    );
    let delta = state.observed.sign(NODE, &key);
    assert_eq!(delta.nodes[&NODE], *state.observed.get(NODE).unwrap());
    assert_eq!(check(&state, NODE, &state), Ok(()));
}

#[test]
fn concurrent_first_claims_settle_on_the_first_writer_whichever_arrives_first() {
    let first = binding(2, 1_000, None);
    let second = binding(1, 1_500, None);
    for order in [[first, second], [second, first]] {
        let mut held = None;
        for b in order {
            identity::join(&mut held, Some(b));
        }
        assert_eq!(held, Some(first));
    }
    // Equal stamps: the smaller key, on every peer.
    let (a, b) = (binding(3, 1_000, None), binding(4, 1_000, None));
    let (mut x, mut y) = (Some(a), Some(b));
    identity::join(&mut x, Some(b));
    identity::join(&mut y, Some(a));
    assert_eq!(x, y);
}

/// The admission rule at a peer that does not see the node live (the
/// cases where it does are in `identity_admission.rs`).
fn admits(
    held: Option<&KeyBinding>,
    removals: &[Option<&register::Reg<bool>>],
    incoming: &KeyBinding,
) -> bool {
    // The one held, the one arriving.
    let at = |i: usize| removals.get(i).copied().flatten();
    identity::admits_binding(held, at(0), at(1), incoming, false).is_ok()
}

#[test]
fn a_backdated_claim_on_an_established_id_is_refused_a_racing_one_is_not() {
    let held = binding(1, 10 * CONCURRENT_CLAIM_MS, None);
    let backdated = binding(2, 1_000, None);
    assert!(!admits(Some(&held), &[], &backdated));
    let racing = binding(2, 10 * CONCURRENT_CLAIM_MS - 5_000, None);
    assert!(admits(Some(&held), &[], &racing));
    assert!(admits(Some(&held), &[], &binding(1, 1, None)), "same key");
    assert!(admits(None, &[], &backdated), "nothing held yet");
}

#[test]
fn a_later_release_is_taken_only_with_the_removal_it_names() {
    let held = binding(1, 10_000, None);
    // A release far in the future, naming no removal: it would win the
    // join and take the id over.
    let crafted = binding(2, 20_000, Some(u64::MAX / 2));
    assert!(!admits(Some(&held), &[], &crafted));
    let other_removal = register::write(true, stamp(15_000, 99));
    assert!(!admits(Some(&held), &[Some(&other_removal)], &crafted));
    // The same key too: its binding would outlive every later delete.
    let immune = binding(1, 20_000, Some(u64::MAX / 2));
    assert!(!admits(Some(&held), &[], &immune));
    // The same key after a release a take-back has overwritten since.
    let taken_back_later = register::write(false, stamp(16_000, 1));
    let same_key_rebound = binding(1, 20_000, Some(15_000));
    assert!(admits(
        Some(&held),
        &[Some(&taken_back_later)],
        &same_key_rebound
    ));

    // The release this peer holds, or that arrives with the binding.
    let removal = register::write(true, stamp(15_000, 99));
    let rebound = binding(2, 20_000, Some(15_000));
    assert!(admits(Some(&held), &[Some(&removal), None], &rebound));
    assert!(admits(Some(&held), &[None, Some(&removal)], &rebound));
    // A take-back at that stamp is no removal.
    let taken_back = register::write(false, stamp(15_000, 99));
    assert!(!admits(Some(&held), &[Some(&taken_back)], &rebound));
    // An earlier release than the held one loses the join anyway.
    let newer_held = binding(3, 30_000, Some(25_000));
    assert!(admits(Some(&newer_held), &[], &rebound));
    assert!(admits(Some(&newer_held), &[], &held));
}

#[test]
fn a_claim_stamped_just_before_the_held_one_wins_the_join_where_the_node_is_not_live() {
    // What README documents for a peer that does not see the node live:
    // within CONCURRENT_CLAIM_MS a backdated claim is taken for a race of
    // first starts, and the first writer wins.
    let held = binding(1, 10 * CONCURRENT_CLAIM_MS, None);
    let just_before = binding(2, 10 * CONCURRENT_CLAIM_MS - 1, None);
    assert!(admits(Some(&held), &[], &just_before));
    let mut joined = Some(held);
    identity::join(&mut joined, Some(just_before));
    assert_eq!(joined, Some(just_before));
}

#[test]
fn a_removal_releases_the_id_and_a_binding_after_it_wins() {
    let mut state = ClusterState::new();
    state
        .desired
        .bind_key(NODE, PublicKey([1; 32]), stamp(1_000, 7));
    state.remove_node(NODE, true, stamp(5_000, 1));
    assert_eq!(state.desired.nodes().bound_key(NODE), None, "released");
    let rebound = state
        .desired
        .bind_key(NODE, PublicKey([2; 32]), stamp(6_000, 7));
    let after = rebound.nodes[&NODE].key.unwrap().after;
    assert_eq!(after, Some(stamp(5_000, 1)));
    // A peer that still held the old binding takes the new one.
    let mut other = ClusterState::new();
    other
        .desired
        .bind_key(NODE, PublicKey([1; 32]), stamp(1_000, 7));
    other.merge_delta(state.to_delta());
    assert_eq!(
        other.desired.nodes().bound_key(NODE).map(|b| b.key),
        Some(PublicKey([2; 32]))
    );
}

#[test]
fn a_node_taken_back_keeps_its_binding() {
    let mut state = ClusterState::new();
    state
        .desired
        .bind_key(NODE, PublicKey([1; 32]), stamp(1_000, 7));
    state.remove_node(NODE, true, stamp(5_000, 1));
    state.remove_node(NODE, false, stamp(6_000, 7));
    assert_eq!(
        state.desired.nodes().bound_key(NODE).map(|b| b.key),
        Some(PublicKey([1; 32]))
    );
}

#[test]
fn bindings_travel_in_digests_and_anti_entropy() {
    let mut a = published(&ToyKey(1));
    let mut b = ClusterState::new();
    b.desired
        .bind_key(NODE, PublicKey([9; 32]), stamp(1_200, 9));
    let digest = a.digest();
    let decoded: Digest =
        wire::decode(&wire::encode(&digest).unwrap(), wire::MAX_MESSAGE_BYTES).unwrap();
    assert_eq!(decoded, digest);
    exchange(&mut a, &mut b);
    assert_eq!(
        a.desired.nodes().bound_key(NODE),
        b.desired.nodes().bound_key(NODE)
    );
    assert_eq!(
        a.desired.nodes().bound_key(NODE).map(|b| b.key),
        Some(ToyKey(1).public_key()),
        "the first writer"
    );
    assert_eq!(a.missing_for(&b.digest()).desired.nodes, Default::default());
}

#[test]
fn a_signed_record_survives_the_wire_and_checks_on_the_other_side() {
    let state = published(&ToyKey(1));
    let bytes = wire::encode(&state.to_delta()).unwrap();
    let delta: shoal_crdt_state::Delta = wire::decode(&bytes, wire::MAX_MESSAGE_BYTES).unwrap();
    let mut other = ClusterState::new();
    other.merge_delta(delta);
    assert_eq!(check(&other, NODE, &other), Ok(()));
    let unsigned = ObservedState::new();
    assert!(unsigned.get(NODE).is_none());
}

fn arb_binding() -> impl Strategy<Value = KeyBinding> {
    (1u8..4, 0u64..4, prop::option::of(0u64..3))
        .prop_map(|(key, ms, after)| binding(key, ms, after))
}

proptest! {
    /// The join of bindings is a join: any order, any grouping, repeats.
    #[test]
    fn binding_join_is_commutative_associative_idempotent(
        bindings in prop::collection::vec(arb_binding(), 1..6),
        seed in any::<u64>(),
    ) {
        let fold = |order: &[KeyBinding]| {
            let mut held = None;
            for b in order {
                identity::join(&mut held, Some(*b));
            }
            held
        };
        let mut shuffled = bindings.clone();
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.rotate_left(i as u32) as usize) % n;
            shuffled.swap(i, j);
        }
        let mut doubled = bindings.clone();
        doubled.extend(bindings.iter().copied());
        prop_assert_eq!(fold(&bindings), fold(&shuffled));
        prop_assert_eq!(fold(&bindings), fold(&doubled));
        // Through NodeDecision's merge too.
        let mut a = NodeDecision::default();
        for b in &bindings {
            a.merge(NodeDecision { key: Some(*b), ..NodeDecision::default() });
        }
        prop_assert_eq!(a.key, fold(&bindings));
    }
}
