//! Events: what each peer decided and did, kept by that peer, and served
//! for the whole cluster by any peer (`shoal get events`, `describe`).
//!
//! - [`store`]: one peer's events, bounded ([`store::EVENTS_KEPT`]
//!   distinct events) and deduplicated (a repeat bumps a count and the
//!   last-seen time: `x3 over 2m`); merging several peers' lists.
//! - [`fanout`]: asking every live peer for its list over QUIC.
//! - [`hub`]: the one fan-in per peer that every watch reads: it gathers
//!   while watched and broadcasts what changed.
//!
//! **Why fan-out, not replication.** The peer core emits events as values
//! (`PeerEvent::Recorded`); the driver keeps them in its [`EventStore`].
//! A reader's peer asks every live member for its list when someone runs
//! `get events` and merges the answers. Replicating events instead would
//! put every start, kill and back-off of every node into the CRDT state
//! that every peer stores, checkpoints and exchanges in anti-entropy: N
//! copies of data nobody reads most of the time, growing with churn, and a
//! crash-looping pod on one node would cost sync traffic on all of them.
//! Fan-out costs nothing until asked, then N-1 small requests. Measured
//! (December, loaded 2-core machine): on a 3-peer loopback cluster a
//! cluster-wide `get events`, CLI process included, took 9-38 ms
//! (`tests/cluster_events.rs` prints it); a full store (1,024 events)
//! is 178 KB on the wire (`fanout.rs`'s test prints it), so even a full
//! answer from every peer of a 100-node cluster is a one-off ~18 MB read
//! where replication would have every peer hold and exchange it always.
//!
//! What fan-out gives up: the events a node recorded are not visible
//! while it is down, and are lost when it restarts. What a down node
//! cannot tell, the others record anyway: a node going down or up and a
//! replica that fits nowhere are derived alike by every peer (cluster-wide
//! events, merged into one row), so the survivors tell it.

pub mod fanout;
pub mod hub;
pub mod store;

pub use fanout::ClusterEvents;
pub use hub::EventHub;
pub use store::{EventJson, EventStore, Target};
