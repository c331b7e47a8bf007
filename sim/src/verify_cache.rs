//! A record verifier shared by every simulated peer: it remembers each
//! ed25519 check's answer, so a record signed once is verified once per
//! run instead of once per peer that receives it. The answer is the one
//! ed25519 gives (a miss runs the real check), so no outcome changes; only
//! the simulator's CPU does. Real peers verify every record themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shoal::peer::{Ed25519, Verifier};
use shoal_crdt_state::identity::{PublicKey, RecordVerifier, Signature};
use xxhash_rust::xxh3::xxh3_128;

/// Entries kept before the cache starts over (about 200 MB at most); a run
/// verifies far fewer distinct records than this.
const MAX_ENTRIES: usize = 1 << 20;

/// (key, 128-bit hash of the signed bytes, signature) -> valid. The exact
/// signature is part of the key, so a tampered signature is a miss; a
/// tampered message is a miss unless its 128-bit hash collides.
type Entry = ([u8; 32], u128, Vec<u8>);

#[derive(Debug, Default)]
pub struct VerifyCache {
    answers: Mutex<HashMap<Entry, bool>>,
}

impl VerifyCache {
    /// A verifier for a peer's config, backed by this cache.
    pub fn verifier(self: &Arc<Self>) -> Verifier {
        Verifier(self.clone())
    }

    /// Distinct (key, message, signature) triples checked so far.
    pub fn len(&self) -> usize {
        self.answers.lock().map_or(0, |a| a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RecordVerifier for VerifyCache {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        let entry = (key.0, xxh3_128(message), signature.0.clone());
        // A poisoned lock only means another thread panicked mid-insert;
        // the simulator is single-threaded, so fall back to checking.
        let Ok(mut answers) = self.answers.lock() else {
            return Ed25519.verify(key, message, signature);
        };
        if let Some(&valid) = answers.get(&entry) {
            return valid;
        }
        let valid = Ed25519.verify(key, message, signature);
        if answers.len() >= MAX_ENTRIES {
            answers.clear();
        }
        answers.insert(entry, valid);
        valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal::peer::NodeKeys;
    use shoal_crdt_state::identity::RecordSigner;
    use shoal_crdt_state::node::NodeId;

    #[test]
    fn answers_as_ed25519_does_hit_or_miss() {
        let cache = Arc::new(VerifyCache::default());
        let keys = NodeKeys::insecure_for_tests(NodeId(7));
        let other = NodeKeys::insecure_for_tests(NodeId(8));
        let signature = keys.sign(b"record");
        let verifier = cache.verifier();
        for _ in 0..2 {
            assert!(verifier.verify(&keys.public_key(), b"record", &signature));
            assert!(!verifier.verify(&keys.public_key(), b"recorD", &signature));
            assert!(!verifier.verify(&other.public_key(), b"record", &signature));
            let mut forged = signature.clone();
            forged.0[0] ^= 1;
            assert!(!verifier.verify(&keys.public_key(), b"record", &forged));
        }
        assert_eq!(cache.len(), 4);
    }
}
