//! Named scenarios for the desired state: what users can rely on.

mod state_support;

use shoal_crdt_state::desired::{DesiredState, HISTORY_LIMIT};
use shoal_crdt_state::error::StateError;
use shoal_crdt_state::hlc::{Clock, DEFAULT_MAX_DRIFT_MS};
use shoal_crdt_state::node::NodeId;
use state_support::{spec, stamp, template};

/// Two peers that both saw `web` created with 2 replicas of nginx:1.25.
fn two_peers_with_web() -> (DesiredState, DesiredState) {
    let mut a = DesiredState::new();
    let created = a.apply(&spec("web", "nginx:1.25", 2), stamp(100, 1));
    let mut b = DesiredState::new();
    b.merge_delta(created);
    assert_eq!(a, b);
    (a, b)
}

fn merged(x: &DesiredState, y: &DesiredState) -> DesiredState {
    let mut out = x.clone();
    out.merge(y);
    out
}

#[test]
fn concurrent_scale_and_image_change_both_survive() {
    let (mut a, mut b) = two_peers_with_web();
    // During a partition: A scales, B changes the image (B's stamp is later).
    let scaled = a.scale("web", 5, stamp(200, 1)).unwrap();
    let imaged = b
        .set_template("web", template("web", "nginx:1.27"), stamp(300, 2))
        .unwrap();
    // Heal: each side receives the other's delta.
    a.merge_delta(imaged);
    b.merge_delta(scaled);
    assert_eq!(a, b);
    let web = a.get("web").unwrap();
    assert_eq!(web.replicas, 5);
    assert_eq!(web.template().primary_image(), "nginx:1.27");
    assert_eq!(web.history().len(), 1);
    assert_eq!(web.history()[0].template.primary_image(), "nginx:1.25");
}

#[test]
fn concurrent_delete_and_update_resolve_the_same_everywhere() {
    // The delete is stamped *before* the updates: they still do not undelete.
    let (mut a, mut b) = two_peers_with_web();
    let mut c = b.clone();
    let deleted = a.delete("web", stamp(200, 1)).unwrap();
    let scaled = b.scale("web", 7, stamp(300, 2)).unwrap();
    let imaged = c
        .set_template("web", template("web", "nginx:1.27"), stamp(400, 3))
        .unwrap();
    let orders = [
        [deleted.clone(), scaled.clone(), imaged.clone()],
        [imaged.clone(), scaled.clone(), deleted.clone()],
        [scaled.clone(), deleted.clone(), imaged.clone()],
    ];
    let mut results = Vec::new();
    for order in orders {
        let mut peer = DesiredState::new();
        peer.merge(&two_peers_with_web().0);
        for delta in order {
            peer.merge_delta(delta);
        }
        results.push(peer);
    }
    a.merge(&b);
    a.merge(&c);
    b.merge(&a);
    c.merge(&b);
    results.extend([a, b, c]);
    for r in &results {
        assert_eq!(r, &results[0]);
        assert!(
            r.get("web").is_none(),
            "a scale or image change undeleted web"
        );
        assert_eq!(r.live_rcs().count(), 0);
    }
    // An apply after the delete was seen recreates the RC, with the applied spec.
    let mut d = results.pop().unwrap();
    d.apply(&spec("web", "nginx:1.27", 3), stamp(500, 4));
    let web = d.get("web").unwrap();
    assert_eq!(
        (web.replicas, web.template().primary_image()),
        (3, "nginx:1.27")
    );
}

#[test]
fn concurrent_apply_and_delete_the_later_stamp_wins() {
    let (mut a, mut b) = two_peers_with_web();
    a.delete("web", stamp(200, 1)).unwrap();
    // B re-applies a changed manifest while it has not seen the delete: B's apply
    // does not write `deleted`, so the delete wins whatever the stamps.
    let changed = b.apply(&spec("web", "nginx:1.27", 2), stamp(300, 2));
    assert!(changed.rcs["web"].deleted.is_none());
    // C recreated it after seeing the delete: its later stamp wins over the delete.
    let mut c = a.clone();
    let recreated = c.apply(&spec("web", "redis:7", 1), stamp(400, 3));
    for mut peer in [a.clone(), b.clone(), c.clone()] {
        peer.merge(&a);
        peer.merge(&b);
        peer.merge_delta(recreated.clone());
        let web = peer
            .get("web")
            .expect("the recreating apply is the latest write");
        assert_eq!(web.replicas, 1);
        assert_eq!(web.template().primary_image(), "redis:7");
    }
}

#[test]
fn reapplying_unchanged_manifest_does_not_clobber_concurrent_scale() {
    let (mut a, mut b) = two_peers_with_web();
    let scaled = a.scale("web", 9, stamp(200, 1)).unwrap();
    // B re-applies the original manifest *later* than the scale.
    let reapplied = b.apply(&spec("web", "nginx:1.25", 2), stamp(300, 2));
    assert!(
        reapplied.is_empty(),
        "unchanged manifest wrote {reapplied:?}"
    );
    a.merge_delta(reapplied);
    b.merge_delta(scaled);
    assert_eq!(a, b);
    assert_eq!(a.get("web").unwrap().replicas, 9);
    // A re-apply that changes only the image keeps the concurrent scale too.
    let changed = b.apply(&spec("web", "nginx:1.27", 2), stamp(400, 2));
    assert!(changed.rcs["web"].body.is_some());
    assert!(
        changed.rcs["web"].replicas.is_some(),
        "2 differs from 9: written"
    );
}

#[test]
fn history_keeps_newest_ten_templates() {
    let mut clock = Clock::new(NodeId(1), DEFAULT_MAX_DRIFT_MS);
    let mut a = DesiredState::new();
    a.apply(&spec("web", "img:0", 1), clock.tick(1_000));
    let mut deltas = Vec::new();
    for v in 1..=15 {
        let delta = a
            .set_template(
                "web",
                template("web", &format!("img:{v}")),
                clock.tick(1_000 + v),
            )
            .unwrap();
        deltas.push(delta);
    }
    let web = a.get("web").unwrap();
    assert_eq!(web.template().primary_image(), "img:15");
    let images: Vec<&str> = web
        .history()
        .iter()
        .map(|r| r.template.primary_image())
        .collect();
    let expected: Vec<String> = (5..=14).rev().map(|v| format!("img:{v}")).collect();
    assert_eq!(images, expected);
    assert_eq!(web.history().len(), HISTORY_LIMIT);
    // A peer that got the deltas in reverse order keeps the same ten.
    let mut b = DesiredState::new();
    b.merge_delta(a.to_delta());
    let mut c = DesiredState::new();
    for d in deltas.into_iter().rev() {
        c.merge_delta(d);
    }
    c.merge(&b);
    assert_eq!(c.get("web").unwrap().history(), web.history());
}

#[test]
fn concurrent_image_changes_keep_the_loser_in_history() {
    let (mut a, mut b) = two_peers_with_web();
    a.set_template("web", template("web", "nginx:1.26"), stamp(200, 1))
        .unwrap();
    b.set_template("web", template("web", "nginx:1.27"), stamp(300, 2))
        .unwrap();
    let (ab, ba) = (merged(&a, &b), merged(&b, &a));
    assert_eq!(ab, ba);
    let web = ab.get("web").unwrap();
    assert_eq!(web.template().primary_image(), "nginx:1.27");
    let images: Vec<&str> = web
        .history()
        .iter()
        .map(|r| r.template.primary_image())
        .collect();
    assert_eq!(images, ["nginx:1.26", "nginx:1.25"]);
}

#[test]
fn commands_on_unknown_or_deleted_rcs_are_refused() {
    let (mut a, _) = two_peers_with_web();
    assert_eq!(
        a.scale("nope", 1, stamp(200, 1)),
        Err(StateError::UnknownRc {
            name: "nope".to_owned()
        })
    );
    a.delete("web", stamp(300, 1)).unwrap();
    let before = a.clone();
    assert!(matches!(
        a.scale("web", 1, stamp(400, 1)),
        Err(StateError::DeletedRc { .. })
    ));
    assert!(matches!(
        a.set_template("web", template("web", "x:1"), stamp(400, 1)),
        Err(StateError::DeletedRc { .. })
    ));
    assert!(matches!(
        a.delete("web", stamp(400, 1)),
        Err(StateError::DeletedRc { .. })
    ));
    assert_eq!(a, before, "a refused command changed the state");
    let msg = a.scale("web", 1, stamp(500, 1)).unwrap_err().to_string();
    assert!(msg.contains("apply its manifest again"), "{msg}");
}

#[test]
fn set_template_must_keep_the_selector_labels() {
    let (mut a, _) = two_peers_with_web();
    let err = a
        .set_template("web", template("other", "nginx:1.27"), stamp(200, 1))
        .unwrap_err();
    assert!(matches!(err, StateError::SelectorMismatch { .. }), "{err}");
    assert!(err.to_string().contains("app=web"), "{err}");
}

#[test]
fn live_rcs_are_sorted_and_skip_tombstones() {
    let mut s = DesiredState::new();
    for (i, name) in ["db", "web", "api", "cache"].iter().enumerate() {
        s.apply(&spec(name, "img:1", 1), stamp(100 + i as u64, 1));
    }
    s.delete("cache", stamp(200, 1)).unwrap();
    let names: Vec<&str> = s.live_rcs().map(|v| v.name).collect();
    assert_eq!(names, ["api", "db", "web"]);
    assert_eq!(s.records().count(), 4);
    assert_eq!(s.get("api").unwrap().to_spec(), spec("api", "img:1", 1));
}

#[test]
fn tombstones_older_than_the_horizon_are_collected() {
    let mut s = DesiredState::new();
    s.apply(&spec("old", "img:1", 1), stamp(100, 1));
    s.apply(&spec("new", "img:1", 1), stamp(100, 1));
    s.apply(&spec("kept", "img:1", 1), stamp(100, 1));
    s.delete("old", stamp(200, 1)).unwrap();
    s.delete("new", stamp(900, 1)).unwrap();
    assert_eq!(s.collect(500).rcs, ["old"]);
    let names: Vec<&str> = s.records().map(|(n, _)| n).collect();
    assert_eq!(names, ["kept", "new"]);
}

#[test]
fn reapplying_a_changed_image_records_the_old_template_even_at_late_joiners() {
    let mut a = DesiredState::new();
    a.apply(&spec("web", "nginx:1.25", 2), stamp(100, 1));
    let update = a.apply(&spec("web", "nginx:1.27", 2), stamp(200, 1));
    // A peer that missed the creation and only got the update's delta.
    let mut late = DesiredState::new();
    late.merge_delta(update);
    for peer in [&a, &late] {
        let history: Vec<&str> = peer
            .record("web")
            .unwrap()
            .history
            .iter()
            .map(|r| r.template.primary_image())
            .collect();
        assert_eq!(history, ["nginx:1.25"]);
    }
    assert_eq!(
        a.record("web").unwrap().history,
        late.record("web").unwrap().history
    );
}

#[test]
fn an_rc_is_as_old_as_its_creation_not_its_last_change() {
    let (mut a, mut b) = two_peers_with_web();
    let created = |s: &DesiredState| s.get("web").unwrap().record.created();
    assert_eq!(created(&a), Some(stamp(100, 1)));
    // Scales, image changes and re-applies keep the age, on every peer.
    b.merge_delta(a.scale("web", 4, stamp(200, 1)).unwrap());
    b.merge_delta(
        a.set_template("web", template("web", "nginx:1.27"), stamp(300, 1))
            .unwrap(),
    );
    b.merge_delta(a.apply(&spec("web", "nginx:1.28", 4), stamp(400, 1)));
    assert_eq!(created(&a), Some(stamp(100, 1)));
    assert_eq!(created(&b), Some(stamp(100, 1)));
    // Deleted and applied again, it starts over.
    b.merge_delta(a.delete("web", stamp(500, 1)).unwrap());
    b.merge_delta(a.apply(&spec("web", "nginx:1.28", 1), stamp(600, 2)));
    assert_eq!(created(&b), Some(stamp(600, 2)));
}

#[test]
fn a_service_is_as_old_as_its_creation_not_its_last_change() {
    let mut s = DesiredState::new();
    s.apply_service(&state_support::service("web", 80), stamp(100, 1));
    s.apply_service(&state_support::service("web", 8080), stamp(200, 1));
    let web = s.service("web").unwrap();
    assert_eq!(
        (web.created, web.written),
        (Some(stamp(100, 1)), stamp(200, 1))
    );
    s.delete_service("web", stamp(300, 1)).unwrap();
    s.apply_service(&state_support::service("web", 80), stamp(400, 1));
    assert_eq!(s.service("web").unwrap().created, Some(stamp(400, 1)));
}
