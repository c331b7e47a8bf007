//! Shoal's container runtime.
//!
//! - [`vocabulary`]: pod actions and observations, the pure interface the core uses.
//! - [`backoff`]: restart back-off policy for crashed pods.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod vocabulary;
