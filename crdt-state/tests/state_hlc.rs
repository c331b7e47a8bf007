//! The hybrid logical clock: monotonic, orders after what it saw, resists absurd times.

use shoal_crdt_state::hlc::{Clock, Hlc, Observation};
use shoal_crdt_state::node::NodeId;

#[test]
fn local_stamps_strictly_increase_even_when_wall_time_goes_back() {
    let mut clock = Clock::new(NodeId(1), 1_000);
    let mut last = Hlc::ZERO;
    for now in [100, 100, 100, 50, 200, 10, 200, 201] {
        let s = clock.tick(now);
        assert!(s > last, "{s} not after {last}");
        assert_eq!(s.node, NodeId(1));
        last = s;
    }
    assert_eq!(clock.tick(1_000), Hlc::new(1_000, 0, NodeId(1)));
}

#[test]
fn a_write_after_seeing_a_remote_stamp_orders_after_it() {
    let mut behind = Clock::new(NodeId(1), 60_000);
    // The remote clock runs 5 s ahead of ours and wrote twice in one ms.
    let remote = Hlc::new(10_000, 1, NodeId(2));
    assert_eq!(behind.observe(&remote, 5_000), Observation::Absorbed);
    let local = behind.tick(5_001);
    assert!(local > remote, "{local} should order after {remote}");
    assert_eq!(local, Hlc::new(10_000, 2, NodeId(1)));
}

#[test]
fn equal_times_and_counters_break_ties_by_node_everywhere() {
    let a = Hlc::new(7, 3, NodeId(1));
    let b = Hlc::new(7, 3, NodeId(2));
    assert!(a < b);
    assert!(Hlc::new(7, 4, NodeId(1)) > b, "counter ranks above node");
    assert!(
        Hlc::new(8, 0, NodeId(0)) > Hlc::new(7, 9, NodeId(9)),
        "time ranks first"
    );
}

#[test]
fn a_stamp_from_the_far_future_does_not_drag_the_clock_along() {
    let mut clock = Clock::new(NodeId(1), 1_000);
    let absurd = Hlc::new(u64::MAX / 2, 0, NodeId(666));
    let outcome = clock.observe(&absurd, 5_000);
    assert_eq!(
        outcome,
        Observation::Clamped {
            ahead_by_ms: u64::MAX / 2 - 5_000
        }
    );
    assert_eq!(clock.clamped_count(), 1);
    // Local time advances at most to now + max_drift.
    let next = clock.tick(5_000);
    assert_eq!(next, Hlc::new(6_000, 1, NodeId(1)));
    // Once real time passes the ceiling, stamps follow real time again.
    assert_eq!(clock.tick(7_000), Hlc::new(7_000, 0, NodeId(1)));
}

#[test]
fn counter_overflow_borrows_the_next_millisecond() {
    let mut clock = Clock::new(NodeId(1), 1_000);
    clock.observe(&Hlc::new(100, u32::MAX - 1, NodeId(2)), 100);
    assert_eq!(clock.tick(100), Hlc::new(100, u32::MAX, NodeId(1)));
    assert_eq!(clock.tick(100), Hlc::new(101, 0, NodeId(1)));
}
