//! This machine's interface addresses and default routes, then the choice.

use std::net::SocketAddr;

use super::choose::{AddressError, AdvertiseAddr, DefaultRoute, Interface, PeerAddresses, choose};
use super::routes::{ipv4_defaults, ipv6_defaults};

/// Reads the interfaces (getifaddrs) and the kernel's default routes and
/// chooses the addresses. Nothing is read when the flags decide alone.
pub fn resolve(
    listen: Option<SocketAddr>,
    advertise: Option<AdvertiseAddr>,
) -> anyhow::Result<PeerAddresses> {
    let decided = advertise.is_some() || listen.is_some_and(|l| !l.ip().is_unspecified());
    let (interfaces, routes) = if decided {
        (Vec::new(), Vec::new())
    } else {
        (interfaces()?, default_routes())
    };
    choose(listen, advertise, &interfaces, &routes).map_err(|e: AddressError| e.into())
}

fn interfaces() -> anyhow::Result<Vec<Interface>> {
    let found = if_addrs::get_if_addrs().map_err(|e| {
        anyhow::anyhow!(
            "cannot list this machine's network interfaces ({e}); pass --advertise with the IP other machines reach this one on"
        )
    })?;
    Ok(found
        .into_iter()
        .map(|i| Interface {
            ip: i.ip(),
            name: i.name,
        })
        .collect())
}

/// A table that cannot be read (no /proc, no IPv6) has no default route.
fn default_routes() -> Vec<DefaultRoute> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let mut routes = ipv4_defaults(&read("/proc/net/route"));
    routes.extend(ipv6_defaults(&read("/proc/net/ipv6_route")));
    routes
}
