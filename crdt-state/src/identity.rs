//! Node identity a member cannot forge: a node id bound to a signing key,
//! and node records signed by it.
//!
//! Every node keeps an ed25519 key in its data dir. The first time it joins
//! it announces the public key as its [`KeyBinding`], which replicates with
//! the other decisions about nodes ([`crate::node_decisions`]). Every record
//! the node publishes about itself (its [`NodeRecord`]: node info, pod
//! statuses, collection acknowledgement) carries a signature over
//! [`signed_bytes`]; a receiver checks it against the bound key with
//! [`check_record`] before merging, whoever relayed the record.
//!
//! **First writer wins.** Two bindings of one node id join to the one made
//! after the newest release (`shoal node delete`, see [`KeyBinding::after`]),
//! then to the older stamp, then to the smaller key: a total order, so the
//! join is commutative and every peer keeps the same binding however the
//! writes arrive. Stamps come from the writer, so a member could backdate a
//! claim; [`admits_binding`] is the admission rule a peer applies before the
//! join: once it holds a binding, another key for the same id and release is
//! taken only when its stamp is within [`CONCURRENT_CLAIM_MS`] of the held
//! one (two first starts racing), and a later release only when the peer
//! sees that removal. What remains open: a member can still claim an id
//! with a stamp up to [`CONCURRENT_CLAIM_MS`] *before* the held binding's,
//! and wins the join (see README, "Node identity").
//!
//! This crate does no cryptography: the caller passes a [`RecordVerifier`]
//! (the peer uses ring's ed25519), and signing happens in the peer.

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::node::NodeId;
use crate::observed::NodeRecord;
use crate::register::{Reg, encoding};

/// An ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Display for PublicKey {
    /// The first 8 bytes in hex: enough to tell keys apart in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An ed25519 signature (64 bytes; empty on a record never signed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(pub Vec<u8>);

/// A node id's key, as announced by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBinding {
    pub key: PublicKey,
    /// When the node announced it (its hybrid clock).
    pub stamp: Hlc,
    /// The stamp of the release (`removed = true`) this binding follows;
    /// `None` for a node id bound for the first time. A release ends the
    /// bindings made before it, so a deleted node id can be bound anew.
    pub after: Option<Hlc>,
}

impl KeyBinding {
    /// Whether `other` is preferred to `self` in a join: the later release,
    /// then the first writer, then the smaller key.
    pub fn is_superseded_by(&self, other: &KeyBinding) -> bool {
        let rank = |b: &KeyBinding| (std::cmp::Reverse(b.after), b.stamp, b.key);
        rank(other) < rank(self)
    }
}

/// Join `theirs` into `mine` (first writer wins, see the module doc).
pub fn join(mine: &mut Option<KeyBinding>, theirs: Option<KeyBinding>) {
    let Some(theirs) = theirs else { return };
    match mine {
        Some(current) if !current.is_superseded_by(&theirs) => {}
        _ => *mine = Some(theirs),
    }
}

/// How close two claims of one node id by different keys must be (in their
/// stamps' wall milliseconds) to count as a race of first starts, which the
/// join settles; further apart, the later one is an attempt to take over an
/// established id, and an earlier stamp on it is not believed.
pub const CONCURRENT_CLAIM_MS: u64 = 60_000;

/// Whether a peer holding `held` for a node id takes `incoming` into its
/// join. `removals` are the removal registers of the id this peer can see:
/// its own and the one arriving with `incoming` (a `node delete` and the
/// binding after it may travel together).
///
/// - A later release (`after`) than the held one's with another key is
///   taken only if one of `removals` is that very release (a removal
///   stamped `after`): the join prefers the later release, so an `after`
///   naming no removal would take over the id.
/// - The same key with a later release is taken if some removal register
///   seen is stamped at or after it (a take-back may have overwritten the
///   removal since): further ahead, the binding would outlive later deletes.
///
/// Removal registers are not signed, so a member that sends the removal
/// with its binding passes this check (README, "Node identity").
/// - An earlier or absent release loses the join anyway: taken.
/// - Same release, another key: refused when its stamp is more than
///   [`CONCURRENT_CLAIM_MS`] from the held one's (a backdated takeover);
///   within it, the join's first writer wins.
pub fn admits_binding(
    held: Option<&KeyBinding>,
    removals: &[Option<&Reg<bool>>],
    incoming: &KeyBinding,
) -> bool {
    let Some(held) = held else { return true };
    if incoming.after != held.after {
        let mut seen = removals.iter().flatten();
        return match incoming.after {
            Some(release) if incoming.after > held.after && held.key == incoming.key => {
                seen.any(|r| r.marker >= release)
            }
            Some(release) if incoming.after > held.after => {
                seen.any(|r| r.val && r.marker == release)
            }
            _ => true,
        };
    }
    if held.key == incoming.key {
        return true;
    }
    held.stamp.physical_ms.abs_diff(incoming.stamp.physical_ms) <= CONCURRENT_CLAIM_MS
}

/// Checks a signature: the caller's cryptography (ed25519).
pub trait RecordVerifier {
    fn verify(&self, key: &PublicKey, message: &[u8], signature: &Signature) -> bool;
}

/// Makes signatures with one node's key.
pub trait RecordSigner {
    fn public_key(&self) -> PublicKey;
    fn sign(&self, message: &[u8]) -> Signature;
}

/// Separates record signatures from anything else a key might sign.
const RECORD_CONTEXT: &[u8] = b"shoal node record v1";

/// The canonical bytes a node signs for its record: a context string, the
/// node id and every field of the record but the signature, in bincode.
/// The node id is included so a record cannot be replayed under another id.
pub fn signed_bytes(node: NodeId, record: &NodeRecord) -> Vec<u8> {
    encoding(&(
        RECORD_CONTEXT,
        node,
        record.version,
        &record.info,
        &record.pods,
        &record.gc,
    ))
}

/// Why a node record was not merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordRejection {
    #[error(
        "record of node {node} arrived before its key binding: not merged (anti-entropy brings it again)"
    )]
    Unbound { node: NodeId },
    #[error("record of node {node} (version {version}) is not signed by its bound key {key}")]
    BadSignature {
        node: NodeId,
        version: u64,
        key: PublicKey,
    },
}

/// Whether `record`, claimed to be `node`'s, is signed by the key bound to
/// `node`. Records of an unbound node are rejected too: merged, they could
/// never be checked later.
pub fn check_record(
    binding: Option<&KeyBinding>,
    node: NodeId,
    record: &NodeRecord,
    verifier: &dyn RecordVerifier,
) -> Result<(), RecordRejection> {
    let binding = binding.ok_or(RecordRejection::Unbound { node })?;
    if verifier.verify(&binding.key, &signed_bytes(node, record), &record.signature) {
        Ok(())
    } else {
        Err(RecordRejection::BadSignature {
            node,
            version: record.version,
            key: binding.key,
        })
    }
}
