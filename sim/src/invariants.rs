//! Invariants checked at quiescence, independent of what a node is: each
//! live node's view of who is alive must equal the truth.

use std::collections::BTreeSet;
use std::fmt::Debug;

/// Compares every observer's view with the true alive set; returns one
/// line per disagreeing observer (at most `max_lines`), empty when all
/// agree. A member missing from a view is an alive peer declared down (or
/// never learned); an extra one is a dead peer still believed alive.
pub fn views_match_truth<K: Ord + Debug, O: Debug>(
    truth: &BTreeSet<K>,
    views: impl IntoIterator<Item = (O, BTreeSet<K>)>,
    max_lines: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (observer, view) in views {
        if &view == truth {
            continue;
        }
        if lines.len() < max_lines {
            let missing: Vec<&K> = truth.difference(&view).take(3).collect();
            let extra: Vec<&K> = view.difference(truth).take(3).collect();
            lines.push(format!(
                "{observer:?}: missing {} (e.g. {missing:?}), extra {} (e.g. {extra:?})",
                truth.difference(&view).count(),
                view.difference(truth).count()
            ));
        } else {
            break;
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_missing_an_alive_peer_is_reported() {
        let truth: BTreeSet<u32> = [1, 2, 3].into();
        let ok = views_match_truth(&truth, [(1, truth.clone())], 10);
        assert!(ok.is_empty());
        let bad = views_match_truth(&truth, [(2, [1, 2].into())], 10);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].contains("missing 1"));
    }
}
