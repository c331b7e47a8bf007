//! Shoal's container runtime.
//!
//! - [`vocabulary`]: pod actions and observations, the pure interface the core uses.
//! - [`backoff`]: restart back-off policy for crashed pods.
//! - `docker` (feature `docker`): the executor that runs pods on a Docker engine via bollard.
#![forbid(unsafe_code)]

pub mod backoff;
#[cfg(feature = "docker")]
pub mod docker;
pub mod vocabulary;
