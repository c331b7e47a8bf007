//! Placement: which node runs which replica, computed alike by every peer.
//!
//! There is no scheduler process. Each peer evaluates [`assign`] on its own
//! view of the desired state (live RCs) and the node records; peers with the
//! same view get the same [`Assignment`], and a peer acts only on its share.
//!
//! - [`inputs`](mod@inputs): what placement sees — the [`NodeCandidate`]s
//!   and the host ports their pods hold — built from the observed state in
//!   one place, for the peer core and the simulator alike.
//! - [`weight`]: the fixed rendezvous hash (part of the cluster contract).
//! - [`assign`](mod@assign): bounded-load rendezvous hashing with spread.
//! - [`assignment`]: the result, and the disruption measures [`moved`] /
//!   [`ideal_moves`].
//! - [`unplaced`]: why a replica fits nowhere, in the scheduler's wording.

pub mod assign;
pub mod assignment;
pub mod inputs;
pub mod unplaced;
pub mod weight;

pub use assign::assign;
pub use assignment::{Assignment, ideal_moves, moved};
pub use inputs::{HeldPort, HostPort, NodeCandidate, WantedPorts, holds_ports, inputs, live_rcs};
pub use unplaced::{NodeRejection, Unplaced};
