//! Shoal's container runtime.
//!
//! - [`vocabulary`]: pod actions and observations, the pure interface the core uses.
#![forbid(unsafe_code)]

pub mod vocabulary;
