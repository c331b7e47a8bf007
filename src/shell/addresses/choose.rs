//! The address decision: flags, interfaces and default routes in, the
//! listen and advertised addresses out (or why none can be chosen).
//!
//! Rules, first match wins, for the advertised address:
//! 1. `--advertise IP[:PORT]`;
//! 2. the IP of `--listen` when it names one (not `0.0.0.0` / `[::]`);
//! 3. the interface holding the IPv4 default route (lowest metric), else
//!    the IPv6 one: its first usable address of that family;
//! 4. with no default route, the only usable address of the machine;
//!    several → an error listing them; none → loopback (only this machine
//!    can join, and the banner says so).
//!
//! Usable: not loopback, not link-local (an IPv6 `fe80::` needs a scope
//! another machine does not know), not multicast or unspecified.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The port peers use when no flag names one (Swarm's and Serf's gossip port).
pub const DEFAULT_PEER_PORT: u16 = 7946;

/// One address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ip: IpAddr,
}

/// A default route (`0.0.0.0/0` or `::/0`) and the interface it leaves by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub interface: String,
    /// Lower wins, as in the kernel.
    pub metric: u32,
    pub ipv6: bool,
}

/// `--advertise`: an IP, with a port or not (then the listen port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertiseAddr {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl FromStr for AdvertiseAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(AdvertiseAddr {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>()
            .map(|ip| AdvertiseAddr { ip, port: None })
            .map_err(|_| {
                format!(
                    "{text:?} is not an address: give IP or IP:PORT (10.0.0.5, 10.0.0.5:7946, [fd00::5]:7946)"
                )
            })
    }
}

impl fmt::Display for AdvertiseAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// Why the advertised address is what it is (the banner says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chosen {
    /// `--advertise`.
    AdvertiseFlag,
    /// The IP `--listen` names.
    ListenFlag,
    /// The interface that holds the default route.
    DefaultRoute { interface: String },
    /// No default route, and this is the machine's only usable address.
    OnlyAddress { interface: String },
    /// No usable address at all: only peers on this machine can join.
    LoopbackOnly,
}

/// Where a peer listens and what it tells others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddresses {
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    pub chosen: Chosen,
}

/// Why no address could be chosen, in words that say what to pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("--advertise {0} is not an address peers can reach; give this machine's IP")]
    UnspecifiedAdvertise(AdvertiseAddr),
    #[error("--listen {0} needs a fixed port (peers must know it), e.g. --listen {ip}:7946", ip = .0.ip())]
    NoPort(SocketAddr),
    #[error(
        "this machine has several addresses and no default route, so Shoal cannot tell which one other machines reach: {}; pass --advertise with one of them",
        list(.candidates)
    )]
    Ambiguous { candidates: Vec<Interface> },
    #[error(
        "--listen {listen} is IPv{} but --advertise {advertise} is IPv{}: peers would reach an address nothing listens on; use one family",
        family(.listen.ip()), family(.advertise.ip)
    )]
    FamilyMismatch {
        listen: SocketAddr,
        advertise: AdvertiseAddr,
    },
    #[error(
        "this peer advertises {advertise}, a loopback address, but joins {seed} on another machine, which could never reach it back; start it without --listen (it then advertises the address of the default route) or pass --advertise with this machine's IP"
    )]
    LoopbackJoin {
        advertise: SocketAddr,
        seed: SocketAddr,
    },
}

fn list(candidates: &[Interface]) -> String {
    candidates
        .iter()
        .map(|c| format!("{} ({})", c.ip, c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn family(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// Chooses the listen and advertised addresses (rules in the module doc).
pub fn choose(
    listen: Option<SocketAddr>,
    advertise: Option<AdvertiseAddr>,
    interfaces: &[Interface],
    routes: &[DefaultRoute],
) -> Result<PeerAddresses, AddressError> {
    if let Some(flag) = advertise {
        if flag.ip.is_unspecified() {
            return Err(AddressError::UnspecifiedAdvertise(flag));
        }
        let listen = listen.unwrap_or_else(|| any_addr(flag.ip.is_ipv6()));
        if listen.is_ipv4() != flag.ip.is_ipv4() {
            return Err(AddressError::FamilyMismatch {
                listen,
                advertise: flag,
            });
        }
        let port = flag.port.unwrap_or(listen.port());
        if port == 0 {
            return Err(AddressError::NoPort(listen));
        }
        return Ok(PeerAddresses {
            listen,
            advertise: SocketAddr::new(flag.ip, port),
            chosen: Chosen::AdvertiseFlag,
        });
    }
    if let Some(listen) = listen {
        if listen.port() == 0 {
            return Err(AddressError::NoPort(listen));
        }
        if !listen.ip().is_unspecified() {
            return Ok(PeerAddresses {
                listen,
                advertise: listen,
                chosen: Chosen::ListenFlag,
            });
        }
    }
    // `--listen 0.0.0.0:P` keeps to IPv4, `[::]:P` to IPv6; no flag, either.
    let family = listen.map(|l| l.is_ipv6());
    let (ip, chosen) = detect(family, interfaces, routes)?;
    let listen = listen.unwrap_or_else(|| any_addr(ip.is_ipv6()));
    Ok(PeerAddresses {
        listen,
        advertise: SocketAddr::new(ip, listen.port()),
        chosen,
    })
}

/// Refuses to join a peer on another machine while advertising loopback:
/// the join would seem to work and then every reply would go nowhere.
pub fn check_join(advertise: SocketAddr, seeds: &[SocketAddr]) -> Result<(), AddressError> {
    if !advertise.ip().is_loopback() {
        return Ok(());
    }
    match seeds.iter().find(|s| !s.ip().is_loopback()) {
        Some(&seed) => Err(AddressError::LoopbackJoin { advertise, seed }),
        None => Ok(()),
    }
}

/// `0.0.0.0:7946` or `[::]:7946`.
fn any_addr(ipv6: bool) -> SocketAddr {
    let ip = if ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, DEFAULT_PEER_PORT)
}

/// Rules 3 and 4; `ipv6` restricts the family when set.
fn detect(
    ipv6: Option<bool>,
    interfaces: &[Interface],
    routes: &[DefaultRoute],
) -> Result<(IpAddr, Chosen), AddressError> {
    let usable: Vec<&Interface> = interfaces
        .iter()
        .filter(|i| is_usable(i.ip) && ipv6.is_none_or(|v6| i.ip.is_ipv6() == v6))
        .collect();
    for want_v6 in [false, true] {
        let mut defaults: Vec<&DefaultRoute> = routes
            .iter()
            .filter(|r| r.ipv6 == want_v6 && ipv6.is_none_or(|v6| v6 == want_v6))
            .collect();
        // Stable: equal metrics keep the table's order.
        defaults.sort_by_key(|r| r.metric);
        for route in defaults {
            let on_route = usable
                .iter()
                .find(|i| i.name == route.interface && i.ip.is_ipv6() == want_v6);
            if let Some(found) = on_route {
                let interface = found.name.clone();
                return Ok((found.ip, Chosen::DefaultRoute { interface }));
            }
        }
    }
    match usable[..] {
        [] => {
            let loopback = if ipv6 == Some(true) {
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            } else {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            };
            Ok((loopback, Chosen::LoopbackOnly))
        }
        [only] => {
            let interface = only.name.clone();
            Ok((only.ip, Chosen::OnlyAddress { interface }))
        }
        _ => Err(AddressError::Ambiguous {
            candidates: usable.into_iter().cloned().collect(),
        }),
    }
}

/// An address another machine could reach us on.
fn is_usable(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: &str) -> Interface {
        Interface {
            name: name.into(),
            ip: ip.parse().unwrap(),
        }
    }

    fn route(interface: &str, metric: u32, ipv6: bool) -> DefaultRoute {
        DefaultRoute {
            interface: interface.into(),
            metric,
            ipv6,
        }
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// A typical server: loopback, a LAN with a default route, Docker's bridge.
    fn server() -> (Vec<Interface>, Vec<DefaultRoute>) {
        let interfaces = vec![
            iface("lo", "127.0.0.1"),
            iface("lo", "::1"),
            iface("docker0", "172.17.0.1"),
            iface("eth0", "192.168.1.20"),
            iface("eth0", "fe80::1"),
            iface("eth0", "fd00::20"),
        ];
        (interfaces, vec![route("eth0", 100, false)])
    }

    #[test]
    fn no_flags_listen_everywhere_and_advertise_the_default_route() {
        let (interfaces, routes) = server();
        let chosen = choose(None, None, &interfaces, &routes).unwrap();
        assert_eq!(chosen.listen, addr("0.0.0.0:7946"));
        assert_eq!(chosen.advertise, addr("192.168.1.20:7946"));
        let interface = "eth0".to_owned();
        assert_eq!(chosen.chosen, Chosen::DefaultRoute { interface });
    }

    #[test]
    fn the_lowest_metric_default_route_wins() {
        let interfaces = vec![iface("wlan0", "10.0.0.9"), iface("eth0", "192.168.1.20")];
        let routes = vec![route("wlan0", 600, false), route("eth0", 100, false)];
        let chosen = choose(None, None, &interfaces, &routes).unwrap();
        assert_eq!(chosen.advertise, addr("192.168.1.20:7946"));
    }

    #[test]
    fn ipv6_only_machines_advertise_their_global_ipv6_address() {
        let interfaces = vec![
            iface("lo", "::1"),
            iface("eth0", "fe80::1"),
            iface("eth0", "2001:db8::7"),
        ];
        let routes = vec![route("eth0", 1024, true)];
        let chosen = choose(None, None, &interfaces, &routes).unwrap();
        assert_eq!(chosen.listen, addr("[::]:7946"));
        assert_eq!(chosen.advertise, addr("[2001:db8::7]:7946"));
    }

    #[test]
    fn ipv4_default_route_is_preferred_over_ipv6() {
        let (interfaces, _) = server();
        let routes = vec![route("eth0", 1, true), route("eth0", 100, false)];
        let chosen = choose(None, None, &interfaces, &routes).unwrap();
        assert_eq!(chosen.advertise, addr("192.168.1.20:7946"));
    }

    #[test]
    fn a_route_through_an_interface_without_usable_address_is_skipped() {
        let interfaces = vec![iface("tun0", "169.254.3.3"), iface("eth0", "10.1.1.1")];
        let routes = vec![route("tun0", 0, false), route("eth0", 100, false)];
        let chosen = choose(None, None, &interfaces, &routes).unwrap();
        assert_eq!(chosen.advertise, addr("10.1.1.1:7946"));
    }

    #[test]
    fn no_default_route_and_one_address_uses_it() {
        let interfaces = vec![iface("lo", "127.0.0.1"), iface("eth0", "10.9.0.2")];
        let chosen = choose(None, None, &interfaces, &[]).unwrap();
        assert_eq!(chosen.advertise, addr("10.9.0.2:7946"));
        let interface = "eth0".to_owned();
        assert_eq!(chosen.chosen, Chosen::OnlyAddress { interface });
    }

    #[test]
    fn no_default_route_and_several_addresses_asks_for_advertise() {
        let (interfaces, _) = server();
        let err = choose(None, None, &interfaces, &[]).unwrap_err();
        let text = err.to_string();
        for part in [
            "172.17.0.1 (docker0)",
            "192.168.1.20 (eth0)",
            "fd00::20 (eth0)",
        ] {
            assert!(text.contains(part), "{part} missing: {text}");
        }
        assert!(text.contains("--advertise"), "{text}");
        assert!(
            !text.contains("127.0.0.1") && !text.contains("fe80"),
            "{text}"
        );
    }

    #[test]
    fn a_machine_with_only_loopback_advertises_loopback() {
        let interfaces = vec![iface("lo", "127.0.0.1"), iface("lo", "::1")];
        let chosen = choose(None, None, &interfaces, &[]).unwrap();
        assert_eq!(chosen.advertise, addr("127.0.0.1:7946"));
        assert_eq!(chosen.chosen, Chosen::LoopbackOnly);
    }

    #[test]
    fn advertise_overrides_detection_and_takes_the_listen_port() {
        let (interfaces, routes) = server();
        let flag: AdvertiseAddr = "10.5.5.5".parse().unwrap();
        let chosen = choose(Some(addr("0.0.0.0:8000")), Some(flag), &interfaces, &routes).unwrap();
        assert_eq!(chosen.listen, addr("0.0.0.0:8000"));
        assert_eq!(chosen.advertise, addr("10.5.5.5:8000"));
        assert_eq!(chosen.chosen, Chosen::AdvertiseFlag);
        let flag: AdvertiseAddr = "10.5.5.5:9000".parse().unwrap();
        let chosen = choose(None, Some(flag), &interfaces, &routes).unwrap();
        assert_eq!(chosen.listen, addr("0.0.0.0:7946"));
        assert_eq!(chosen.advertise, addr("10.5.5.5:9000"));
        let flag: AdvertiseAddr = "[fd00::9]".parse().unwrap();
        let chosen = choose(None, Some(flag), &interfaces, &routes).unwrap();
        assert_eq!(chosen.listen, addr("[::]:7946"));
    }

    #[test]
    fn an_explicit_listen_ip_is_advertised_as_before() {
        let (interfaces, routes) = server();
        let listen = addr("127.0.0.11:7946");
        let chosen = choose(Some(listen), None, &interfaces, &routes).unwrap();
        assert_eq!(chosen.listen, listen);
        assert_eq!(chosen.advertise, listen);
        assert_eq!(chosen.chosen, Chosen::ListenFlag);
    }

    #[test]
    fn listening_on_all_ipv6_addresses_advertises_an_ipv6_one() {
        let (interfaces, routes) = server();
        let chosen = choose(Some(addr("[::]:7000")), None, &interfaces, &routes).unwrap();
        // The IPv4 route does not count, and fd00::20 is eth0's only usable IPv6 address.
        assert_eq!(chosen.advertise, addr("[fd00::20]:7000"));
    }

    #[test]
    fn bad_flags_are_refused_with_what_to_do() {
        let (interfaces, routes) = server();
        let zero: AdvertiseAddr = "0.0.0.0".parse().unwrap();
        let err = choose(None, Some(zero), &interfaces, &routes).unwrap_err();
        assert!(
            matches!(err, AddressError::UnspecifiedAdvertise(_)),
            "{err}"
        );
        let err = choose(Some(addr("10.0.0.1:0")), None, &interfaces, &routes).unwrap_err();
        assert!(err.to_string().contains("fixed port"), "{err}");
        let v6: AdvertiseAddr = "fd00::1".parse().unwrap();
        let err = choose(Some(addr("0.0.0.0:7946")), Some(v6), &interfaces, &routes).unwrap_err();
        assert!(err.to_string().contains("use one family"), "{err}");
        assert!(
            "eth0"
                .parse::<AdvertiseAddr>()
                .unwrap_err()
                .contains("IP:PORT")
        );
    }

    #[test]
    fn joining_another_machine_while_advertising_loopback_is_refused() {
        let here = addr("127.0.0.1:7946");
        let err = check_join(here, &[addr("192.168.1.30:7946")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("loopback") && text.contains("192.168.1.30:7946"),
            "{text}"
        );
        assert!(check_join(here, &[addr("127.0.0.12:7946")]).is_ok());
        assert!(check_join(addr("10.0.0.1:7946"), &[addr("10.0.0.2:7946")]).is_ok());
    }
}
