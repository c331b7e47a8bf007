//! Anti-entropy for the member list: a bucketed digest, so that two peers
//! whose views differ exchange only the members of the buckets that differ.
//!
//! Why: SWIM spreads each change a bounded number of times
//! (`max_transmissions`). A peer that was not reachable during that window
//! (it joined a moment later, its roster chunk was lost, it sat behind a
//! partition, a storm of renewals overflowed the piggyback space) never
//! hears about the change again, and the views stay different forever.
//! memberlist fixes this with a periodic full-state push-pull; we send a
//! 64-bucket digest first (about 260 bytes) and then only the members of
//! the buckets that differ, so that a converged cluster pays a digest per
//! period and a single change costs one bucket.
//!
//! Flow: A's timer sends `Digest { reply: false }` to a random member B
//! (any member we know of, down ones included: its address may now run a
//! renewed identity, and it is how the two sides of a healed partition
//! compare notes). B answers with its members in the buckets that differ
//! (roster chunks) and its own digest as `Digest { reply: true }`; A then
//! sends its members of the buckets that still differ. Both sides apply
//! what they receive as foca updates, so a stale identity loses to a newer
//! one, and a peer listed as down learns it and renews.

use std::net::SocketAddr;

use crate::identity::PeerIdentity;

/// Number of digest buckets. 64 keeps the digest datagram small and a
/// bucket at about 16 members in a 1,000-peer cluster.
pub(crate) const BUCKETS: usize = 64;

/// One digest: per bucket, an order-independent hash of the active
/// identities (ourselves included) whose address falls in that bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest {
    /// True when this digest answers one of ours: the receiver sends its
    /// differing members and does not answer with a digest again.
    pub(crate) reply: bool,
    pub(crate) buckets: [u32; BUCKETS],
}

/// FNV-1a then a splitmix64 finalizer: stable across platforms and
/// versions (unlike `std`'s hasher), which a wire digest needs.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Writes the address (ip octets, then port) at the start of `out`;
/// returns the length written (at most 18).
fn addr_bytes(addr: &SocketAddr, out: &mut [u8]) -> usize {
    let ip_len = match addr {
        SocketAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.ip().octets());
            4
        }
        SocketAddr::V6(v6) => {
            out[..16].copy_from_slice(&v6.ip().octets());
            16
        }
    };
    out[ip_len..ip_len + 2].copy_from_slice(&addr.port().to_le_bytes());
    ip_len + 2
}

/// Which bucket an address belongs to (by address, so every identity of
/// one peer, old and renewed, lands in the same bucket).
pub(crate) fn bucket_of(addr: &SocketAddr) -> usize {
    let mut bytes = [0u8; 18];
    let len = addr_bytes(addr, &mut bytes);
    (hash_bytes(&bytes[..len]) % BUCKETS as u64) as usize
}

fn identity_hash(id: &PeerIdentity) -> u32 {
    let mut bytes = [0u8; 34];
    bytes[..8].copy_from_slice(&id.node.0.to_le_bytes());
    let len = 8 + addr_bytes(&id.addr, &mut bytes[8..]);
    bytes[len..len + 8].copy_from_slice(&id.incarnation.to_le_bytes());
    (hash_bytes(&bytes[..len + 8]) >> 32) as u32
}

impl Digest {
    /// Digest of a set of active identities (order does not matter).
    pub(crate) fn of<'a>(active: impl IntoIterator<Item = &'a PeerIdentity>, reply: bool) -> Self {
        let mut buckets = [0u32; BUCKETS];
        for id in active {
            let b = bucket_of(&id.addr);
            buckets[b] = buckets[b].wrapping_add(identity_hash(id));
        }
        Self { reply, buckets }
    }

    /// Buckets in which `self` and `other` disagree.
    pub(crate) fn differing(&self, other: &Digest) -> Vec<usize> {
        (0..BUCKETS)
            .filter(|b| self.buckets[*b] != other.buckets[*b])
            .collect()
    }

    /// Wire form after the envelope byte: a flag byte, then the buckets
    /// as little-endian u32.
    pub(crate) fn encode(&self, kind: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 4 * BUCKETS);
        out.push(kind);
        out.push(u8::from(self.reply));
        for b in &self.buckets {
            out.extend_from_slice(&b.to_le_bytes());
        }
        out
    }

    /// Parses the body (envelope byte removed); `None` if malformed.
    pub(crate) fn decode(body: &[u8]) -> Option<Self> {
        if body.len() != 1 + 4 * BUCKETS {
            return None;
        }
        let reply = match body[0] {
            0 => false,
            1 => true,
            _ => return None,
        };
        let mut buckets = [0u32; BUCKETS];
        for (i, chunk) in body[1..].chunks_exact(4).enumerate() {
            buckets[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Some(Self { reply, buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_crdt_state::node::NodeId;

    fn id(i: u32, inc: u64) -> PeerIdentity {
        let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 7946));
        PeerIdentity::new(NodeId(u64::from(i) * 7919), addr, inc)
    }

    #[test]
    fn equal_sets_in_any_order_have_equal_digests() {
        let a: Vec<PeerIdentity> = (0..300).map(|i| id(i, 1)).collect();
        let mut b = a.clone();
        b.reverse();
        assert!(
            Digest::of(&a, false)
                .differing(&Digest::of(&b, true))
                .is_empty()
        );
    }

    #[test]
    fn a_renewed_identity_changes_exactly_its_own_bucket() {
        let a: Vec<PeerIdentity> = (0..300).map(|i| id(i, 1)).collect();
        let mut b = a.clone();
        b[42] = id(42, 2);
        let diff = Digest::of(&a, false).differing(&Digest::of(&b, false));
        assert_eq!(diff, vec![bucket_of(&b[42].addr)]);
    }

    #[test]
    fn digests_round_trip_and_truncated_ones_are_refused() {
        let d = Digest::of(&[id(1, 1), id(2, 5)], true);
        let bytes = d.encode(0x04);
        assert_eq!(bytes[0], 0x04);
        assert_eq!(Digest::decode(&bytes[1..]).unwrap(), d);
        assert!(Digest::decode(&bytes[1..bytes.len() - 1]).is_none());
        let mut bad = bytes[1..].to_vec();
        bad[0] = 9;
        assert!(Digest::decode(&bad).is_none());
    }

    #[test]
    fn addresses_spread_over_all_buckets() {
        let mut seen = [false; BUCKETS];
        for i in 0..1000 {
            seen[bucket_of(&id(i, 1).addr)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
