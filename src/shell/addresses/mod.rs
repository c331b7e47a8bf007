//! Which address `shoal up` listens on and which it tells other machines.
//!
//! With no address flags a peer listens on every interface (port 7946) and
//! advertises the address of the interface that holds the default route,
//! IPv4 first, as `docker swarm init` does, so the join line it prints works
//! on another machine as printed.
//!
//! - [`choose`]: the decision, a pure function of flags, interfaces and routes.
//! - [`routes`]: reading `/proc/net/route` and `/proc/net/ipv6_route` text.
//! - [`probe`]: this machine's interfaces and routes, then [`choose`].

pub mod choose;
pub mod probe;
pub mod routes;

pub use choose::{
    AddressError, AdvertiseAddr, Chosen, DEFAULT_PEER_PORT, DefaultRoute, Interface, PeerAddresses,
    check_join, choose,
};
pub use probe::resolve;
