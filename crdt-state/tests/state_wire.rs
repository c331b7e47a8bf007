//! The wire envelope: round trips, and hostile input always rejected with a reason.

mod state_support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::sync::{ClusterState, Delta, Digest};
use shoal_crdt_state::wire::{self, MAX_MESSAGE_BYTES, WIRE_VERSION, WireError};
use state_support::{World, arb_steps, spec, stamp};

const LIMIT: usize = 1 << 20;

fn sample_state() -> ClusterState {
    let mut steps = Vec::new();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..4 {
        steps.extend(arb_steps(3, 40).new_tree(&mut runner).unwrap().current());
    }
    let world = World::run(3, &steps);
    let mut state = world.peers[0].state.clone();
    for p in &world.peers[1..] {
        state.merge(&p.state);
    }
    state
        .desired
        .apply(&spec("extra", "nginx:1.27", 3), stamp(u64::MAX / 4, 9));
    state
}

#[test]
fn state_digest_and_delta_round_trip() {
    let state = sample_state();
    let bytes = wire::encode(&state).unwrap();
    assert_eq!(bytes[0], WIRE_VERSION);
    assert_eq!(wire::decode::<ClusterState>(&bytes, LIMIT).unwrap(), state);
    let digest = state.digest();
    let bytes = wire::encode(&digest).unwrap();
    assert_eq!(wire::decode::<Digest>(&bytes, LIMIT).unwrap(), digest);
    let delta = state.to_delta();
    let bytes = wire::encode(&delta).unwrap();
    assert_eq!(wire::decode::<Delta>(&bytes, LIMIT).unwrap(), delta);
}

#[test]
fn unknown_version_is_rejected_with_an_upgrade_hint() {
    let mut bytes = wire::encode(&sample_state()).unwrap();
    bytes[0] = WIRE_VERSION + 1;
    let err = wire::decode::<ClusterState>(&bytes, LIMIT).unwrap_err();
    assert_eq!(
        err,
        WireError::UnsupportedVersion {
            found: WIRE_VERSION + 1,
            supported: WIRE_VERSION
        }
    );
    assert!(err.to_string().contains("same Shoal version"), "{err}");
}

#[test]
fn empty_oversized_and_trailing_input_is_rejected() {
    assert_eq!(wire::decode::<u32>(&[], LIMIT), Err(WireError::Empty));
    let bytes = wire::encode(&sample_state()).unwrap();
    assert_eq!(
        wire::decode::<ClusterState>(&bytes, 100),
        Err(WireError::TooLarge {
            len: bytes.len(),
            limit: 100
        })
    );
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0, 0, 7]);
    assert_eq!(
        wire::decode::<ClusterState>(&padded, LIMIT),
        Err(WireError::TrailingBytes { extra: 3 })
    );
    // The network's one limit holds whatever the payload declares.
    let huge = vec![WIRE_VERSION; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        wire::decode::<Vec<u8>>(&huge, MAX_MESSAGE_BYTES),
        Err(WireError::TooLarge {
            limit: MAX_MESSAGE_BYTES,
            ..
        })
    ));
    assert_eq!(wire::encoded_len(&sample_state()), bytes.len());
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error() {
    let bytes = wire::encode(&sample_state()).unwrap();
    assert!(bytes.len() > 1000, "sample too small to be a good test");
    for len in 0..bytes.len() {
        let result = wire::decode::<ClusterState>(&bytes[..len], LIMIT);
        assert!(result.is_err(), "truncation to {len} bytes decoded");
    }
}

#[test]
fn huge_declared_lengths_fail_without_allocating_them() {
    // Version, then a varint claiming u64::MAX elements / bytes, then nothing.
    let mut claim = vec![WIRE_VERSION, 0xFF];
    claim.extend_from_slice(&u64::MAX.to_le_bytes());
    for bytes in [claim.clone(), [claim.clone(), vec![1, 2, 3]].concat()] {
        let err = wire::decode::<Vec<String>>(&bytes, LIMIT).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{err}");
        let err = wire::decode::<String>(&bytes, LIMIT).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{err}");
        assert!(wire::decode::<ClusterState>(&bytes, LIMIT).is_err());
        assert!(wire::decode::<Digest>(&bytes, LIMIT).is_err());
    }
    // 2^32 - 1 elements declared with a 4-byte varint.
    let bytes = [WIRE_VERSION, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(wire::decode::<Vec<u64>>(&bytes, LIMIT).is_err());
    assert!(wire::decode::<Delta>(&bytes, LIMIT).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = vec![WIRE_VERSION];
        bytes.extend_from_slice(&body);
        // Errors are expected; a panic fails the test. Anything that does
        // decode must survive its own round trip.
        if let Ok(state) = wire::decode::<ClusterState>(&bytes, LIMIT) {
            let again = wire::encode(&state).unwrap();
            prop_assert_eq!(wire::decode::<ClusterState>(&again, LIMIT).unwrap(), state);
        }
        let _ = wire::decode::<Digest>(&bytes, LIMIT);
        let _ = wire::decode::<Delta>(&bytes, LIMIT);
        let _ = wire::decode::<ClusterState>(&body, LIMIT);
    }

    #[test]
    fn flipped_bytes_in_a_valid_message_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = wire::encode(&sample_state()).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = wire::decode::<ClusterState>(&bytes, LIMIT);
    }
}

/// Per RC: name, stamps (body, replicas, deleted, paused), history hash,
/// (body hash, replicas, deleted, paused).
type RawRc = (
    String,
    [Option<(u64, u32, u32)>; 4],
    u64,
    ([u8; 8], u32, bool, bool),
);

type RawDecision = (
    NodeId,
    [Option<(u64, u32, u32)>; 2],
    [bool; 2],
    Option<[u8; 8]>,
    Option<u64>,
);

type RawDigest = (
    Vec<NodeId>,
    u64,
    Vec<RawRc>,
    Vec<RawDecision>,
    Vec<(NodeId, u64, [u8; 8])>,
    Vec<RawService>,
    Vec<(String, shoal_crdt_state::api_tokens::TokenStamps)>,
    Option<Hlc>,
    u64,
);

type RawService = (String, [Option<(u64, u32, u32)>; 2], [u8; 8], bool);

const NO_CONTENT: ([u8; 8], u32, bool, bool) = ([0; 8], 0, false, false);

#[test]
fn digest_travels_compactly_and_hostile_digests_are_rejected() {
    let state = sample_state();
    let digest = state.digest();
    let compact = wire::encode(&digest).unwrap();
    // The same maps with full stamps, as a plain encoding would send them.
    // Stamps shrink to about a third; content hashes cost the same in both.
    let plain = wire::encode(&(&digest.desired, &digest.observed, &digest.services)).unwrap();
    assert!(
        compact.len() * 4 < plain.len() * 3,
        "compact {} vs plain {}",
        compact.len(),
        plain.len()
    );
    // A digest whose stamp names a writer that is not listed.
    let bad_writer: RawDigest = (
        vec![NodeId(7)],
        1_000,
        vec![(
            "web".to_owned(),
            [Some((0, 0, 3)), None, None, None],
            0,
            NO_CONTENT,
        )],
        vec![],
        vec![],
        vec![],
        vec![],
        None,
        0,
    );
    let err = wire::decode::<Digest>(&wire::encode(&bad_writer).unwrap(), LIMIT).unwrap_err();
    assert!(err.to_string().contains("writer #3"), "{err}");
    // A digest whose offset runs past the millisecond range.
    let overflow: RawDigest = (
        vec![NodeId(7)],
        u64::MAX,
        vec![(
            "web".to_owned(),
            [None, Some((1, 0, 0)), None, None],
            0,
            NO_CONTENT,
        )],
        vec![],
        vec![],
        vec![],
        vec![],
        None,
        0,
    );
    let err = wire::decode::<Digest>(&wire::encode(&overflow).unwrap(), LIMIT).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
    // A well-formed hand-made digest reads back as the stamps and contents it names.
    let good: RawDigest = (
        vec![NodeId(7), NodeId(9)],
        1_000,
        vec![(
            "web".to_owned(),
            [Some((5, 2, 1)), Some((0, 0, 0)), None, Some((3, 0, 1))],
            42,
            (7u64.to_le_bytes(), 3, false, true),
        )],
        vec![(
            NodeId(4),
            [None, Some((2, 0, 1))],
            [false, true],
            Some(13u64.to_le_bytes()),
            Some(6),
        )],
        vec![(NodeId(9), 3, 11u64.to_le_bytes())],
        vec![(
            "hello".to_owned(),
            [Some((1, 0, 0)), None],
            5u64.to_le_bytes(),
            false,
        )],
        vec![],
        None,
        0,
    );
    let read = wire::decode::<Digest>(&wire::encode(&good).unwrap(), LIMIT).unwrap();
    let hello = read.services["hello"];
    assert_eq!(hello.body, Some(Hlc::new(1_001, 0, NodeId(7))));
    assert_eq!(hello.body_hash, 5);
    let web = read.desired["web"];
    assert_eq!(web.body, Some(Hlc::new(1_005, 2, NodeId(9))));
    assert_eq!(web.replicas, Some(Hlc::new(1_000, 0, NodeId(7))));
    assert_eq!((web.deleted, web.history), (None, 42));
    assert_eq!((web.content.body, web.content.replicas), (7, 3));
    assert_eq!(web.paused, Some(Hlc::new(1_003, 0, NodeId(9))));
    assert!(web.content.paused);
    let node = read.observed[&NodeId(9)];
    assert_eq!((node.version, node.content), (3, 11));
    let decision = read.nodes[&NodeId(4)];
    assert_eq!(decision.cordoned, None);
    assert_eq!(decision.forgets_through, Some(6));
    assert_eq!(
        decision.removed,
        Some((Hlc::new(1_002, 0, NodeId(9)), true))
    );
    assert_eq!(decision.key, Some(13));
    // A node decision whose stamp names a writer that is not listed.
    let bad_decision: RawDigest = (
        vec![],
        0,
        vec![],
        vec![(
            NodeId(4),
            [Some((0, 0, 0)), None],
            [true, false],
            None,
            None,
        )],
        vec![],
        vec![],
        vec![],
        None,
        0,
    );
    let err = wire::decode::<Digest>(&wire::encode(&bad_decision).unwrap(), LIMIT).unwrap_err();
    assert!(err.to_string().contains("writer #0"), "{err}");
    // A service stamp naming an unlisted writer is rejected too.
    let bad_service: RawDigest = (
        vec![],
        0,
        vec![],
        vec![],
        vec![],
        vec![("hello".to_owned(), [None, Some((0, 0, 2))], [0; 8], true)],
        vec![],
        None,
        0,
    );
    let err = wire::decode::<Digest>(&wire::encode(&bad_service).unwrap(), LIMIT).unwrap_err();
    assert!(err.to_string().contains("writer #2"), "{err}");
    let err = wire::decode::<Digest>(&wire::encode(&bad_decision).unwrap(), LIMIT).unwrap_err();
    assert!(err.to_string().contains("writer #0"), "{err}");
}

#[test]
fn the_decode_limit_follows_the_input_not_the_callers_ceiling() {
    use shoal_crdt_state::wire::{MAX_FILE_BYTES, decode_limit};
    // A tiny message cannot ask for more than the smallest tier...
    assert_eq!(decode_limit(10, MAX_FILE_BYTES), 4 * 1024);
    // ...a larger one for at most a tier above 16 bytes per input byte...
    assert_eq!(decode_limit(1_000, MAX_FILE_BYTES), 32 * 1024);
    assert_eq!(decode_limit(100_000, MAX_FILE_BYTES), 2 * 1024 * 1024);
    // ...and none for more than its caller allows.
    assert_eq!(decode_limit(4 << 20, MAX_MESSAGE_BYTES), MAX_MESSAGE_BYTES);
    assert_eq!(decode_limit(usize::MAX, usize::MAX), MAX_FILE_BYTES);
    // A 20-byte message declaring a 100 KiB string is refused at the
    // limit, before the string is allocated, even under the file ceiling.
    let mut bytes = vec![WIRE_VERSION, 0xFD];
    bytes.extend_from_slice(&(100u64 << 10).to_le_bytes());
    bytes.extend_from_slice(b"0123456789");
    let err = wire::decode::<String>(&bytes, MAX_FILE_BYTES).unwrap_err();
    assert!(
        matches!(&err, WireError::Malformed(m) if m.contains("Limit")),
        "{err}"
    );
    // A real string of that length, carried whole, decodes.
    let text = "x".repeat(100 << 10);
    let bytes = wire::encode(&text).unwrap();
    assert_eq!(
        wire::decode::<String>(&bytes, MAX_FILE_BYTES).unwrap(),
        text
    );
}
