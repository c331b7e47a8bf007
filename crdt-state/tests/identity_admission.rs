//! The admission rules a peer applies to key bindings, removals and
//! forgetting that arrive from others, with the node's liveness as this
//! peer sees it: every combination that decides, as a table.

mod state_support;

use shoal_crdt_state::identity::{
    self, BindingRefusal, CONCURRENT_CLAIM_MS, KeyBinding, PublicKey,
};
use shoal_crdt_state::register::{self, Reg};
use state_support::stamp;

const W: u64 = CONCURRENT_CLAIM_MS;
/// When the held binding was made.
const HELD_MS: u64 = 10 * W;

fn binding(key: u8, ms: u64, after: Option<u64>) -> KeyBinding {
    KeyBinding {
        key: PublicKey([key; 32]),
        stamp: stamp(ms, u64::from(key)),
        after: after.map(|ms| stamp(ms, 99)),
    }
}

fn removal(ms: u64) -> Reg<bool> {
    register::write(true, stamp(ms, 99))
}

fn take_back(ms: u64) -> Reg<bool> {
    register::write(false, stamp(ms, 1))
}

struct Case {
    what: &'static str,
    held: Option<KeyBinding>,
    /// This peer's removal register and the one arriving with the binding.
    removals: [Option<Reg<bool>>; 2],
    incoming: KeyBinding,
    live: bool,
    expected: Result<(), BindingRefusal>,
}

fn case(
    what: &'static str,
    held: Option<KeyBinding>,
    removals: [Option<Reg<bool>>; 2],
    incoming: KeyBinding,
    live: bool,
    expected: Result<(), BindingRefusal>,
) -> Case {
    Case {
        what,
        held,
        removals,
        incoming,
        live,
        expected,
    }
}

#[test]
fn binding_admission_table() {
    use BindingRefusal::{Backdated, LiveHolder, UnseenRelease};
    let held = Some(binding(1, HELD_MS, None));
    let release = HELD_MS + 5_000;
    let after_release = Some(release);
    let cases = [
        // Nothing held: the first claim is taken, live or not.
        case(
            "first claim, live",
            None,
            [None, None],
            binding(2, 1, None),
            true,
            Ok(()),
        ),
        case(
            "first claim",
            None,
            [None, None],
            binding(2, 1, None),
            false,
            Ok(()),
        ),
        // The holder's own key.
        case(
            "same key, live",
            held,
            [None, None],
            binding(1, HELD_MS, None),
            true,
            Ok(()),
        ),
        case(
            "same key, earlier stamp, live",
            held,
            [None, None],
            binding(1, 1, None),
            true,
            Ok(()),
        ),
        // Hole 2: a claim stamped just before the held binding's.
        case(
            "race window, live",
            held,
            [None, None],
            binding(2, HELD_MS - 1, None),
            true,
            Err(LiveHolder),
        ),
        case(
            "race window",
            held,
            [None, None],
            binding(2, HELD_MS - 1, None),
            false,
            Ok(()),
        ),
        case(
            "race window after, live",
            held,
            [None, None],
            binding(2, HELD_MS + W, None),
            true,
            Err(LiveHolder),
        ),
        case(
            "race window after",
            held,
            [None, None],
            binding(2, HELD_MS + W, None),
            false,
            Ok(()),
        ),
        case(
            "backdated, live",
            held,
            [None, None],
            binding(2, HELD_MS - W - 1, None),
            true,
            Err(LiveHolder),
        ),
        case(
            "backdated",
            held,
            [None, None],
            binding(2, HELD_MS - W - 1, None),
            false,
            Err(Backdated),
        ),
        case(
            "far later",
            held,
            [None, None],
            binding(2, HELD_MS + W + 1, None),
            false,
            Err(Backdated),
        ),
        // Hole 1: a removal of a live node travelling with the binding.
        case(
            "release arriving, live",
            held,
            [None, Some(removal(release))],
            binding(2, release + 1, after_release),
            true,
            Err(LiveHolder),
        ),
        case(
            "release arriving",
            held,
            [None, Some(removal(release))],
            binding(2, release + 1, after_release),
            false,
            Ok(()),
        ),
        // The release taken earlier (the node was not live then): the held
        // binding is not in force, so liveness says nothing about its key.
        case(
            "release held, live",
            held,
            [Some(removal(release)), None],
            binding(2, release + 1, after_release),
            true,
            Ok(()),
        ),
        case(
            "release held",
            held,
            [Some(removal(release)), None],
            binding(2, release + 1, after_release),
            false,
            Ok(()),
        ),
        // A release taken back since: the held binding is in force again.
        case(
            "release taken back, live",
            held,
            [Some(take_back(release + 1)), Some(removal(release))],
            binding(2, release + 2, after_release),
            true,
            Err(LiveHolder),
        ),
        case(
            "release taken back",
            held,
            [Some(take_back(release + 1)), Some(removal(release))],
            binding(2, release + 2, after_release),
            false,
            Ok(()),
        ),
        // A removal older than the held binding releases nothing.
        case(
            "stale removal, live",
            held,
            [Some(removal(HELD_MS - 1)), None],
            binding(2, HELD_MS, Some(HELD_MS - 1)),
            true,
            Err(LiveHolder),
        ),
        // A release nobody holds.
        case(
            "invented release, live",
            held,
            [None, None],
            binding(2, release + 1, after_release),
            true,
            Err(LiveHolder),
        ),
        case(
            "invented release",
            held,
            [None, None],
            binding(2, release + 1, after_release),
            false,
            Err(UnseenRelease),
        ),
        case(
            "same key, invented release, live",
            held,
            [None, None],
            binding(1, release + 1, after_release),
            true,
            Err(UnseenRelease),
        ),
        case(
            "same key, release seen, live",
            held,
            [None, Some(take_back(release + 1))],
            binding(1, release + 2, after_release),
            true,
            Ok(()),
        ),
        // An earlier release than the held one's loses the join anyway.
        case(
            "earlier release",
            Some(binding(1, HELD_MS, Some(release))),
            [None, None],
            binding(2, HELD_MS, None),
            false,
            Ok(()),
        ),
        case(
            "earlier release, live",
            Some(binding(1, HELD_MS, Some(release))),
            [None, None],
            binding(2, HELD_MS, None),
            true,
            Err(LiveHolder),
        ),
    ];
    for c in &cases {
        let [held_removal, arriving] = &c.removals;
        let got = identity::admits_binding(
            c.held.as_ref(),
            held_removal.as_ref(),
            arriving.as_ref(),
            &c.incoming,
            c.live,
        );
        assert_eq!(got, c.expected, "{}", c.what);
    }
}

#[test]
fn removal_admission_table() {
    // (removed, live) → admitted
    let cases = [
        (true, true, false),
        (true, false, true),
        (false, true, true),
        (false, false, true),
    ];
    for (removed, live, expected) in cases {
        let register = register::write(removed, stamp(1_000, 1));
        assert_eq!(
            identity::admits_removal(&register, live),
            expected,
            "removed {removed}, live {live}"
        );
    }
}

#[test]
fn forgetting_admission_table() {
    // (through, live, newest record held) → admitted
    let cases = [
        (4, true, Some(5), true),
        (5, true, Some(5), false),
        (9, true, Some(5), false),
        (0, true, None, false),
        (9, false, Some(5), true),
        (0, false, None, true),
        // Beyond any honest version: refused, even for the node's own id.
        (u64::MAX, false, Some(5), false),
        (identity::MAX_FORGETTABLE_VERSION + 1, false, None, false),
        (identity::MAX_FORGETTABLE_VERSION, false, None, true),
    ];
    for (through, live, held, expected) in cases {
        assert_eq!(
            identity::admits_forgetting(through, live, held),
            expected,
            "through {through}, live {live}, held {held:?}"
        );
    }
}

#[test]
fn releases_is_what_bound_key_follows() {
    let bound = binding(1, HELD_MS, None);
    assert!(identity::releases(Some(&removal(HELD_MS + 1)), &bound));
    assert!(!identity::releases(Some(&removal(HELD_MS - 1)), &bound));
    assert!(!identity::releases(Some(&take_back(HELD_MS + 1)), &bound));
    assert!(!identity::releases(None, &bound));
    let rebound = binding(2, HELD_MS + 2, Some(HELD_MS + 1));
    assert!(!identity::releases(Some(&removal(HELD_MS + 1)), &rebound));
}
