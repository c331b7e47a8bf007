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
//! sees that removal. Neither stamps nor removal registers are signed, so
//! a peer also refuses another key for an id that is live in its own
//! member view (see [`admits_binding`] and [`admits_removal`]; what a peer
//! that cannot see the node admits is in README, "Node identity").
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

/// Whether `removal` (the id's removal register) releases `binding`: a
/// removal in force stamped after the binding and after its own release.
/// While it does, the id is bound to nothing ([`crate::node_decisions`]).
pub fn releases(removal: Option<&Reg<bool>>, binding: &KeyBinding) -> bool {
    removal.is_some_and(|r| r.val && Some(r.marker) > binding.after && r.marker > binding.stamp)
}

/// Why a key binding from a peer was not merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum BindingRefusal {
    #[error(
        "the node id is live here under its held key (another machine with the same id, or a takeover)"
    )]
    LiveHolder,
    #[error(
        "its stamp is more than {} ms before or after the held binding's (a backdated takeover)",
        CONCURRENT_CLAIM_MS
    )]
    Backdated,
    #[error("it names a release (node delete) this peer does not hold")]
    UnseenRelease,
}

/// Whether a peer holding `held` for a node id takes `incoming` into its
/// join. `held_removal` is the id's removal register this peer holds,
/// `arriving` the one arriving with `incoming` (a `node delete` and the
/// binding after it may travel together) if the peer admitted it.
/// `live`: the id is this peer's own, or an active member of its SWIM view
/// (see the caller for what counts).
///
/// - Another key, while the held binding is in force here (`held_removal`
///   does not release it) and the id is `live`: refused, whatever the
///   stamps and releases say. The transport takes connections for the id
///   only with the key bound here, so a live id is its holder running: a
///   claim by another key is a takeover, or a second machine with the same
///   id. Stamps and removal registers come from the writer; liveness is
///   what this peer sees itself. An arriving removal does not count here:
///   a peer admits one of a live id only when the id is its own (to take
///   it back), and must not take a binding riding with it.
/// - A later release (`after`) than the held one's with another key is
///   taken only if one of the removals is that very release (a removal
///   stamped `after`): the join prefers the later release, so an `after`
///   naming no removal would take over the id.
/// - The same key with a later release is taken if some removal register
///   seen is stamped at or after it (a take-back may have overwritten the
///   removal since): further ahead, the binding would outlive later deletes.
/// - An earlier or absent release loses the join anyway: taken.
/// - Same release, another key: refused when its stamp is more than
///   [`CONCURRENT_CLAIM_MS`] from the held one's (a backdated takeover);
///   within it, the join's first writer wins.
pub fn admits_binding(
    held: Option<&KeyBinding>,
    held_removal: Option<&Reg<bool>>,
    arriving: Option<&Reg<bool>>,
    incoming: &KeyBinding,
    live: bool,
) -> Result<(), BindingRefusal> {
    let Some(held) = held else { return Ok(()) };
    if live && held.key != incoming.key && !releases(held_removal, held) {
        return Err(BindingRefusal::LiveHolder);
    }
    if incoming.after != held.after {
        let mut seen = [held_removal, arriving].into_iter().flatten();
        let admitted = match incoming.after {
            Some(release) if incoming.after > held.after && held.key == incoming.key => {
                seen.any(|r| r.marker >= release)
            }
            Some(release) if incoming.after > held.after => {
                seen.any(|r| r.val && r.marker == release)
            }
            _ => true,
        };
        return if admitted {
            Ok(())
        } else {
            Err(BindingRefusal::UnseenRelease)
        };
    }
    if held.key == incoming.key
        || held.stamp.physical_ms.abs_diff(incoming.stamp.physical_ms) <= CONCURRENT_CLAIM_MS
    {
        return Ok(());
    }
    Err(BindingRefusal::Backdated)
}

/// Whether a peer takes a removal register (and the forgetting that rides
/// with it) for a node id from a peer: not a removal (`val = true`) while
/// the id is `live` here, the peer's own id excepted (the caller passes
/// `live = false` for it: a node takes its own removal in, and back). The
/// "only a down node" check of `node delete` runs where the command is
/// taken; this is the same check at every peer, on what each sees. Let in,
/// a removal of a live node releases its binding until the node takes it
/// back: meanwhile the transport takes any key for the id, the node's
/// records are dropped as unbound, and a binding after that release is no
/// longer refused as [`BindingRefusal::LiveHolder`].
pub fn admits_removal(removal: &Reg<bool>, live: bool) -> bool {
    !(live && removal.val)
}

/// The largest version a removal may forget through. A node's record
/// versions grow by one per change, so no honest bound comes near it; a
/// member's bound of `u64::MAX` would leave the node no version to
/// register above (a max register: for good), and overflow its count.
pub const MAX_FORGETTABLE_VERSION: u64 = u64::MAX >> 1;

/// Whether a peer takes `through` (a removal's "forget the node's records
/// up to this version", [`crate::node_decisions::NodeDecision::forgets`])
/// for a node id `live` here (as for [`admits_removal`]): never above
/// [`MAX_FORGETTABLE_VERSION`] (the node itself included); for a live node
/// only a bound below `held_version`, the newest record of the node held
/// here, so a live node's current record is never forgotten on a peer's
/// word. What a take-back leaves (a bound below the node's newer records)
/// passes.
pub fn admits_forgetting(through: u64, live: bool, held_version: Option<u64>) -> bool {
    through <= MAX_FORGETTABLE_VERSION && (!live || held_version.is_some_and(|held| held > through))
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
