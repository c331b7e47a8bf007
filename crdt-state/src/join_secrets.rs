//! The join-secret register (`shoal token rotate`): which join tokens the
//! cluster admits, replicated with the desired state so that every member
//! learns a rotation from any one of them.
//!
//! One last-writer-wins register holds the current token and the
//! rotated-out ones, each with the time (ms since the epoch) after which it
//! is refused. A rotation reads the register it sees and writes a new whole
//! value ([`JoinSecrets::rotated`]), so two concurrent rotations end with
//! one winner everywhere; the loser's token is never admitted (its
//! operator sees that `token rotate` printed a token the cluster does not
//! list, and rotates again).
//!
//! The tokens are secrets: the register travels only inside the members'
//! mutual TLS, like every record, and the API never shows it. Deadlines are
//! wall-clock times; this crate only stores them, each peer compares them
//! with its own clock (the shell).

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::register::{self, Reg};

/// Most rotated-out tokens kept in grace at once: the oldest are dropped
/// first (a burst of rotations must not grow the register without bound).
pub const MAX_ROTATED: usize = 8;

/// The tokens the cluster admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JoinSecrets {
    /// The token new members join with (`shoal1.<cluster-id>.<secret>`).
    pub current: String,
    /// Rotated-out tokens still admitted, each until its deadline.
    pub rotated: Vec<RotatedSecret>,
}

/// A rotated-out token and its deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RotatedSecret {
    pub token: String,
    /// Refused for new connections from this time on (ms since the epoch).
    pub until_ms: u64,
}

impl JoinSecrets {
    /// The value after rotating to `new` at `now_ms`: the token current
    /// before (`before`'s, or `first` when the cluster never rotated) is
    /// admitted for `grace_ms` more, rotated-out tokens whose deadline is
    /// still ahead stay, the rest are dropped.
    pub fn rotated(
        before: Option<&JoinSecrets>,
        first: &str,
        new: String,
        now_ms: u64,
        grace_ms: u64,
    ) -> JoinSecrets {
        let previous = before.map_or(first, |b| b.current.as_str());
        let mut rotated: Vec<RotatedSecret> = before
            .map(|b| b.rotated.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.until_ms > now_ms && r.token != new && r.token != previous)
            .collect();
        if previous != new && grace_ms > 0 {
            rotated.push(RotatedSecret {
                token: previous.to_owned(),
                until_ms: now_ms.saturating_add(grace_ms),
            });
        }
        rotated.sort_by(|a, b| b.until_ms.cmp(&a.until_ms).then(a.token.cmp(&b.token)));
        rotated.truncate(MAX_ROTATED);
        JoinSecrets {
            current: new,
            rotated,
        }
    }

    /// The rotated-out tokens still admitted at `now_ms`.
    pub fn in_grace(&self, now_ms: u64) -> impl Iterator<Item = &RotatedSecret> {
        self.rotated.iter().filter(move |r| r.until_ms > now_ms)
    }
}

/// The register as held in the desired state; `None` until the first
/// rotation. Boxed: it rides in every delta and sync message, almost
/// always empty, and should cost those a pointer, not its size (the box
/// changes nothing on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRegister(pub Option<Box<Reg<JoinSecrets>>>);

impl JoinRegister {
    pub fn get(&self) -> Option<&JoinSecrets> {
        self.0.as_deref().map(|r| &r.val)
    }

    pub fn stamp(&self) -> Option<Hlc> {
        self.0.as_ref().map(|r| r.marker)
    }

    /// Writes `value` at `stamp`; returns the delta to gossip.
    pub fn write(&mut self, value: JoinSecrets, stamp: Hlc) -> JoinRegister {
        let written = JoinRegister(Some(Box::new(register::write(value, stamp))));
        self.merge(written.clone());
        written
    }

    /// Joins `other` in (last writer wins; see [`register::join`]).
    pub fn merge(&mut self, other: JoinRegister) {
        let mut mine = self.0.take().map(|r| *r);
        register::join(&mut mine, other.0.map(|r| *r));
        self.0 = mine.map(Box::new);
    }

    /// What a holder of `theirs` (its stamp) lacks: the whole register when
    /// ours is newer, else nothing.
    pub fn missing_for(&self, theirs: Option<Hlc>) -> JoinRegister {
        match (self.stamp(), theirs) {
            (Some(mine), Some(theirs)) if mine <= theirs => JoinRegister(None),
            _ => self.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64, node: u64) -> Hlc {
        Hlc::new(ms, 0, crate::node::NodeId(node))
    }

    #[test]
    fn a_rotation_keeps_the_old_token_until_its_deadline() {
        let first = JoinSecrets::rotated(None, "t0", "t1".into(), 1_000, 3_000);
        assert_eq!(first.current, "t1");
        assert_eq!(
            first.rotated,
            vec![RotatedSecret {
                token: "t0".into(),
                until_ms: 4_000
            }]
        );
        let second = JoinSecrets::rotated(Some(&first), "t0", "t2".into(), 2_000, 3_000);
        let kept: Vec<&str> = second.in_grace(2_000).map(|r| r.token.as_str()).collect();
        assert_eq!(kept, vec!["t1", "t0"]);
        let later = JoinSecrets::rotated(Some(&second), "t0", "t3".into(), 4_500, 3_000);
        let kept: Vec<&str> = later.in_grace(4_500).map(|r| r.token.as_str()).collect();
        assert_eq!(kept, vec!["t2", "t1"], "t0's deadline passed");
    }

    #[test]
    fn concurrent_rotations_converge_in_any_order() {
        let a = JoinRegister::default().write(
            JoinSecrets::rotated(None, "t0", "ta".into(), 1_000, 10),
            stamp(1_000, 1),
        );
        let b = JoinRegister::default().write(
            JoinSecrets::rotated(None, "t0", "tb".into(), 1_000, 10),
            stamp(1_000, 2),
        );
        let mut ab = a.clone();
        ab.merge(b.clone());
        let mut ba = b.clone();
        ba.merge(a.clone());
        assert_eq!(ab, ba);
        assert_eq!(ab.get().unwrap().current, "tb", "the later stamp wins");
        assert!(ab.missing_for(ab.stamp()).is_empty());
        assert_eq!(a.missing_for(None), a);
    }

    #[test]
    fn rotations_in_a_burst_stay_bounded() {
        let mut value = JoinSecrets::rotated(None, "t0", "t1".into(), 0, 60_000);
        for i in 2..40 {
            value = JoinSecrets::rotated(Some(&value), "t0", format!("t{i}"), i, 60_000);
        }
        assert_eq!(value.rotated.len(), MAX_ROTATED);
        assert_eq!(value.rotated[0].token, "t38", "the newest are kept");
    }
}
