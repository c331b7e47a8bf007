//! The shell: the only part with tokio, sockets, files and Docker.
//!
//! - [`handle`]: requests to the task that owns the peer core.
//! - `driver`: that task — feeds the core, drains its outputs, runs timers.
//! - [`api`]: the HTTP API (axum) on `--api`, a client of the handle.

pub mod api;
pub mod driver;
pub mod handle;
pub mod persist;
pub mod up;
