//! Shoal: a container orchestrator with no master.
#![forbid(unsafe_code)]

pub mod cli;
#[cfg(feature = "shell")]
pub mod fuzzing;
pub mod peer;
pub mod placement;
pub mod reconcile;
pub mod services;
#[cfg(feature = "shell")]
pub mod shell;
