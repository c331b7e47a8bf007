//! What every peer's load balancer and DNS server serve. Each peer derives
//! it, deterministically, from the replicated Service objects and the pod
//! statuses and member view it already has; the data plane only reads it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use shoal_crdt_state::service::ProxyProtocol;

/// Every service, by name, with the endpoints that serve it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceTable {
    pub services: BTreeMap<String, ServiceEntry>,
    /// Addresses at which the other live peers' load balancers listen
    /// (their advertised addresses), for DNS answers after the local one.
    pub peer_addrs: Vec<IpAddr>,
}

/// One service: its ports and the endpoints behind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: String,
    pub ports: Vec<ServicePortEntry>,
    /// Every pod the selector matches, ready or not; the load balancer
    /// sends connections only to ready ones, `describe svc` shows all.
    pub endpoints: Vec<Endpoint>,
    /// Whether each forwarded connection starts with a PROXY protocol
    /// header naming the client.
    pub proxy_protocol: ProxyProtocol,
}

/// One port of a service, as the load balancer listens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortEntry {
    /// The port's name (`spec.ports[].name`), used for SRV records.
    pub name: Option<String>,
    /// The service port: where pods reach the service (`NAME:port`).
    pub port: u16,
    /// Where anyone reaches it at any peer's advertised address.
    pub node_port: Option<u16>,
    /// The container port it forwards to, resolved from a number or a name.
    pub target_port: u16,
}

/// One pod behind a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Pod name (`hello-0`).
    pub pod: String,
    /// Name of the node that runs it.
    pub node: String,
    /// Whether connections may go to it: the pod is ready, its node is
    /// alive, and it is not being stopped.
    pub ready: bool,
    /// For each service port (by `ServicePortEntry::port`), the address the
    /// container's target port is published at on its node.
    pub targets: BTreeMap<u16, SocketAddr>,
}
