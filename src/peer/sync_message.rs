//! Messages of the state sync protocol, sent over a reliable stream.
//!
//! Anti-entropy between A and B, started by A every period:
//! 1. A → B `Hello { hash }`: the hash of A's digest; B stops here if equal.
//! 2. B → A `Pull { digest }`: B's per-record stamps, versions and content hashes.
//! 3. A → B `Push { delta: what B lacks, digest: Some(A's digest) }`; the
//!    digest is left out when B's shows that A lacks nothing
//!    (`Digest::holds_all_of`: A is the side ahead), and B answers nothing.
//! 4. B → A `Push { delta: what A lacks, digest: None }`, if anything.
//!
//! A joining peer sends `Pull` with its (empty) digest to the peer it joined
//! through, and gets the full state back. Every change also travels as
//! `Push` to a few random peers. Desired-state records that were new to a
//! receiver are forwarded by it the same way (infection-style, batched per
//! short tick): each peer forwards a record version at most once, so the
//! spreading stops by itself after about log(N) rounds. Node records are
//! not forwarded: SWIM piggybacking and anti-entropy carry them on.
//!
//! **Big transfers move in pieces.** A `Push` whose encoding would pass
//! [`PIECE_BYTES`] is split, record by record, into pieces of about that
//! size, each a `Push` of its own that merges on its own (a delta is a
//! join, so pieces may arrive in any order, and losing one loses only what
//! it carried, which the next anti-entropy round sends again). The digest
//! of an answer rides on the last piece. The shell sends the pieces for
//! one peer on one QUIC stream, one frame each, so the transfer moves at
//! the receiver's pace; the receiver checks every piece against the one
//! network limit, [`MAX_MESSAGE_BYTES`], and rejects a truncated or
//! oversized one with a reason, keeping the pieces it merged. While a
//! split transfer is arriving, the receiver starts no anti-entropy round
//! of its own (each would ask for the same records again), and it does not
//! forward what the transfer brings: that is a joiner (or a peer long
//! away) catching up with records the rest of the cluster holds.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;
pub use shoal_crdt_state::wire::MAX_MESSAGE_BYTES;
use shoal_crdt_state::{Delta, Digest};

/// The size pieces of a split transfer aim at: an eighth of the one
/// network limit, so that a single record up to the limit still travels
/// (alone) and a receiver holds little of a transfer at once.
pub const PIECE_BYTES: usize = MAX_MESSAGE_BYTES / 8;

/// Which piece of a split transfer a `Push` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// 0-based.
    pub index: u32,
    pub count: u32,
}

impl Piece {
    pub fn is_last(&self) -> bool {
        self.index + 1 >= self.count
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEnvelope {
    pub from: NodeId,
    /// Where the sender is reached: replies go here, not to the packet's
    /// source address (which may be a bind address or a NAT's).
    pub reply_to: SocketAddr,
    pub message: SyncMessage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMessage {
    Hello {
        digest_hash: u64,
    },
    Pull {
        digest: Digest,
    },
    Push {
        delta: Delta,
        /// Set when the sender wants what it lacks in return (on the last
        /// piece of a split transfer).
        digest: Option<Digest>,
        /// Set when the transfer was split: which piece this is.
        piece: Option<Piece>,
    },
}

impl SyncMessage {
    /// The kind's name, as metrics and logs show it.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncMessage::Hello { .. } => "hello",
            SyncMessage::Pull { .. } => "pull",
            SyncMessage::Push { .. } => "push",
        }
    }
}
