//! Shoal's data model and replicated cluster state.
//!
//! - [`spec`]: the ReplicationController spec, one type for every input format.
//! - [`node`], [`pod`]: node identity and info, pod identity and status.
#![forbid(unsafe_code)]

pub mod node;
pub mod pod;
pub mod spec;
