//! The ready endpoints of one service port, and which one a new connection
//! tries first: power of two choices on active connections, so a slow or
//! busy endpoint gets fewer new connections without any global view.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shoal_crdt_state::service::ProxyProtocol;
use shoal_runtime::docker::DirectAddresses;

use crate::services::ServiceEntry;

/// At most this many endpoints are tried for one connection before the
/// client's connection is closed: a dead endpoint costs latency, a dead
/// cluster does not cost a minute.
pub const MAX_ATTEMPTS: usize = 3;

/// One ready endpoint, with the connections the proxy has open to it now.
#[derive(Debug)]
pub struct Backend {
    pub pod: String,
    /// Where its node publishes it (what the service table says).
    pub addr: SocketAddr,
    /// The container's own address, when it runs on this node: connecting
    /// there skips the engine's userland proxy, a second copy of every
    /// byte. `addr` stays the fallback.
    pub direct: Option<SocketAddr>,
    /// Shared by every listener of this peer that forwards to `addr`.
    pub active: AtomicUsize,
}

/// The ready endpoints behind one service port, as of the last table.
#[derive(Debug, Default)]
pub struct Backends {
    list: Vec<Arc<Backend>>,
    /// What each connection to them starts with.
    pub proxy_protocol: ProxyProtocol,
}

impl Backends {
    /// The ready endpoints of `service` for service port `port`, keeping the
    /// connection counters of `previous` for endpoints that stay. Those
    /// published at `local` (this node) on a port `direct` knows are
    /// reached at the container's own address.
    pub fn of(
        service: &ServiceEntry,
        port: u16,
        previous: &Backends,
        local: &Local<'_>,
    ) -> Backends {
        let mut list: Vec<Arc<Backend>> = service
            .endpoints
            .iter()
            .filter(|e| e.ready)
            .filter_map(|e| e.targets.get(&port).map(|addr| (e, *addr)))
            .map(|(e, addr)| {
                let direct = local.direct_for(addr);
                previous
                    .list
                    .iter()
                    .find(|b| b.addr == addr && b.pod == e.pod && b.direct == direct)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Backend {
                            pod: e.pod.clone(),
                            addr,
                            direct,
                            active: AtomicUsize::new(0),
                        })
                    })
            })
            .collect();
        list.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.pod.cmp(&b.pod)));
        list.dedup_by(|a, b| a.addr == b.addr);
        Backends {
            list,
            proxy_protocol: service.proxy_protocol,
        }
    }

    /// Same endpoints (pods and addresses) and header as `other`?
    pub fn same_as(&self, other: &Backends) -> bool {
        self.proxy_protocol == other.proxy_protocol
            && self.list.len() == other.list.len()
            && self
                .list
                .iter()
                .zip(&other.list)
                .all(|(a, b)| a.addr == b.addr && a.pod == b.pod && a.direct == b.direct)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The endpoints to try, in order, for one connection: the less busy of
    /// two picked at random, then the others after it in a fixed ring, at
    /// most [`MAX_ATTEMPTS`]. `random` is any random number.
    pub fn attempt_order(&self, random: u64) -> Vec<Arc<Backend>> {
        let n = self.list.len();
        if n == 0 {
            return Vec::new();
        }
        let first = if n == 1 {
            0
        } else {
            let a = (random % n as u64) as usize;
            // A second index distinct from the first.
            let b = (a + 1 + ((random >> 32) % (n as u64 - 1)) as usize) % n;
            let load = |i: usize| self.list[i].active.load(Ordering::Relaxed);
            if load(b) < load(a) { b } else { a }
        };
        (0..n.min(MAX_ATTEMPTS))
            .map(|k| self.list[(first + k) % n].clone())
            .collect()
    }
}

/// This node, as the load balancer sees its endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// The address this node's pods are published at (its advertised IP).
    pub ip: IpAddr,
    /// The containers' own addresses, by published host port.
    pub direct: &'a DirectAddresses,
}

impl Local<'_> {
    /// The container's own address behind `published`, if it is this
    /// node's.
    fn direct_for(&self, published: SocketAddr) -> Option<SocketAddr> {
        if published.ip() != self.ip {
            return None;
        }
        self.direct.get(&published.port()).copied()
    }
}

/// Counts a connection open to a backend for as long as it lives.
#[derive(Debug)]
pub struct ActiveGuard(Arc<Backend>);

impl ActiveGuard {
    pub fn new(backend: Arc<Backend>) -> ActiveGuard {
        backend.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(backend)
    }

    pub fn backend(&self) -> &Backend {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::services::{Endpoint, ServicePortEntry};

    fn service(endpoints: &[(&str, bool, u16)]) -> ServiceEntry {
        ServiceEntry {
            name: "hello".into(),
            ports: vec![ServicePortEntry {
                name: None,
                port: 80,
                node_port: None,
                target_port: 8080,
            }],
            endpoints: endpoints
                .iter()
                .map(|(pod, ready, port)| Endpoint {
                    pod: (*pod).into(),
                    node: "n".into(),
                    ready: *ready,
                    targets: BTreeMap::from([(80, SocketAddr::from(([127, 0, 0, 1], *port)))]),
                })
                .collect(),
            proxy_protocol: Default::default(),
        }
    }

    const NOTHING_DIRECT: Local<'static> = Local {
        ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        direct: &DirectAddresses::new(),
    };

    #[test]
    fn only_ready_endpoints_are_backends_and_counters_survive_a_new_table() {
        let first = Backends::of(
            &service(&[("a", true, 1), ("b", false, 2), ("c", true, 3)]),
            80,
            &Backends::default(),
            &NOTHING_DIRECT,
        );
        assert_eq!(first.len(), 2);
        let _held = ActiveGuard::new(first.list[0].clone());
        let next = Backends::of(
            &service(&[("a", true, 1), ("d", true, 4)]),
            80,
            &first,
            &NOTHING_DIRECT,
        );
        assert_eq!(next.list[0].active.load(Ordering::Relaxed), 1);
        assert_eq!(next.list[1].active.load(Ordering::Relaxed), 0);
        assert!(!next.same_as(&first));
        assert!(Backends::of(&service(&[]), 80, &next, &NOTHING_DIRECT).is_empty());
    }

    #[test]
    fn endpoints_published_on_this_node_are_reached_at_the_container() {
        let endpoints = service(&[("a", true, 1), ("b", true, 2)]);
        let container = SocketAddr::from(([172, 17, 0, 5], 8080));
        let direct = DirectAddresses::from([(2, container)]);
        let here = Local {
            ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            direct: &direct,
        };
        let backends = Backends::of(&endpoints, 80, &Backends::default(), &here);
        assert_eq!(backends.list[0].direct, None);
        assert_eq!(backends.list[1].direct, Some(container));
        // Published on another node's address: the same host port is not ours.
        let elsewhere = Local {
            ip: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)),
            direct: &direct,
        };
        let remote = Backends::of(&endpoints, 80, &backends, &elsewhere);
        assert!(remote.list.iter().all(|b| b.direct.is_none()));
        assert!(!remote.same_as(&backends), "a change of route is a change");
    }

    #[test]
    fn the_less_busy_of_two_goes_first_and_others_follow() {
        let backends = Backends::of(
            &service(&[("a", true, 1), ("b", true, 2)]),
            80,
            &Backends::default(),
            &NOTHING_DIRECT,
        );
        let _busy: Vec<_> = (0..3)
            .map(|_| ActiveGuard::new(backends.list[0].clone()))
            .collect();
        for random in [0, 1, 2, 3, u64::MAX] {
            let order = backends.attempt_order(random);
            assert_eq!(order[0].pod, "b");
            assert_eq!(order[1].pod, "a");
        }
    }
}
