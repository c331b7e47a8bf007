//! The hashes every peer must compute bit-for-bit alike.
//!
//! - `node_key(n) = xxh3_64(n as 8 little-endian bytes)`: the node's place
//!   on the ring, once per node;
//! - `rc_key(rc) = xxh3_64(rc name bytes)`, once per RC;
//! - `replica_seed = xxh3_64_with_seed(i as 4 little-endian bytes, rc_key)`,
//!   once per replica;
//! - `probe(seed, j) = fmix64(seed ⊕ (j + 1)·0x9E3779B97F4A7C15)`, the
//!   replica's `j`-th point on the ring, with MurmurHash3's 64-bit finalizer.
//!
//! The encodings are fixed and explicit (no `Hash` derive, no `RandomState`,
//! no platform-dependent width), so every build on every machine agrees.
//! The finalizer is a bijective avalanche, so the probes of one replica are
//! spread over the circle independently of each other and of the node keys.

use shoal_crdt_state::node::NodeId;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Key of a node, computed once per assignment.
pub fn node_key(node: NodeId) -> u64 {
    xxh3_64(&node.0.to_le_bytes())
}

/// Key of an RC, computed once per assignment.
pub fn rc_key(rc: &str) -> u64 {
    xxh3_64(rc.as_bytes())
}

/// Seed of replica `index` of the RC whose key is `rc_key`.
pub fn replica_seed(rc_key: u64, index: u32) -> u64 {
    xxh3_64_with_seed(&index.to_le_bytes(), rc_key)
}

/// The `j`-th probe point of the replica with seed `seed`.
#[inline]
pub fn probe(seed: u64, j: u32) -> u64 {
    let mut x = seed ^ (u64::from(j) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values are part of the cluster's wire contract: a change here
    /// makes peers of different versions disagree on who runs what. The
    /// probe replaced the rendezvous weight (issue #15): peers from before
    /// and after that change must not be mixed in one cluster.
    #[test]
    fn hashes_are_pinned() {
        let seed = replica_seed(rc_key("hello"), 3);
        assert_ne!(seed, replica_seed(rc_key("hello"), 4));
        assert_ne!(replica_seed(rc_key("ab"), 1), replica_seed(rc_key("a"), 1));
        let p = probe(seed, 2);
        assert_ne!(p, probe(seed, 3));
        assert_eq!(
            (seed, node_key(NodeId(7)), p),
            (PINNED_SEED, PINNED_KEY, PINNED_PROBE)
        );
    }

    const PINNED_SEED: u64 = 12_145_845_246_864_497_711;
    const PINNED_KEY: u64 = 9_324_454_920_402_081_455;
    const PINNED_PROBE: u64 = 15_020_903_616_198_976_939;
}
