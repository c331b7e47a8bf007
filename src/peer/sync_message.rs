//! Messages of the state sync protocol, sent over a reliable stream.
//!
//! Anti-entropy between A and B, started by A every period:
//! 1. A → B `Hello { hash }`: the hash of A's digest; B stops here if equal.
//! 2. B → A `Pull { digest }`: B's per-record stamps, versions and content hashes.
//! 3. A → B `Push { delta: what B lacks, digest: Some(A's digest) }`.
//! 4. B → A `Push { delta: what A lacks, digest: None }`, if anything.
//!
//! A joining peer sends `Pull` with its (empty) digest to the peer it joined
//! through, and gets the full state back. Every change also travels as
//! `Push` to a few random peers. Desired-state records that were new to a
//! receiver are forwarded by it the same way (infection-style, batched per
//! short tick): each peer forwards a record version at most once, so the
//! spreading stops by itself after about log(N) rounds. Node records are
//! not forwarded: SWIM piggybacking and anti-entropy carry them on.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::{Delta, Digest};

/// Largest sync message accepted from the network.
pub const MAX_SYNC_BYTES: usize = 32 * 1024 * 1024;

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
        /// Set when the sender wants what it lacks in return.
        digest: Option<Digest>,
    },
}
