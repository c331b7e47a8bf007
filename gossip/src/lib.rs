//! Shoal membership: SWIM gossip on foca, pure and sans-IO by default.
//!
//! Map of the crate:
//! - [`identity`]: `PeerIdentity` (node id + address + incarnation), foca's
//!   `Identity`, renewed after a false down.
//! - [`codec`]: foca's wire format on bincode 2, size-limited.
//! - [`envelope`] (private): datagram kinds, roster transfer for joins.
//! - [`config`]: LAN / WAN presets scaled with the cluster size.
//! - `timers` (private): foca's timers and ours as data, fired in deadline
//!   order; the driver sees one deadline (`Membership::poll_timeout`).
//! - [`broadcast`]: application payloads piggybacked on SWIM.
//! - [`view`]: the sorted, versioned `MemberView`.
//! - `sync` (private): member digests for anti-entropy between peers.
//! - [`membership`]: `Membership`, the one owner of foca: feed it, drain it.
//! - [`repeat_log`]: a warning one source repeats, logged once then at most
//!   once a minute with a count.
//!
//! The QUIC transport lives behind the `quic` feature.
#![forbid(unsafe_code)]

pub mod broadcast;
pub mod codec;
pub mod config;
mod envelope;
pub mod identity;
pub mod membership;
#[cfg(feature = "quic")]
pub mod quic;
pub mod repeat_log;
mod sync;
mod timers;
pub mod view;

pub use broadcast::{MAX_BROADCAST_PAYLOAD, Received};
pub use codec::{BincodeCodec, MAX_PACKET_SIZE};
pub use config::Preset;
pub use envelope::datagram_sender;
pub use identity::PeerIdentity;
pub use membership::{Membership, MembershipError, MembershipEvent, MembershipStats, Output};
pub use view::{MemberEntry, MemberState, MemberView};
