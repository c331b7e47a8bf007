//! Placement: which node runs which replica, computed alike by every peer.
//!
//! There is no scheduler process. Each peer evaluates [`assign`] on its own
//! view of the desired state (live RCs) and the node records; peers with the
//! same view get the same [`Assignment`], and a peer acts only on its share.
//!
//! - [`weight`]: the fixed rendezvous hash (part of the cluster contract).
//! - [`assign`](mod@assign): bounded-load rendezvous hashing with spread.
//! - [`assignment`]: the result, and the disruption measures [`moved`] /
//!   [`ideal_moves`].
//! - [`unplaced`]: why a replica fits nowhere, in the scheduler's wording.

pub mod assign;
pub mod assignment;
pub mod unplaced;
pub mod weight;

pub use assign::{NodeCandidate, assign};
pub use assignment::{Assignment, ideal_moves, moved};
pub use unplaced::{NodeRejection, Unplaced};
