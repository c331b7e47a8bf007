//! The shell: the only part with tokio, sockets, files and Docker.
//!
//! - [`addresses`]: which address a peer listens on and advertises.
//! - [`handle`]: requests to the task that owns the peer core.
//! - [`snapshots`]: the immutable snapshots reads are served from.
//! - `driver`: that task — feeds the core, drains its outputs, sleeps
//!   until the core's one timer deadline.
//! - [`persist`]: the data dir and the writer thread (durable writes).
//! - [`acks`]: answers held until the write they acknowledge is durable.
//! - [`events`]: each peer's events, served for the whole cluster.
//! - [`join_watch`]: why a join does not complete, and when to give up.
//! - [`api`]: the HTTP API (axum) on `--api`, a client of the handle.
//! - [`client_limits`]: per-client-IP rate and connection caps (API, load balancer).
//! - [`images`]: peers hand images to each other (the cluster as registry).
//! - [`service_dns`]: the DNS server every peer runs for services.
//! - [`service_plane`]: the load balancer every peer runs for every service.
//! - [`services`]: both, fed from the snapshots, as `shoal up` starts them.
//! - [`metrics`]: what `/metrics` exports, and how it is measured.
//! - [`dashboard`]: the page `/ui` every peer serves.

pub mod acks;
pub mod addresses;
pub mod api;
pub mod api_tls;
pub mod bad_messages;
pub mod client_limits;
pub mod cluster_identity;
pub mod dashboard;
pub mod driver;
pub mod events;
pub mod handle;
pub mod images;
pub mod join_rotation;
pub mod join_watch;
pub mod key_book;
pub mod metrics;
pub mod persist;
pub mod service_dns;
pub mod service_plane;
pub mod services;
pub mod snapshots;
pub mod up;
