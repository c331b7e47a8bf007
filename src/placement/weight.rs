//! The rendezvous weights every peer must compute bit-for-bit alike.
//!
//! A weight is `xxh3_64_with_seed(node id as 8 little-endian bytes, seed)`
//! where `seed = xxh3_64(len(rc) as u32 LE ‖ rc bytes ‖ index as u32 LE)`.
//! Both encodings are fixed and explicit (no `Hash` derive, no `RandomState`,
//! no platform-dependent width), so every build on every machine agrees.
//! The seed is computed once per replica and the per-node call hashes only
//! 8 bytes, which keeps full highest-random-weight over 1,000 nodes ×
//! 10,000 replicas affordable (see `examples/bench_placement.rs`).

use shoal_crdt_state::node::NodeId;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Seed of replica `index` of RC `rc`: one hash per replica.
pub fn replica_seed(rc: &str, index: u32) -> u64 {
    let mut bytes = Vec::with_capacity(rc.len() + 8);
    bytes.extend_from_slice(&(rc.len() as u32).to_le_bytes());
    bytes.extend_from_slice(rc.as_bytes());
    bytes.extend_from_slice(&index.to_le_bytes());
    xxh3_64(&bytes)
}

/// Weight of `node` for the replica whose seed is `seed`: highest wins.
#[inline]
pub fn weight(seed: u64, node: NodeId) -> u64 {
    xxh3_64_with_seed(&node.0.to_le_bytes(), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values are part of the cluster's wire contract: a change here
    /// makes peers of different versions disagree on who runs what.
    #[test]
    fn weights_are_stable_across_builds() {
        let seed = replica_seed("hello", 3);
        assert_eq!(seed, replica_seed("hello", 3));
        assert_ne!(seed, replica_seed("hello", 4));
        assert_ne!(replica_seed("ab", 1), replica_seed("a", 1));
        assert_eq!(
            weight(seed, NodeId(7)),
            xxh3_64_with_seed(&7u64.to_le_bytes(), seed)
        );
        assert_ne!(weight(seed, NodeId(7)), weight(seed, NodeId(8)));
    }
}
