//! Services: a stable name and address for an application. The control
//! plane (Service objects in the desired state, endpoints derived from the
//! pods every peer already knows about) meets the data plane (every peer's
//! load balancer and DNS server) at one value, the [`ServiceTable`].
//!
//! - [`endpoints`]: the table, derived (pure) from desired state, pod
//!   statuses, member view and placement; `Snapshot::services` holds it.
//! - [`table`]: the table's shape.

pub mod endpoints;
pub mod table;

pub use table::{Endpoint, ServiceEntry, ServicePortEntry, ServiceTable};
