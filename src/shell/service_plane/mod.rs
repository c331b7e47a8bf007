//! The load balancer every peer runs for every service.
//!
//! For each service port it listens on the service `port` at the peer's
//! *service address* (where pods reach services: `NAME:port`) and on the
//! `nodePort` at its advertised address (where anyone reaches the service
//! through any peer), and forwards each TCP connection to a ready endpoint
//! anywhere in the cluster. The service `port` also listens at the
//! advertised address: DNS answers name the other live peers' advertised
//! addresses after the local one, and `NAME:port` must work there too.
//!
//! - [`backends`]: the ready endpoints of a port and which to try first.
//! - [`proxy`]: one connection — connect (another endpoint if one fails),
//!   copy both ways, close when idle.
//! - [`proxy_header`]: the PROXY protocol header, for services that ask.
//! - [`listener`]: one socket's accept loop, bounded per service and per
//!   client IP (connections held, new connections per second).
//!
//! [`ServicePlane::spawn`] starts a task that keeps the listeners in step
//! with the [`ServiceTable`] it is sent: a new port is bound, a removed one
//! closed, an endpoint change reaches the next connection. A port it cannot
//! bind (in use) is retried every [`RETRY_BIND_EVERY`] and reported in
//! [`PlaneStatus`]; the other ports keep serving.

pub mod backends;
pub mod listener;
pub mod proxy;
pub mod proxy_header;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use shoal_runtime::docker::DirectAddresses;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use self::backends::Backends;
pub use self::backends::Local;
use self::listener::{Bounds, Listening, bind, spawn_listener};
pub use self::proxy::ProxyLimits;
use crate::services::{ServiceEntry, ServicePortEntry, ServiceTable};
use crate::shell::client_limits::{ClientLimits, LimitSettings};

/// How often a port that could not be bound is tried again.
pub const RETRY_BIND_EVERY: Duration = Duration::from_secs(5);

/// Where and how this peer's load balancer listens.
#[derive(Debug, Clone, Copy)]
pub struct PlaneConfig {
    /// The advertised address: `nodePort`s listen here.
    pub node_ip: IpAddr,
    /// Where pods reach services (and DNS): service `port`s listen here.
    pub service_ip: IpAddr,
    /// Another peer of this cluster serves DNS at the service address (peers
    /// sharing one Docker engine share its bridge address): a service port
    /// taken there is most likely that peer's, serving the same pods.
    pub service_ip_shared: bool,
    /// Connections forwarded at once per service on this peer; more wait
    /// in the kernel's accept queue.
    pub max_connections_per_service: usize,
    /// Per client IP, across every service and port of this peer: the
    /// peer's sockets and tasks are what a client uses up, and one that
    /// spreads over many services must not get a share per service.
    pub client_limits: LimitSettings,
    pub limits: ProxyLimits,
}

impl PlaneConfig {
    pub fn new(node_ip: IpAddr, service_ip: IpAddr) -> PlaneConfig {
        PlaneConfig {
            node_ip,
            service_ip,
            service_ip_shared: false,
            max_connections_per_service: 4096,
            client_limits: LimitSettings::LB_DEFAULT,
            limits: ProxyLimits {
                connect_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(300),
            },
        }
    }
}

/// Which of a service port's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListenerKind {
    /// The service `port` at the service address.
    Service,
    /// The service `port` at the advertised address (when it differs).
    ServiceAtPeer,
    /// The `nodePort` at the advertised address.
    Node,
}

/// One listener the table asks for, and whether it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStatus {
    pub addr: SocketAddr,
    pub service: String,
    /// The service port it belongs to.
    pub port: u16,
    pub kind: ListenerKind,
    /// `Err`: why it does not listen (port in use, address not local...).
    pub state: Result<(), String>,
}

/// Every listener the current table asks for, in address order.
pub type PlaneStatus = Vec<ListenerStatus>;

/// The running load balancer of one peer.
#[derive(Debug)]
pub struct ServicePlane {
    status: watch::Receiver<Arc<PlaneStatus>>,
    task: JoinHandle<()>,
}

impl ServicePlane {
    /// Starts serving the tables sent on `tables`; stops (closing every
    /// listener) when their sender is dropped or on [`stop`](Self::stop).
    /// `direct` says where this node's own pods are reached without the
    /// engine's port publishing (see [`Local`]).
    pub fn spawn(
        config: PlaneConfig,
        tables: watch::Receiver<Arc<ServiceTable>>,
        direct: watch::Receiver<Arc<DirectAddresses>>,
    ) -> ServicePlane {
        let (status_tx, status) = watch::channel(Arc::new(PlaneStatus::new()));
        let task = tokio::spawn(plane_loop(config, tables, direct, status_tx));
        ServicePlane { status, task }
    }

    /// What listens and what could not, as of the last table applied.
    pub fn status(&self) -> watch::Receiver<Arc<PlaneStatus>> {
        self.status.clone()
    }

    /// Closes every listener now.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for ServicePlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn plane_loop(
    config: PlaneConfig,
    mut tables: watch::Receiver<Arc<ServiceTable>>,
    mut direct: watch::Receiver<Arc<DirectAddresses>>,
    status: watch::Sender<Arc<PlaneStatus>>,
) {
    let mut plane = Plane::new(config);
    let mut retry = tokio::time::interval(RETRY_BIND_EVERY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut table = tables.borrow_and_update().clone();
    let mut containers = direct.borrow_and_update().clone();
    // The runtime gone: keep its last addresses, stop watching.
    let mut runtime_gone = false;
    loop {
        let now = plane.apply(&table, &containers).await;
        status.send_if_modified(|old| {
            let changed = **old != now;
            if changed {
                *old = Arc::new(now);
            }
            changed
        });
        loop {
            tokio::select! {
                changed = tables.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    table = tables.borrow_and_update().clone();
                    break;
                }
                changed = direct.changed(), if !runtime_gone => {
                    if changed.is_err() {
                        runtime_gone = true;
                        continue;
                    }
                    containers = direct.borrow_and_update().clone();
                    break;
                }
                _ = retry.tick() => if plane.has_failed() {
                    break;
                }
            }
        }
    }
}

/// Identifies a service port: (service name, port).
type PortKey = (String, u16);

/// The listeners and endpoint sets the plane task owns.
struct Plane {
    config: PlaneConfig,
    /// Ready endpoints of each service port, shared by its listeners.
    ports: BTreeMap<PortKey, watch::Sender<Arc<Backends>>>,
    /// Open sockets, by address, with the service port they serve.
    listening: BTreeMap<SocketAddr, (PortKey, Listening)>,
    /// Connection bound of each service, shared by its listeners.
    room: BTreeMap<String, Arc<Semaphore>>,
    /// What each client IP uses, shared by every listener.
    clients: Arc<ClientLimits>,
    failed: usize,
}

impl Plane {
    fn new(config: PlaneConfig) -> Plane {
        Plane {
            config,
            ports: BTreeMap::new(),
            listening: BTreeMap::new(),
            room: BTreeMap::new(),
            clients: ClientLimits::new(config.client_limits),
            failed: 0,
        }
    }

    fn has_failed(&self) -> bool {
        self.failed > 0
    }

    /// Makes the listeners and endpoints those of `table`, reaching this
    /// node's containers at `direct`.
    async fn apply(&mut self, table: &ServiceTable, direct: &DirectAddresses) -> PlaneStatus {
        let (wanted, clashes) = self.wanted(table);
        // Close what is no longer asked for, or now serves another port.
        self.listening.retain(|addr, (owner, _)| {
            wanted
                .get(addr)
                .is_some_and(|status| *owner == key_of(status))
        });
        self.update_endpoints(table, direct);
        self.room
            .retain(|name, _| table.services.contains_key(name.as_str()));
        let mut status = PlaneStatus::new();
        for (addr, mut entry) in wanted {
            if !self.listening.contains_key(&addr) {
                entry.state = self.open(addr, &entry).await;
            }
            status.push(entry);
        }
        status.extend(clashes);
        status.sort_by(|a, b| (a.addr, &a.service).cmp(&(b.addr, &b.service)));
        self.failed = status.iter().filter(|s| s.state.is_err()).count();
        status
    }

    /// Every listener `table` asks for, by address, and the claims that
    /// clash with an earlier one (the control plane refuses such clashes at
    /// apply; a table that has one anyway shows it here).
    fn wanted(
        &self,
        table: &ServiceTable,
    ) -> (BTreeMap<SocketAddr, ListenerStatus>, Vec<ListenerStatus>) {
        let mut wanted: BTreeMap<SocketAddr, ListenerStatus> = BTreeMap::new();
        let mut clashes = Vec::new();
        for service in table.services.values() {
            for port in &service.ports {
                for (addr, kind) in self.addrs_of(port) {
                    let entry = ListenerStatus {
                        addr,
                        service: service.name.clone(),
                        port: port.port,
                        kind,
                        state: Ok(()),
                    };
                    match wanted.get(&addr) {
                        None => {
                            wanted.insert(addr, entry);
                        }
                        Some(holder) if key_of(holder) == key_of(&entry) => {}
                        Some(holder) => {
                            let clash = format!(
                                "{addr} is already the {} of service {} port {}",
                                kind_name(holder.kind),
                                holder.service,
                                holder.port
                            );
                            clashes.push(ListenerStatus {
                                state: Err(clash),
                                ..entry
                            });
                        }
                    }
                }
            }
        }
        (wanted, clashes)
    }

    fn addrs_of(&self, port: &ServicePortEntry) -> Vec<(SocketAddr, ListenerKind)> {
        let mut addrs = vec![(
            SocketAddr::new(self.config.service_ip, port.port),
            ListenerKind::Service,
        )];
        if self.config.node_ip != self.config.service_ip {
            addrs.push((
                SocketAddr::new(self.config.node_ip, port.port),
                ListenerKind::ServiceAtPeer,
            ));
        }
        if let Some(node_port) = port.node_port {
            addrs.push((
                SocketAddr::new(self.config.node_ip, node_port),
                ListenerKind::Node,
            ));
        }
        addrs
    }

    /// Sends each service port its ready endpoints (when they changed).
    fn update_endpoints(&mut self, table: &ServiceTable, direct: &DirectAddresses) {
        let local = Local {
            ip: self.config.node_ip,
            direct,
        };
        let mut ports = BTreeMap::new();
        for service in table.services.values() {
            for port in &service.ports {
                let key = (service.name.clone(), port.port);
                let sender = match self.ports.remove(&key) {
                    Some(sender) => sender,
                    None => watch::channel(Arc::new(Backends::default())).0,
                };
                sender.send_if_modified(|current| {
                    let next = Backends::of(service, port.port, current, &local);
                    let changed = !next.same_as(current);
                    if changed {
                        log_endpoints(service, port.port, &next);
                        *current = Arc::new(next);
                    }
                    changed
                });
                ports.insert(key, sender);
            }
        }
        self.ports = ports;
    }

    async fn open(&mut self, addr: SocketAddr, entry: &ListenerStatus) -> Result<(), String> {
        let key = key_of(entry);
        let Some(backends) = self.ports.get(&key).map(|s| s.subscribe()) else {
            return Err("internal: no endpoint set for this port".to_owned());
        };
        let shared = self.config.service_ip_shared && entry.kind == ListenerKind::Service;
        let listener = bind(addr).await.map_err(|e| {
            let why = if shared && e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "{addr} is taken, most likely by another peer of this cluster sharing this \
                     Docker engine (it serves DNS there): pods here reach the service through it"
                )
            } else {
                format!("cannot listen on {addr}: {e}")
            };
            tracing::warn!(service = %entry.service, port = entry.port, "{why}");
            why
        })?;
        let limit = self.config.max_connections_per_service;
        let room = self
            .room
            .entry(entry.service.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(limit)))
            .clone();
        tracing::info!(service = %entry.service, port = entry.port, %addr, "listening");
        let listening = spawn_listener(
            entry.service.clone(),
            listener,
            backends,
            Bounds {
                room,
                clients: self.clients.clone(),
            },
            self.config.limits,
        );
        self.listening.insert(addr, (key, listening));
        Ok(())
    }
}

fn key_of(entry: &ListenerStatus) -> PortKey {
    (entry.service.clone(), entry.port)
}

fn kind_name(kind: ListenerKind) -> &'static str {
    match kind {
        ListenerKind::Service | ListenerKind::ServiceAtPeer => "service port",
        ListenerKind::Node => "nodePort",
    }
}

fn log_endpoints(service: &ServiceEntry, port: u16, backends: &Backends) {
    tracing::debug!(
        service = %service.name,
        port,
        ready = backends.len(),
        "endpoints changed"
    );
}
