//! Messages of the state sync protocol, sent over a reliable stream.
//!
//! Anti-entropy between A and B, started by A every period:
//! 1. A → B `Hello { hash }`: the hash of A's digest; B stops here if equal.
//! 2. B → A `Pull { digest }`: B's per-record versions.
//! 3. A → B `Push { delta: what B lacks, digest: Some(A's digest) }`.
//! 4. B → A `Push { delta: what A lacks, digest: None }`, if anything.
//!
//! A joining peer sends `Pull` with its (empty) digest to the peer it joined
//! through, and gets the full state back. Deltas too large for a SWIM
//! broadcast travel as `Push` to a few peers, which forward what was new to
//! them while `hops` allows (infection-style).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::{Delta, Digest};

/// Largest sync message accepted from the network.
pub const MAX_SYNC_BYTES: usize = 32 * 1024 * 1024;

/// How far a pushed delta is forwarded (each hop to `push_fanout` peers).
pub const MAX_PUSH_HOPS: u8 = 4;

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
        hops: u8,
    },
}
