//! Small application payloads piggybacked on SWIM messages (foca's custom
//! broadcasts): how the peer core spreads state deltas without a stream.
//!
//! A payload is addressed by `(origin node, key)` and versioned by the
//! origin's `(identity incarnation, sequence)`. A newer version supersedes
//! an older one everywhere: peers stop forwarding the old one and never
//! deliver it again. Delivery is best effort (infection-style, a bounded
//! number of transmissions); anti-entropy elsewhere repairs what is missed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use shoal_crdt_state::node::NodeId;

use crate::codec::MAX_PACKET_SIZE;
use crate::identity::PeerIdentity;

/// Largest application payload [`crate::Membership::broadcast`] accepts:
/// what is left of a datagram after the SWIM header and the item framing.
pub const MAX_BROADCAST_PAYLOAD: usize = 900;

/// Origin-assigned version: later identity first, then later sequence.
pub type BroadcastVersion = (u64, u64);

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireBroadcast {
    pub(crate) origin: NodeId,
    pub(crate) key: u64,
    pub(crate) version: BroadcastVersion,
    pub(crate) payload: Vec<u8>,
}

impl WireBroadcast {
    pub(crate) fn encode(&self) -> Result<Vec<u8>, bincode::error::EncodeError> {
        bincode::serde::encode_to_vec(self, limit())
    }
}

fn limit() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PACKET_SIZE>()
}

/// A peer's payload, delivered once per version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The node that called `broadcast` (not the peer that relayed it).
    pub from: NodeId,
    pub key: u64,
    pub version: BroadcastVersion,
    pub payload: Vec<u8>,
}

/// Identifies one queued broadcast inside foca, to drop superseded ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastKey {
    origin: NodeId,
    key: u64,
    version: BroadcastVersion,
}

impl foca::Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.origin == other.origin && self.key == other.key && self.version >= other.version
    }
}

/// What foca's handler and [`crate::Membership`] share: the newest version
/// seen per `(origin, key)` and the deliveries not yet drained. Memory is
/// bounded by (peers × keys in use).
#[derive(Debug, Default)]
pub(crate) struct Book {
    newest: BTreeMap<(NodeId, u64), BroadcastVersion>,
    pub(crate) received: VecDeque<Received>,
}

/// foca owns its handler, so the handler and `Membership` share the book.
/// The lock is never contended: one owner drives foca.
#[derive(Debug, Default, Clone)]
pub struct Handler(Arc<Mutex<Book>>);

impl Handler {
    pub(crate) fn book(&self) -> MutexGuard<'_, Book> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A broadcast item from the network that could not be decoded; foca drops
/// the rest of that packet's broadcasts, membership state is unaffected.
#[derive(Debug, thiserror::Error)]
#[error("malformed broadcast item (dropped): {0}")]
pub struct BroadcastDecodeError(#[from] bincode::error::DecodeError);

impl foca::BroadcastHandler<PeerIdentity> for Handler {
    type Key = BroadcastKey;
    type Error = BroadcastDecodeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&PeerIdentity>,
    ) -> Result<Option<BroadcastKey>, BroadcastDecodeError> {
        let (item, _): (WireBroadcast, usize) = bincode::serde::decode_from_slice(data, limit())?;
        let mut book = self.book();
        let slot = (item.origin, item.key);
        if book
            .newest
            .get(&slot)
            .is_some_and(|seen| *seen >= item.version)
        {
            return Ok(None);
        }
        book.newest.insert(slot, item.version);
        let key = BroadcastKey {
            origin: item.origin,
            key: item.key,
            version: item.version,
        };
        // `sender` is None for our own `add_broadcast`: not a delivery.
        if sender.is_some() {
            book.received.push_back(Received {
                from: item.origin,
                key: item.key,
                version: item.version,
                payload: item.payload,
            });
        }
        Ok(Some(key))
    }
}
