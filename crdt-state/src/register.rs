//! Last-writer-wins registers stamped with [`Hlc`], on top of `crdts::LWWReg`.
//!
//! `crdts::LWWReg` keeps the value with the larger marker and, on an equal
//! marker, keeps whichever value it already has. That is only commutative if
//! two writes never share a stamp, which a correct [`Clock`](crate::hlc::Clock)
//! guarantees but a buggy or hostile peer does not. [`join`] adds the missing
//! rule: on an equal stamp with different values, the value with the larger
//! bincode encoding wins, so every peer still converges to the same value.
//! A register that was never written is `None`, the bottom of the lattice.

use crdts::{CvRDT, LWWReg};

use serde::Serialize;

use crate::hlc::Hlc;

/// A last-writer-wins register stamped with a hybrid logical clock.
pub type Reg<V> = LWWReg<V, Hlc>;

/// A register written now.
pub fn write<V>(val: V, stamp: Hlc) -> Reg<V> {
    LWWReg { val, marker: stamp }
}

/// Join `theirs` into `mine`. Returns the write that lost, if the two were
/// different writes (the desired state keeps overwritten templates as history).
/// A clash (same stamp, different values) also returns its loser: then every
/// merge order sees the same set of losers, which keeps history a join.
pub fn join<V: PartialEq + Serialize>(
    mine: &mut Option<Reg<V>>,
    theirs: Option<Reg<V>>,
) -> Option<Reg<V>> {
    let theirs = theirs?;
    let Some(current) = mine.as_mut() else {
        *mine = Some(theirs);
        return None;
    };
    if current.marker == theirs.marker {
        if current.validate_merge(&theirs).is_ok() {
            return None; // the same write, seen twice
        }
        return if encoding(&theirs.val) > encoding(&current.val) {
            Some(std::mem::replace(current, theirs))
        } else {
            Some(theirs)
        };
    }
    if theirs.marker > current.marker {
        // What `CvRDT::merge` would do, keeping the overwritten write.
        Some(std::mem::replace(current, theirs))
    } else {
        Some(theirs)
    }
}

/// The stamp of a register, `None` if it was never written.
pub fn stamp<V>(reg: &Option<Reg<V>>) -> Option<Hlc> {
    reg.as_ref().map(|r| r.marker)
}

/// Deterministic bytes of a value, for tie-breaks and digests. Values of this
/// crate always encode; a value that cannot counts as empty.
pub fn encoding<V: Serialize>(val: &V) -> Vec<u8> {
    bincode::serde::encode_to_vec(val, bincode::config::standard()).unwrap_or_default()
}
