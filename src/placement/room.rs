//! The most cpu and the most memory any node has left, kept up to date as
//! the assignment charges nodes, so a replica that fits nowhere is known at
//! once instead of after walking the whole ring (a full cluster, surge
//! slots with no room left).

use shoal_crdt_state::spec::Resources;

/// A max segment tree over the slots' free cpu and free memory.
pub struct MostFree {
    /// Leaves at `n..2n`, parents above: node `i` is the max of `2i`, `2i+1`.
    cpu: Vec<u64>,
    memory: Vec<u64>,
    n: usize,
}

impl MostFree {
    pub fn new(free: impl ExactSizeIterator<Item = Resources>) -> Self {
        let n = free.len();
        let (mut cpu, mut memory) = (vec![0; 2 * n], vec![0; 2 * n]);
        for (i, r) in free.enumerate() {
            cpu[n + i] = r.cpu_millis;
            memory[n + i] = r.memory_bytes;
        }
        for i in (1..n).rev() {
            cpu[i] = cpu[2 * i].max(cpu[2 * i + 1]);
            memory[i] = memory[2 * i].max(memory[2 * i + 1]);
        }
        MostFree { cpu, memory, n }
    }

    /// Slot `s` now has `free` left.
    pub fn set(&mut self, s: usize, free: Resources) {
        let mut i = self.n + s;
        self.cpu[i] = free.cpu_millis;
        self.memory[i] = free.memory_bytes;
        while i > 1 {
            i /= 2;
            self.cpu[i] = self.cpu[2 * i].max(self.cpu[2 * i + 1]);
            self.memory[i] = self.memory[2 * i].max(self.memory[2 * i + 1]);
        }
    }

    /// False when no slot has the cpu, or no slot has the memory, of
    /// `request`: then it fits nowhere. True says only that it might.
    pub fn might_fit(&self, request: &Resources) -> bool {
        // Index 1 is the root (for one slot, the leaf itself).
        self.n > 0 && self.cpu[1] >= request.cpu_millis && self.memory[1] >= request.memory_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu_millis: u64, memory_bytes: u64) -> Resources {
        Resources {
            cpu_millis,
            memory_bytes,
        }
    }

    #[test]
    fn tracks_the_largest_cpu_and_memory_left() {
        let mut most = MostFree::new([res(5, 50), res(9, 10), res(1, 90)].into_iter());
        assert!(
            most.might_fit(&res(9, 90)),
            "cpu and memory on different slots"
        );
        assert!(!most.might_fit(&res(10, 1)));
        most.set(1, res(2, 10));
        assert!(!most.might_fit(&res(6, 1)));
        assert!(most.might_fit(&res(5, 1)));
        most.set(2, res(1, 40));
        assert!(!most.might_fit(&res(1, 51)));
        assert!(most.might_fit(&res(1, 50)));
    }

    #[test]
    fn one_slot_and_none() {
        let mut one = MostFree::new([res(3, 3)].into_iter());
        assert!(one.might_fit(&res(3, 3)));
        one.set(0, res(0, 0));
        assert!(!one.might_fit(&res(1, 0)));
        assert!(one.might_fit(&res(0, 0)));
        assert!(!MostFree::new(std::iter::empty()).might_fit(&res(0, 0)));
    }
}
