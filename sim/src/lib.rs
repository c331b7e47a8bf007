//! Discrete-event simulator for Shoal peers.
#![forbid(unsafe_code)]
