//! Placement: which node runs which replica, computed alike by every peer.
//!
//! There is no scheduler process. Each peer evaluates [`assign`] on its own
//! view of the desired state (live RCs) and the node records; peers with the
//! same view get the same [`Assignment`], and a peer acts only on its share.
//!
//! - [`inputs`](mod@inputs): what placement sees — the [`NodeCandidate`]s
//!   and the host ports their pods hold — built from the observed state in
//!   one place, for the peer core and the simulator alike.
//! - [`hash`]: the fixed node keys and replica probes (part of the
//!   cluster contract).
//! - `ring`: the order in which a replica prefers nodes (multi-probe
//!   consistent hashing), walked nearest first.
//! - `room`: the most cpu and memory any node has left, so a replica that
//!   fits nowhere skips the walk.
//! - [`assign`](mod@assign): that order under bounded load and spread.
//! - [`assignment`]: the result, and the disruption measures [`moved`] /
//!   [`ideal_moves`].
//! - [`unplaced`]: why a replica fits nowhere, in the scheduler's wording.

pub mod assign;
pub mod assignment;
pub mod hash;
pub mod inputs;
mod ring;
mod room;
pub mod unplaced;

pub use assign::{assign, assign_with_probes};
pub use assignment::{Assignment, ideal_moves, moved};
pub use inputs::{HeldPort, HostPort, NodeCandidate, WantedPorts, holds_ports, inputs, live_rcs};
pub use unplaced::{NodeRejection, Unplaced};
