//! Invariants of whole peer cores, checked at quiescence against the ground
//! truth (the fake engines of live nodes), never against what peers report.

use std::collections::{BTreeMap, BTreeSet};

use shoal_crdt_state::pod::PodId;

/// How the running copies compare with the declared replica counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaCount {
    /// Declared (rc, index) with no running copy.
    pub missing: usize,
    /// Declared (rc, index) running more than once.
    pub duplicates: usize,
    /// Running copies of an index no RC declares (deleted, scaled down).
    pub undeclared: usize,
    /// A few examples, for the report.
    pub examples: Vec<String>,
}

impl ReplicaCount {
    pub fn exact(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.undeclared == 0
    }
}

/// Compares `running` (copies per replica on live nodes) with `declared`
/// (replica count per live RC).
pub fn count_replicas(
    declared: &BTreeMap<String, u32>,
    running: &BTreeMap<PodId, usize>,
) -> ReplicaCount {
    let mut c = ReplicaCount::default();
    let note = |c: &mut ReplicaCount, line: String| {
        if c.examples.len() < 5 {
            c.examples.push(line);
        }
    };
    for (rc, &replicas) in declared {
        for index in 0..replicas {
            let id = PodId {
                rc: rc.clone(),
                index,
            };
            match running.get(&id).copied().unwrap_or(0) {
                0 => {
                    c.missing += 1;
                    note(&mut c, format!("{rc}-{index} runs nowhere"));
                }
                1 => {}
                n => {
                    c.duplicates += 1;
                    note(&mut c, format!("{rc}-{index} runs {n} times"));
                }
            }
        }
    }
    for (id, &n) in running {
        let declared_here = declared.get(&id.rc).is_some_and(|&r| id.index < r);
        if n > 0 && !declared_here {
            c.undeclared += 1;
            note(
                &mut c,
                format!("{}-{} runs but is not declared", id.rc, id.index),
            );
        }
    }
    c
}

/// Groups observers by the value they hold; one line per minority group
/// when they disagree (empty when all hold the same value).
pub fn all_agree<O: std::fmt::Debug, V: Ord>(
    what: &str,
    values: impl IntoIterator<Item = (O, V)>,
) -> Vec<String> {
    let mut groups: BTreeMap<V, Vec<O>> = BTreeMap::new();
    for (o, v) in values {
        groups.entry(v).or_default().push(o);
    }
    if groups.len() <= 1 {
        return Vec::new();
    }
    let sizes: BTreeSet<usize> = groups.values().map(Vec::len).collect();
    vec![format!(
        "peers disagree on {what}: {} different values (group sizes {sizes:?}), e.g. {:?}",
        groups.len(),
        groups.values().last().and_then(|g| g.first())
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(rc: &str, index: u32) -> PodId {
        PodId {
            rc: rc.into(),
            index,
        }
    }

    #[test]
    fn missing_duplicate_and_undeclared_copies_are_each_counted() {
        let declared: BTreeMap<String, u32> = [("web".to_string(), 3)].into();
        let running: BTreeMap<PodId, usize> =
            [(pod("web", 0), 1), (pod("web", 1), 2), (pod("web", 5), 1)].into();
        let c = count_replicas(&declared, &running);
        assert_eq!((c.missing, c.duplicates, c.undeclared), (1, 1, 1));
        assert!(!c.exact());
        let ok: BTreeMap<PodId, usize> = (0..3).map(|i| (pod("web", i), 1)).collect();
        assert!(count_replicas(&declared, &ok).exact());
    }

    #[test]
    fn a_peer_with_another_value_is_reported() {
        assert!(all_agree("x", [(1, 7), (2, 7)]).is_empty());
        assert_eq!(all_agree("x", [(1, 7), (2, 8)]).len(), 1);
    }
}
