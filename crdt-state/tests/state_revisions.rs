//! Rollout revisions: numbers every peer agrees on, undo, restart, pause.

mod state_support;

use shoal_crdt_state::desired::{DesiredState, HISTORY_LIMIT};
use shoal_crdt_state::error::StateError;
use shoal_crdt_state::revisions::{RESTARTED_AT, numbered};
use shoal_crdt_state::spec::UpdateStrategy;
use state_support::{spec, stamp, template};

/// `(number, first image, current)` of each revision, oldest first.
fn revisions(state: &DesiredState, name: &str) -> Vec<(u64, String, bool)> {
    numbered(state.record(name).unwrap())
        .iter()
        .map(|r| (r.number, r.template.containers[0].image.clone(), r.current))
        .collect()
}

fn rev(n: u64, image: &str, current: bool) -> (u64, String, bool) {
    (n, image.to_owned(), current)
}

#[test]
fn each_new_template_is_the_next_revision_and_strategy_changes_are_not() {
    let mut s = DesiredState::new();
    s.apply(&spec("web", "img:1", 2), stamp(100, 1));
    s.set_template("web", template("web", "img:2"), stamp(200, 1))
        .unwrap();
    // Only the strategy changes: same revision.
    let mut faster = spec("web", "img:2", 2);
    faster.update_strategy = UpdateStrategy {
        max_unavailable: shoal_crdt_state::spec::Allowance::Count(1),
        ..UpdateStrategy::default()
    };
    assert!(!s.apply(&faster, stamp(300, 1)).is_empty());
    // A scale is no revision either.
    s.scale("web", 4, stamp(400, 1)).unwrap();
    assert_eq!(
        revisions(&s, "web"),
        vec![rev(1, "img:1", false), rev(2, "img:2", true)]
    );
    // When a revision was written: its first write, not the strategy change.
    let list = numbered(s.record("web").unwrap());
    assert_eq!(list[1].written, stamp(200, 1));
}

#[test]
fn concurrent_rollouts_get_distinct_numbers_on_every_peer_after_the_heal() {
    let mut a = DesiredState::new();
    let created = a.apply(&spec("web", "img:1", 1), stamp(100, 1));
    let mut b = DesiredState::new();
    b.merge_delta(created);
    // Partitioned: each side rolls out its own image, both as revision 2.
    let on_a = a
        .set_template("web", template("web", "img:a"), stamp(200, 1))
        .unwrap();
    let on_b = b
        .set_template("web", template("web", "img:b"), stamp(300, 2))
        .unwrap();
    assert_eq!(revisions(&a, "web")[1], rev(2, "img:a", true));
    assert_eq!(revisions(&b, "web")[1], rev(2, "img:b", true));
    a.merge_delta(on_b);
    b.merge_delta(on_a);
    let want = vec![
        rev(1, "img:1", false),
        rev(2, "img:a", false),
        rev(3, "img:b", true),
    ];
    assert_eq!(revisions(&a, "web"), want);
    assert_eq!(revisions(&b, "web"), want);
    // The next write continues after the highest number shown.
    a.set_template("web", template("web", "img:c"), stamp(400, 1))
        .unwrap();
    assert_eq!(revisions(&a, "web").last(), Some(&rev(4, "img:c", true)));
}

#[test]
fn the_same_image_rolled_out_on_both_sides_is_one_revision() {
    let mut a = DesiredState::new();
    let created = a.apply(&spec("web", "img:1", 1), stamp(100, 1));
    let mut b = DesiredState::new();
    b.merge_delta(created);
    let on_a = a
        .set_template("web", template("web", "img:2"), stamp(200, 1))
        .unwrap();
    let on_b = b
        .set_template("web", template("web", "img:2"), stamp(300, 2))
        .unwrap();
    a.merge_delta(on_b);
    b.merge_delta(on_a);
    let want = vec![rev(1, "img:1", false), rev(2, "img:2", true)];
    assert_eq!(revisions(&a, "web"), want);
    assert_eq!(revisions(&b, "web"), want);
}

#[test]
fn numbers_stay_put_when_the_history_drops_old_revisions() {
    let mut s = DesiredState::new();
    s.apply(&spec("web", "img:0", 1), stamp(100, 1));
    let writes = HISTORY_LIMIT as u64 + 5;
    for i in 1..=writes {
        s.set_template(
            "web",
            template("web", &format!("img:{i}")),
            stamp(100 + i, 1),
        )
        .unwrap();
    }
    let list = revisions(&s, "web");
    assert_eq!(list.len(), HISTORY_LIMIT + 1);
    assert_eq!(
        list.last(),
        Some(&rev(writes + 1, &format!("img:{writes}"), true))
    );
    assert_eq!(list[0].0, writes + 1 - HISTORY_LIMIT as u64);
}

#[test]
fn undo_writes_an_earlier_template_as_a_new_revision() {
    let mut s = DesiredState::new();
    s.apply(&spec("web", "img:1", 1), stamp(100, 1));
    s.set_template("web", template("web", "img:2"), stamp(200, 1))
        .unwrap();
    s.set_template("web", template("web", "img:3"), stamp(300, 1))
        .unwrap();

    let undo = s.undo("web", None, stamp(400, 1)).unwrap();
    assert_eq!((undo.to, undo.new_revision), (2, 4));
    assert!(!undo.delta.is_empty());
    assert_eq!(
        s.get("web").unwrap().template().containers[0].image,
        "img:2"
    );

    let undo = s.undo("web", Some(1), stamp(500, 1)).unwrap();
    assert_eq!((undo.to, undo.new_revision), (1, 5));
    assert_eq!(
        s.get("web").unwrap().template().containers[0].image,
        "img:1"
    );

    assert!(matches!(
        s.undo("web", Some(9), stamp(600, 1)),
        Err(StateError::UnknownRevision { revision: 9, ref known, .. }) if *known == vec![1, 2, 3, 4, 5]
    ));
    assert!(matches!(
        s.undo("web", Some(1), stamp(600, 1)),
        Err(StateError::AlreadyAtRevision {
            revision: 1,
            current: 5,
            ..
        })
    ));
    let mut fresh = DesiredState::new();
    fresh.apply(&spec("api", "img:1", 1), stamp(100, 1));
    assert!(matches!(
        fresh.undo("api", None, stamp(200, 1)),
        Err(StateError::NoEarlierRevision { .. })
    ));
    assert!(matches!(
        fresh.undo("nope", None, stamp(200, 1)),
        Err(StateError::UnknownRc { .. })
    ));
}

#[test]
fn restart_changes_the_template_but_no_image() {
    let mut s = DesiredState::new();
    s.apply(&spec("web", "img:1", 2), stamp(100, 1));
    let before = s.get("web").unwrap().template().hash();
    s.restart("web", "20261202T053000.123Z", stamp(200, 1))
        .unwrap();
    let web = s.get("web").unwrap();
    assert_ne!(web.template().hash(), before);
    assert_eq!(web.template().containers[0].image, "img:1");
    assert_eq!(
        web.template().labels.get(RESTARTED_AT).map(String::as_str),
        Some("20261202T053000.123Z")
    );
    assert_eq!(revisions(&s, "web").len(), 2);
}

#[test]
fn pause_is_a_register_that_apply_keeps_and_peers_merge() {
    let mut a = DesiredState::new();
    let created = a.apply(&spec("web", "img:1", 1), stamp(100, 1));
    let mut b = DesiredState::new();
    b.merge_delta(created);

    let paused = a.set_paused("web", true, stamp(200, 1)).unwrap();
    assert!(matches!(
        a.set_paused("web", true, stamp(210, 1)),
        Err(StateError::AlreadyPaused { .. })
    ));
    // Concurrently, B applies a new image: both survive the merge.
    let applied = b.apply(&spec("web", "img:2", 1), stamp(300, 2));
    a.merge_delta(applied);
    b.merge_delta(paused);
    assert_eq!(a, b);
    let web = a.get("web").unwrap();
    assert!(web.to_spec().paused);
    assert_eq!(web.template().containers[0].image, "img:2");

    // Digests see the flag: a peer that missed the pause gets it.
    let mut c = DesiredState::new();
    c.merge_delta(a.missing_for(&c.digest()));
    assert!(c.get("web").unwrap().to_spec().paused);

    b.set_paused("web", false, stamp(400, 2)).unwrap();
    assert!(matches!(
        b.set_paused("web", false, stamp(410, 2)),
        Err(StateError::NotPaused { .. })
    ));
    assert!(!b.get("web").unwrap().to_spec().paused);
    a.merge_delta(b.missing_for(&a.digest()));
    assert!(!a.get("web").unwrap().to_spec().paused);
}
