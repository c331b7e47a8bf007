//! The node's signing key and the ed25519 checks of node records
//! (`shoal_crdt_state::identity` decides what is signed and when a record
//! is accepted; this is the cryptography it is given).
//!
//! Signing is deterministic (ed25519), so it may run in the core; the key
//! itself is made by the shell from the OS's randomness and kept in the
//! data dir (`shell::persist::node_key`).

use std::sync::Arc;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use shoal_crdt_state::identity::{PublicKey, RecordSigner, RecordVerifier, Signature};
use shoal_crdt_state::node::NodeId;

/// This node's ed25519 key pair, shared by copies of the peer's config.
#[derive(Clone)]
pub struct NodeKeys {
    pair: Arc<Ed25519KeyPair>,
    public: PublicKey,
}

impl std::fmt::Debug for NodeKeys {
    /// The public half only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKeys({})", self.public)
    }
}

impl NodeKeys {
    /// The key pair of a 32-byte ed25519 seed (what the data dir keeps).
    pub fn from_seed(seed: &[u8; 32]) -> NodeKeys {
        // A 32-byte seed is always a valid ed25519 private key.
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).expect("32-byte ed25519 seed");
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        NodeKeys {
            pair: Arc::new(pair),
            public: PublicKey(public),
        }
    }

    /// A key anyone can derive from the node id: for simulations and tests
    /// only. A real peer is given the key of its data dir.
    pub fn insecure_for_tests(node: NodeId) -> NodeKeys {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&node.0.to_le_bytes());
        seed[8..16].copy_from_slice(b"testonly");
        NodeKeys::from_seed(&seed)
    }
}

impl RecordSigner for NodeKeys {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.pair.sign(message).as_ref().to_vec())
    }
}

/// Ed25519 verification of record signatures (ring).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ed25519;

impl RecordVerifier for Ed25519 {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        UnparsedPublicKey::new(&ED25519, key.0)
            .verify(message, &signature.0)
            .is_ok()
    }
}

/// The record verifier a peer uses: ed25519 unless its config says
/// otherwise (the simulator shares one that remembers results across its
/// peers, so the same signature is not checked again by each of them).
#[derive(Clone)]
pub struct Verifier(pub Arc<dyn RecordVerifier + Send + Sync>);

impl Default for Verifier {
    fn default() -> Self {
        Verifier(Arc::new(Ed25519))
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl RecordVerifier for Verifier {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        self.0.verify(key, message, signature)
    }
}
