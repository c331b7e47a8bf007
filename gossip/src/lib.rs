//! Shoal membership: SWIM gossip on foca.
#![forbid(unsafe_code)]
