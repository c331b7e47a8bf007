//! Endpoints, derived: the [`ServiceTable`] every peer computes for itself
//! from what it already knows, with no coordination. Pure: same inputs,
//! same table, on every peer.
//!
//! **Who is behind a service.** Every pod reported in the observed state
//! whose RC's current template labels carry the service's selector, on a
//! node that is not removed. It is listed whatever its state; it is
//! *ready* (the load balancer may use it) only when all of these hold:
//!
//! - the pod is Running and passes its readiness probe;
//! - its node is alive in this peer's member view (a suspect node is left
//!   out at once: better a few connections elsewhere than some to a dead
//!   machine);
//! - the pod is current, not about to be stopped: its replica index is
//!   below the RC's count (a scale-down stops the highest indices), it is
//!   not Terminating, and it is not the old copy of a handover whose new
//!   owner (by placement) already runs a ready copy;
//! - every service port resolves to a published host port: the container
//!   port (the number, or the port the template names so) appears in the
//!   pod's published ports, at its node's advertised address.
//!
//! **Ports two services claim** (concurrent applies on two peers, see
//! `crdt-state`'s `service_checks`) go to the service whose body was
//! written first; the other keeps its remaining ports, and
//! [`port_conflicts`] says what it lost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use shoal_crdt_state::desired::DesiredState;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus};
use shoal_crdt_state::service::{ServiceView, TargetPort};
use shoal_crdt_state::spec::{PodTemplate, Protocol};

use super::table::{Endpoint, ServiceEntry, ServicePortEntry, ServiceTable};

/// What the table is derived from: one consistent view of one peer.
pub struct EndpointInputs<'a> {
    pub desired: &'a DesiredState,
    pub observed: &'a ObservedState,
    /// Nodes alive in the member view (neither suspect, down nor unknown).
    pub alive: &'a BTreeSet<NodeId>,
    /// The node placement gives a replica to, if placed.
    pub owner: &'a dyn Fn(&PodId) -> Option<NodeId>,
    /// This peer: left out of [`ServiceTable::peer_addrs`].
    pub me: NodeId,
}

impl std::fmt::Debug for EndpointInputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointInputs")
            .field("services", &self.desired.live_services().count())
            .field("nodes", &self.observed.nodes().count())
            .field("alive", &self.alive)
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

/// A reported pod with the node that reports it and that node's IP.
type Located<'a> = (NodeId, &'a str, Option<IpAddr>, &'a PodStatus);

/// The service table as these inputs have it.
///
/// Cost: one pass over every reported pod (grouped by RC), then per
/// service only the pods of the RCs its selector matches.
pub fn derive(inputs: &EndpointInputs<'_>) -> ServiceTable {
    let removed = inputs.desired.nodes().removed();
    let lost = lost_ports(inputs.desired);
    let mut pods_by_rc: BTreeMap<&str, Vec<Located<'_>>> = BTreeMap::new();
    for (node, record) in inputs.observed.nodes() {
        if removed.contains(&node) {
            continue;
        }
        let ip = host_ip(&record.info.peer_addr);
        for pod in &record.pods {
            let located = (node, record.info.name.as_str(), ip, pod);
            pods_by_rc
                .entry(pod.id.rc.as_str())
                .or_default()
                .push(located);
        }
    }
    let mut services = BTreeMap::new();
    for service in inputs.desired.live_services() {
        let lost_here = lost.get(service.name);
        let taken = |port: u16| lost_here.is_some_and(|l| l.contains_key(&port));
        let ports: Vec<(ServicePortEntry, &TargetPort)> = service
            .body
            .ports
            .iter()
            .filter(|p| !taken(p.port))
            .map(|p| {
                let entry = ServicePortEntry {
                    name: p.name.clone(),
                    port: p.port,
                    node_port: p.node_port.filter(|&n| !taken(n)),
                    target_port: 0, // resolved per RC below
                };
                (entry, &p.target_port)
            })
            .collect();
        let mut endpoints = Vec::new();
        let matching = inputs
            .desired
            .live_rcs()
            .filter(|rc| service.body.selects(&rc.template().labels));
        for rc in matching {
            let pods = pods_by_rc.get(rc.name).map_or(&[][..], Vec::as_slice);
            let slots = serving_slots(&rc, pods);
            for &(node, node_name, ip, pod) in pods {
                let mut targets = BTreeMap::new();
                for (entry, target) in &ports {
                    let published = resolve(target, rc.template())
                        .and_then(|container_port| published(pod, container_port));
                    if let (Some(ip), Some(host_port)) = (ip, published) {
                        targets.insert(entry.port, SocketAddr::new(ip, host_port));
                    }
                }
                let ready = pod.ready
                    && pod.phase == PodPhase::Running
                    && inputs.alive.contains(&node)
                    && current(inputs, node, pod, slots)
                    && targets.len() == ports.len();
                endpoints.push(Endpoint {
                    pod: pod.id.to_string(),
                    node: node_name.to_owned(),
                    ready,
                    targets,
                });
            }
        }
        endpoints.sort_by(|a, b| (&a.pod, &a.node).cmp(&(&b.pod, &b.node)));
        let ports = ports
            .into_iter()
            .map(|(mut entry, target)| {
                entry.target_port = representative_target(service, target, inputs.desired);
                entry
            })
            .collect();
        let entry = ServiceEntry {
            name: service.name.to_owned(),
            ports,
            endpoints,
            proxy_protocol: service.body.proxy_protocol,
        };
        services.insert(service.name.to_owned(), entry);
    }
    ServiceTable {
        services,
        peer_addrs: peer_addrs(inputs, &removed),
    }
}

/// For each service, the listening ports it lost to an older service:
/// port → the service that keeps it.
pub fn port_conflicts(desired: &DesiredState) -> BTreeMap<String, BTreeMap<u16, String>> {
    lost_ports(desired)
        .into_iter()
        .map(|(name, lost)| {
            let lost = lost.into_iter().map(|(p, by)| (p, by.to_owned())).collect();
            (name.to_owned(), lost)
        })
        .collect()
}

fn lost_ports(desired: &DesiredState) -> BTreeMap<&str, BTreeMap<u16, &str>> {
    let mut services: Vec<ServiceView<'_>> = desired.live_services().collect();
    services.sort_by_key(|s| (s.written, s.name));
    let mut holder: BTreeMap<u16, &str> = BTreeMap::new();
    let mut lost: BTreeMap<&str, BTreeMap<u16, &str>> = BTreeMap::new();
    for service in services {
        for port in service.body.listen_ports() {
            match holder.get(&port) {
                Some(&other) if other != service.name => {
                    lost.entry(service.name).or_default().insert(port, other);
                }
                _ => {
                    holder.insert(port, service.name);
                }
            }
        }
    }
    lost
}

/// The container port a target names in `template`.
fn resolve(target: &TargetPort, template: &PodTemplate) -> Option<u16> {
    match target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Name(name) => template.named_port(name),
    }
}

/// The target port the table shows: the number, or what the name resolves
/// to in the first RC the selector matches (0 when none does).
fn representative_target(
    service: ServiceView<'_>,
    target: &TargetPort,
    desired: &DesiredState,
) -> u16 {
    match target {
        TargetPort::Number(n) => *n,
        TargetPort::Name(_) => desired
            .live_rcs()
            .filter(|rc| service.body.selects(&rc.template().labels))
            .find_map(|rc| resolve(target, rc.template()))
            .unwrap_or(0),
    }
}

fn published(pod: &PodStatus, container_port: u16) -> Option<u16> {
    pod.ports
        .iter()
        .find(|p| p.container_port == container_port && p.protocol == Protocol::Tcp)
        .map(|p| p.host_port)
}

/// Indices that may serve: the replicas, and while a rollout still needs
/// them (some replica lacks an available pod of the current template, the
/// reconciler's `surge_needed`) the surge slots whose new pods serve before
/// the old ones leave. Otherwise indices above the count are leaving (a
/// scale-down, or a surge pod after the rollout), not surging.
fn serving_slots(rc: &shoal_crdt_state::RcView<'_>, pods: &[Located<'_>]) -> u32 {
    let current = rc.template().hash();
    let updated = |index: u32| {
        pods.iter().any(|&(_, _, _, pod)| {
            pod.id.index == index && pod.template_hash == current && pod.available
        })
    };
    if (0..rc.replicas).all(updated) {
        return rc.replicas;
    }
    let (surge, _) = rc.body.update_strategy.resolve(rc.replicas);
    rc.replicas.saturating_add(surge)
}

/// Not about to be stopped: within the count, not terminating, and not
/// the old copy of a handover whose new owner serves already.
fn current(inputs: &EndpointInputs<'_>, node: NodeId, pod: &PodStatus, slots: u32) -> bool {
    if pod.id.index >= slots || pod.phase == PodPhase::Terminating {
        return false;
    }
    match (inputs.owner)(&pod.id) {
        Some(owner) if owner != node => !inputs.observed.get(owner).is_some_and(|record| {
            inputs.alive.contains(&owner)
                && record
                    .pod(&pod.id)
                    .is_some_and(|p| p.ready && p.phase == PodPhase::Running)
        }),
        _ => true,
    }
}

fn peer_addrs(inputs: &EndpointInputs<'_>, removed: &BTreeSet<NodeId>) -> Vec<IpAddr> {
    let mut addrs = Vec::new();
    for (node, record) in inputs.observed.nodes() {
        if node == inputs.me || removed.contains(&node) || !inputs.alive.contains(&node) {
            continue;
        }
        if let Some(ip) = host_ip(&record.info.peer_addr)
            && !addrs.contains(&ip)
        {
            addrs.push(ip);
        }
    }
    addrs
}

/// The IP of a `host:port` (or bare IP) address a node advertises.
fn host_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| addr.parse::<IpAddr>())
        .ok()
}
