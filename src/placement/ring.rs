//! The ring the probes walk: usable nodes sorted by [`node_key`], and the
//! order in which one replica prefers them.
//!
//! A replica has `P` probe points on the 64-bit circle ([`probe`]). A node's
//! distance to the replica is the clockwise distance from the nearest probe
//! at or before the node's key; the replica prefers nearer nodes (ties: the
//! lower slot, i.e. the lower node id). That distance depends only on the
//! replica and the node, so a join or leave changes no other node's rank —
//! the property that keeps disruption minimal, as with rendezvous hashing.
//!
//! Sorting the probes cuts the circle into arcs, one per probe; the nodes of
//! an arc are at increasing distance from its probe. [`Walk`] merges the `P`
//! arcs, so each node is visited exactly once, and the first few cost one
//! binary search per probe, not one hash per node.
//!
//! [`node_key`]: super::hash::node_key

use super::hash::probe;

/// Most probes a walk can use (the stack array of arcs).
pub const MAX_PROBES: usize = 32;

/// Slots sorted by (key, slot index).
pub struct Ring {
    keys: Vec<u64>,
    slots: Vec<usize>,
}

impl Ring {
    /// The ring of `members`, given each slot's key in `keys`.
    pub fn new(keys: &[u64], members: impl Iterator<Item = usize>) -> Self {
        let mut pairs: Vec<(u64, usize)> = members.map(|s| (keys[s], s)).collect();
        pairs.sort_unstable();
        Ring {
            keys: pairs.iter().map(|p| p.0).collect(),
            slots: pairs.iter().map(|p| p.1).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Every slot of the ring, nearest first, for the replica with `seed`.
    /// `probes` is clamped to `1..=MAX_PROBES`.
    pub fn walk(&self, seed: u64, probes: usize) -> Walk<'_> {
        let count = probes.clamp(1, MAX_PROBES);
        let mut points = [0u64; MAX_PROBES];
        for (j, p) in points.iter_mut().take(count).enumerate() {
            *p = probe(seed, j as u32);
        }
        let points = &mut points[..count];
        points.sort_unstable();
        let mut arcs = [Arc::default(); MAX_PROBES];
        let mut len = 0;
        for (j, &p) in points.iter().enumerate() {
            if j > 0 && points[j - 1] == p {
                continue;
            }
            arcs[len] = Arc {
                probe: p,
                pos: self.keys.partition_point(|k| *k < p),
                left: 0,
                head: (0, 0),
            };
            len += 1;
        }
        let n = self.keys.len();
        // An arc runs from its probe to the next one; the last wraps round
        // to the first (and a lone probe's arc is the whole circle).
        let ends: [usize; MAX_PROBES] = std::array::from_fn(|a| {
            if a + 1 < len {
                arcs[a + 1].pos
            } else {
                arcs[0].pos + n
            }
        });
        let mut walk = Walk {
            ring: self,
            arcs,
            heap: [0; MAX_PROBES],
            len: 0,
        };
        for (a, end) in ends.iter().enumerate().take(len) {
            let arc = &mut walk.arcs[a];
            arc.left = end - arc.pos;
            if arc.left > 0 {
                arc.head = self.head(arc);
                walk.heap[walk.len] = a as u8;
                walk.len += 1;
            }
        }
        for i in (0..walk.len / 2).rev() {
            walk.sift_down(i);
        }
        walk
    }

    /// (distance, slot) of the next slot of `arc`, which has one left.
    fn head(&self, arc: &Arc) -> (u64, usize) {
        let at = arc.pos % self.keys.len();
        (self.keys[at].wrapping_sub(arc.probe), self.slots[at])
    }
}

/// One probe's arc: the next slot to visit and how many remain.
#[derive(Debug, Clone, Copy, Default)]
struct Arc {
    probe: u64,
    /// Ring position of the next slot (taken modulo the ring's length).
    pos: usize,
    left: usize,
    /// (distance, slot) at `pos` while `left > 0`: the walk's sort key.
    head: (u64, usize),
}

/// Slots in the order one replica prefers them; see the module comment.
/// The arcs that have slots left form a binary min-heap on their heads, so
/// a step costs O(log P) comparisons, not P: a walk that runs through the
/// whole ring (a full cluster) stays cheap.
pub struct Walk<'r> {
    ring: &'r Ring,
    arcs: [Arc; MAX_PROBES],
    /// Indices into `arcs`; `heap[..len]` is the heap.
    heap: [u8; MAX_PROBES],
    len: usize,
}

impl Walk<'_> {
    fn key(&self, i: usize) -> (u64, usize) {
        self.arcs[usize::from(self.heap[i])].head
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if l < self.len && self.key(l) < self.key(least) {
                least = l;
            }
            if r < self.len && self.key(r) < self.key(least) {
                least = r;
            }
            if least == i {
                return;
            }
            self.heap.swap(i, least);
            i = least;
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let a = usize::from(self.heap[0]);
        let (_, slot) = self.arcs[a].head;
        let arc = &mut self.arcs[a];
        arc.pos += 1;
        arc.left -= 1;
        if arc.left > 0 {
            arc.head = self.ring.head(arc);
        } else {
            self.len -= 1;
            self.heap[0] = self.heap[self.len];
        }
        self.sift_down(0);
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[u64]) -> Ring {
        Ring::new(keys, 0..keys.len())
    }

    #[test]
    fn a_walk_visits_every_slot_once() {
        let keys: Vec<u64> = (0..500u64).map(|i| probe(i, 99)).collect();
        let r = ring(&keys);
        for probes in [1, 2, 7, MAX_PROBES, 100] {
            for seed in 0..50 {
                let mut seen: Vec<usize> = r.walk(seed, probes).collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..500).collect::<Vec<_>>(), "{probes} probes");
            }
        }
        assert_eq!(ring(&[]).walk(1, 5).next(), None);
    }

    /// The order is by distance from the nearest probe before the key,
    /// whatever other slots exist: removing slots keeps the others' order.
    #[test]
    fn the_order_is_by_distance_and_other_slots_do_not_change_it() {
        let keys: Vec<u64> = (0..300u64).map(|i| probe(i, 7)).collect();
        let seed = 12_345;
        let probes = 5;
        let points: Vec<u64> = (0..probes).map(|j| probe(seed, j)).collect();
        let distance = |k: u64| points.iter().map(|p| k.wrapping_sub(*p)).min().unwrap();
        let full: Vec<usize> = ring(&keys).walk(seed, probes as usize).collect();
        let ds: Vec<u64> = full.iter().map(|s| distance(keys[*s])).collect();
        assert!(ds.windows(2).all(|w| w[0] < w[1]), "not by distance");
        let odd = Ring::new(&keys, (0..300).filter(|s| s % 2 == 1));
        let sub: Vec<usize> = odd.walk(seed, probes as usize).collect();
        let expected: Vec<usize> = full.into_iter().filter(|s| s % 2 == 1).collect();
        assert_eq!(sub, expected);
    }

    #[test]
    fn equal_keys_go_to_the_lower_slot_first() {
        let r = ring(&[5, 5, 5]);
        assert_eq!(r.walk(0, 1).collect::<Vec<_>>().len(), 3);
        let order: Vec<usize> = r.walk(0, 3).collect();
        assert_eq!(order, vec![0, 1, 2]);
    }
}
