//! Splitting a large delta into pieces that each encode near a target size
//! (see [`super::sync_message`] for why and how pieces travel).
//!
//! Records are never cut: a piece is a delta of whole records, so each
//! merges on its own. A record larger than the target travels alone.
//! Order is the delta's (sorted maps), so the split is deterministic.

use shoal_crdt_state::{Delta, wire};

/// Bytes a delta's encoding costs beyond its records: four map lengths
/// and the envelope byte, with room to spare.
const DELTA_OVERHEAD: usize = 64;

/// `delta` as pieces of about `target` bytes each (one piece when it fits,
/// none when it is empty).
pub(crate) fn split(delta: Delta, target: usize) -> Vec<Delta> {
    if delta.is_empty() {
        return Vec::new();
    }
    if wire::encoded_len(&delta) <= target {
        return vec![delta];
    }
    let mut pieces = Pieces {
        target,
        done: Vec::new(),
        current: Delta::default(),
        size: DELTA_OVERHEAD,
    };
    for (name, record) in delta.desired.rcs {
        pieces.make_room(wire::encoded_len(&(&name, &record)));
        pieces.current.desired.rcs.insert(name, record);
    }
    for (node, decision) in delta.desired.nodes {
        pieces.make_room(wire::encoded_len(&(node, &decision)));
        pieces.current.desired.nodes.insert(node, decision);
    }
    for (name, record) in delta.desired.services {
        pieces.make_room(wire::encoded_len(&(&name, &record)));
        pieces.current.desired.services.insert(name, record);
    }
    for (name, record) in delta.desired.tokens {
        pieces.make_room(wire::encoded_len(&(&name, &record)));
        pieces.current.desired.tokens.insert(name, record);
    }
    if !delta.desired.join.is_empty() {
        pieces.make_room(wire::encoded_len(&delta.desired.join));
        pieces.current.desired.join = delta.desired.join;
    }
    for (node, record) in delta.observed.nodes {
        pieces.make_room(wire::encoded_len(&(node, &record)));
        pieces.current.observed.nodes.insert(node, record);
    }
    pieces.finish()
}

/// The pieces built so far and the one being filled.
struct Pieces {
    target: usize,
    done: Vec<Delta>,
    current: Delta,
    /// Estimated encoding size of `current`.
    size: usize,
}

impl Pieces {
    /// Closes the current piece if a record of `len` bytes would overfill it.
    fn make_room(&mut self, len: usize) {
        if self.size + len > self.target && self.size > DELTA_OVERHEAD {
            self.done.push(std::mem::take(&mut self.current));
            self.size = DELTA_OVERHEAD;
        }
        self.size += len;
    }

    fn finish(mut self) -> Vec<Delta> {
        if self.size > DELTA_OVERHEAD {
            self.done.push(self.current);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_crdt_state::hlc::Hlc;
    use shoal_crdt_state::node::NodeId;
    use shoal_crdt_state::register;
    use shoal_crdt_state::{DesiredDelta, RcRecord};

    fn delta_of(rcs: usize, padding: usize) -> Delta {
        let mut desired = DesiredDelta::default();
        for i in 0..rcs {
            let record = RcRecord {
                replicas: Some(register::write(
                    i as u32,
                    Hlc::new(1_700_000_000_000 + i as u64, 0, NodeId(7)),
                )),
                ..RcRecord::default()
            };
            desired
                .rcs
                .insert(format!("rc-{i:05}-{}", "x".repeat(padding)), record);
        }
        desired.into()
    }

    #[test]
    fn a_small_delta_is_one_piece_and_an_empty_one_none() {
        let delta = delta_of(3, 0);
        assert_eq!(split(delta.clone(), 1 << 20), vec![delta]);
        assert!(split(Delta::default(), 1 << 20).is_empty());
    }

    #[test]
    fn pieces_stay_under_the_target_and_together_hold_every_record() {
        let delta = delta_of(2_000, 100);
        let whole = wire::encoded_len(&delta);
        let target = 16 * 1024;
        let pieces = split(delta.clone(), target);
        assert!(pieces.len() >= whole / target, "{} pieces", pieces.len());
        let mut joined = Delta::default();
        for piece in pieces {
            assert!(wire::encoded_len(&piece) <= target);
            joined.merge(piece);
        }
        assert_eq!(joined, delta);
    }

    #[test]
    fn a_record_larger_than_the_target_travels_alone() {
        let delta = delta_of(3, 5_000);
        let pieces = split(delta, 1_000);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.desired.rcs.len() == 1));
    }
}
