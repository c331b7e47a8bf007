//! Shoal: a container orchestrator with no master.
#![forbid(unsafe_code)]

pub mod cli;
