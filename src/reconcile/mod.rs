//! Reconcile: what this peer does with its share of the assignment.
//!
//! Each peer acts only on the replicas placement gives it, and on the pods
//! it already runs. Everything here is pure: time comes in as milliseconds,
//! actions go out as [`PodAction`](shoal_runtime::vocabulary::PodAction)s.
//!
//! - [`local`]: [`LocalPods`], this node's bookkeeping, fed by runtime
//!   observations and start-up adoption.
//! - [`plan`](mod@plan): the rules — start what is assigned, hand over
//!   make-before-break, stop what is no longer declared (highest index
//!   first), restart with back-off, roll out within budget, respect
//!   at-most-declared partitions.
//! - [`rollout`]: the rolling-update gate every peer evaluates alike.
//!
//! Calling order for the peer core: feed every observation to
//! [`LocalPods::handle_observation`], recompute the assignment when state or
//! membership changes, call [`plan()`], hand the actions to the runtime, and
//! schedule a timer at `wake_at`.

pub mod local;
pub mod plan;
pub mod rollout;

pub use local::{ExitKind, LocalPod, LocalPods, LocalState};
pub use plan::{ClusterPods, Plan, ReconcilePolicy, SeenByAll, plan};
