//! Discrete-event simulator for Shoal peers.
//!
//! Map of the crate:
//! - [`queue`]: the event queue, ordered by (time, sequence).
//! - [`net`]: the network model (latency, loss, duplication, reordering,
//!   size limit, partitions, one-way cuts).
//! - [`node`]: the `SimNode` trait any simulated node implements.
//! - [`world`]: nodes + network + queue + one seeded RNG + trace hash.
//! - [`membership_node`]: a node that is a real `shoal_gossip::Membership`.
//! - [`invariants`]: checks run at quiescence.
//! - [`report`]: figures and the JSON line.
//! - [`scenarios`]: join, crash, partition-heal, loss, churn.
//! - [`fake_runtime`]: a container engine per node (start latency, crash
//!   injection): the ground truth of what runs.
//! - [`peer_node`]: a node that is a whole `shoal::peer::Peer` plus its engine.
//! - [`peer_invariants`]: replica counts and agreement checked at quiescence.
//! - [`sync_breakdown`]: sync bytes by kind and part (`SHOAL_SIM_BREAKDOWN=1`).
//! - [`verify_cache`]: record signatures checked once per run, not per peer.
//! - [`scenarios::peer`]: apply, failover, scale, rc-partition-heal, rc-join,
//!   host-port, full-restart.
#![forbid(unsafe_code)]

pub mod fake_runtime;
pub mod invariants;
pub mod membership_node;
pub mod net;
pub mod node;
pub mod peer_invariants;
pub mod peer_node;
pub mod queue;
pub mod report;
pub mod scenarios;
pub mod sync_breakdown;
pub mod verify_cache;
pub mod world;
