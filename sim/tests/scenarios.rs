//! Every scenario at a small size, in the normal test run. Each prints its
//! seed and report so a failure can be replayed with the command line.

use shoal_sim::report::Report;
use shoal_sim::scenarios::{self, Options};

fn run(name: &str, peers: usize, seed: u64) -> Report {
    println!("scenario {name} peers {peers} seed {seed}");
    let report = scenarios::run(name, &Options::new(peers, seed)).expect("known scenario");
    println!("{report}");
    report
}

#[test]
fn twenty_peers_joining_one_by_one_are_all_known_by_everyone() {
    let r = run("join", 20, 11);
    assert!(r.converged, "{:?}", r.violations);
    assert_eq!(r.joins, 19);
    assert_eq!(r.joins_incomplete, 0);
    // Typical joins take well under a second; a join whose announce or
    // roster is lost is retried after 1 s (issue 3 target: all within 3 s).
    assert!(r.join_p50_ms.unwrap() < 1_000.0, "{r}");
    assert!(r.join_max_ms.unwrap() < 3_000.0, "{r}");
    assert!(r.extra["settle_after_last_join_ms"] <= 5_000.0, "{r}");
}

#[test]
fn thirty_peers_detect_three_crashes_and_no_live_peer_is_declared_down() {
    let r = run("crash", 30, 12);
    assert!(r.converged, "{:?}", r.violations);
    assert_eq!(r.crashes, 3);
    assert_eq!(r.detections_incomplete, 0);
    assert!(r.detect_max_ms.unwrap() < 5_000.0, "{r}");
    assert_eq!(r.false_downs, 0);
}

#[test]
fn ten_peers_split_in_two_reunite_after_the_partition_heals() {
    let r = run("partition-heal", 10, 13);
    assert!(
        r.extra["views_split_before_heal"] > 0.0,
        "the halves should have declared each other down: {r}"
    );
    assert!(r.converged, "{:?}", r.violations);
    // Down members are re-contacted (announces, anti-entropy rounds that
    // include down members), so healing takes seconds, not minutes.
    assert!(r.extra["heal_ms"] < 10_000.0, "{r}");
}

#[test]
fn twenty_peers_under_five_percent_loss_declare_no_one_down() {
    let r = run("loss", 20, 14);
    assert_eq!(r.extra["false_downs_5pct"], 0.0, "{r}");
    assert!(r.extra["false_suspicions_20pct"] > 0.0, "{r}");
    // Suspects are told directly and refute; a refuted suspect is no
    // longer sent TurnUndead (foca 2.0.0 did), so even 20% loss gives no
    // false down at this size.
    assert_eq!(r.extra["false_downs_20pct"], 0.0, "{r}");
    assert!(
        r.converged,
        "peers wrongly declared down at 20% must rejoin: {:?}",
        r.violations
    );
}

#[test]
fn fifteen_peers_under_churn_settle_on_the_true_membership() {
    // The scenario draws crashes and arrivals from the world's RNG (which
    // the network shares), so which seed has both moves with any change to
    // the traffic: every seed must settle, and some must have both.
    let mut both = 0;
    for seed in 10..16 {
        let r = run("churn", 15, seed);
        assert!(r.converged, "seed {seed}: {:?}", r.violations);
        assert_eq!(r.joins_incomplete, 0, "{r}");
        both += usize::from(r.joins > 0 && r.crashes > 0);
    }
    assert!(both > 0, "no seed of 10..16 drew both crashes and arrivals");
}

#[test]
fn the_same_seed_gives_the_same_trace_hash_and_another_seed_does_not() {
    let a = run("churn", 10, 99);
    let b = run("churn", 10, 99);
    let c = run("churn", 10, 100);
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.join_p99_ms, b.join_p99_ms);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn an_unknown_scenario_is_refused_with_the_list_of_names() {
    let err = scenarios::run("meteor", &Options::new(5, 1)).unwrap_err();
    assert!(err.contains("partition-heal"));
}

/// The 1,000-peer benchmark runs (see scripts/bench-membership.sh).
#[test]
#[ignore = "benchmark size: run with --release -- --ignored"]
fn a_thousand_peers_detect_crashes_within_five_seconds() {
    let r = run("crash", 1000, 1);
    assert!(r.converged, "{:?}", r.violations);
    assert_eq!(r.false_downs, 0);
    assert!(r.detect_p99_ms.unwrap() < 5_000.0, "{r}");
    assert!(r.bytes_per_node_per_s < 5_000.0, "{r}");
}
