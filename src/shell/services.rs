//! A peer's services data plane, assembled: the service table derived from
//! the published snapshot, the load balancer and the DNS server it feeds,
//! and the resolver pods are given.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_crdt_state::node::ListenerProblems;
use shoal_runtime::docker::{DockerRuntime, PodDns};
use tokio::sync::{mpsc, watch};

use super::client_limits::LimitSettings;
use super::handle::{PeerHandle, Snapshot};
use super::service_dns::answer::CLUSTER_DOMAIN;
use super::service_dns::holder::{Holder, holder_of};
use super::service_dns::{DnsServer, Upstreams};
use super::service_plane::{PlaneConfig, PlaneStatus, ServicePlane};
use crate::services::ServiceTable;

/// How long the feed lets changes gather before it reads the snapshot:
/// each read of a stale snapshot costs the driver one build (a copy of
/// pointers) and the feed a table, so a burst of changes costs one, and
/// after a quiet spell the load balancer and DNS follow a change within
/// about this long.
pub const FEED_GATHER: Duration = Duration::from_millis(50);

/// The least time between two reads of the feed: under constant change
/// (pod statuses of a large cluster keep arriving) it reads this often and
/// no more, as the poll it replaced did.
pub const FEED_SPACING: Duration = Duration::from_millis(250);

/// How long the feed waits, after a change, before its next read.
fn feed_delay(since_last_read: Duration) -> Duration {
    FEED_GATHER.max(FEED_SPACING.saturating_sub(since_last_read))
}

/// The table the load balancer and DNS serve, from what this peer knows
/// (derived by the control plane, once per snapshot).
pub fn service_table(snapshot: &Snapshot) -> ServiceTable {
    snapshot.services().clone()
}

/// Where the data plane listens.
#[derive(Debug, Clone, Copy)]
pub struct ServicesConfig {
    /// The advertised IP: nodePorts, and DNS for `dig @peer`.
    pub node_ip: IpAddr,
    /// Where pods reach services and DNS.
    pub service_ip: IpAddr,
    pub dns_port: u16,
    /// Per-client limits of the load balancer.
    pub lb_limits: LimitSettings,
}

/// The running data plane; dropping it closes every listener.
#[derive(Debug)]
pub struct Services {
    pub plane: ServicePlane,
    /// One server per address that could be bound, the service address first.
    pub dns: Vec<DnsServer>,
    /// Why a DNS server could not be started at an address.
    pub dns_failures: Vec<String>,
    /// The tables served, as the feed derives them.
    pub tables: watch::Receiver<Arc<ServiceTable>>,
}

impl Services {
    /// What each listener of the load balancer does.
    pub fn status(&self) -> watch::Receiver<Arc<PlaneStatus>> {
        self.plane.status()
    }

    /// The first address this peer's DNS server answers at (the service
    /// address when it could be bound): asked there, it gives that address
    /// first for every service. `Err`: why it answers nowhere.
    pub fn dns_address(&self) -> Result<IpAddr, String> {
        self.dns
            .iter()
            .flat_map(|d| d.addrs())
            .map(SocketAddr::ip)
            .next()
            .ok_or_else(|| {
                format!(
                    "this peer runs no DNS server for services: {}",
                    self.dns_failures.join("; ")
                )
            })
    }
}

/// The service address when none is given: the gateway of the engine's
/// default bridge (where containers reach the host), else the advertised
/// address, with a warning.
pub async fn default_service_ip(runtime: &DockerRuntime, advertised: IpAddr) -> IpAddr {
    match runtime.default_bridge_gateway().await {
        Ok(Some(gateway)) => gateway,
        Ok(None) => {
            tracing::warn!(%advertised, "the engine's default bridge has no gateway; pods reach services at the advertised address (pass --service-address)");
            advertised
        }
        Err(e) => {
            tracing::warn!(%advertised, error = %e, "cannot read the engine's default bridge; pods reach services at the advertised address (pass --service-address)");
            advertised
        }
    }
}

/// Starts the feed, the load balancer and the DNS servers, and gives pods
/// the DNS server when it listens where they can reach it: this peer's, or
/// (peers sharing one Docker engine share its bridge address) that of
/// another peer of cluster `cluster` which bound the address first.
pub async fn start_services(
    config: ServicesConfig,
    cluster: &str,
    handle: PeerHandle,
    runtime: &DockerRuntime,
    shutdown: watch::Receiver<bool>,
) -> Services {
    let (tables_tx, tables) = watch::channel(Arc::new(ServiceTable::default()));
    tokio::spawn(feed_loop(handle, tables_tx, shutdown));
    let mut addrs = vec![SocketAddr::new(config.service_ip, config.dns_port)];
    if config.node_ip != config.service_ip {
        addrs.push(SocketAddr::new(config.node_ip, config.dns_port));
    }
    let ours: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    let upstreams = Upstreams::from_resolv_conf(Path::new("/etc/resolv.conf"), &ours);
    let mut dns = Vec::new();
    let mut dns_failures = Vec::new();
    let mut served_by_a_peer = false;
    for addr in addrs {
        match DnsServer::spawn(&[addr], tables.clone(), upstreams.clone(), cluster).await {
            Ok(server) => dns.push(server),
            Err(e) if e.source.kind() == std::io::ErrorKind::AddrInUse => {
                match taken_dns(addr, cluster).await {
                    Ok(()) => served_by_a_peer |= addr.ip() == config.service_ip,
                    Err(why) => dns_failures.push(why),
                }
            }
            Err(e) => {
                tracing::warn!("{e}; services are not resolvable there");
                dns_failures.push(e.to_string());
            }
        }
    }
    // After DNS: whether another peer of this cluster holds the service
    // address decides how a service port taken there is reported.
    let mut plane_config = PlaneConfig::new(config.node_ip, config.service_ip);
    plane_config.service_ip_shared = served_by_a_peer;
    plane_config.client_limits = config.lb_limits;
    let plane = ServicePlane::spawn(plane_config, tables.clone(), runtime.direct_addresses());
    let pods_reach_dns = served_by_a_peer
        || dns
            .iter()
            .any(|d| d.addrs().iter().any(|a| a.ip() == config.service_ip));
    // A container's loopback is its own: a loopback service address is no
    // resolver for pods; and resolv.conf has no port, only 53.
    if pods_reach_dns && !config.service_ip.is_loopback() && config.dns_port == 53 {
        runtime.set_pod_dns(PodDns {
            servers: vec![config.service_ip],
            search: vec![CLUSTER_DOMAIN.to_owned()],
        });
    }
    Services {
        plane,
        dns,
        dns_failures,
        tables,
    }
}

/// A DNS address another process holds: `Ok` when it is a peer of
/// `cluster` (it answers the same names), else why services are not
/// resolvable there. Logs either way.
async fn taken_dns(addr: SocketAddr, cluster: &str) -> Result<(), String> {
    match holder_of(addr).await {
        Holder::Peer { cluster: theirs } if theirs == cluster => {
            tracing::info!(
                %addr,
                "DNS at {addr} is served by another peer of this cluster (peers sharing one \
                 Docker engine share its bridge address); pods reach services by name through it"
            );
            Ok(())
        }
        Holder::Peer { cluster: theirs } => {
            let why = format!(
                "DNS at {addr} is held by a peer of another cluster ({theirs}) sharing this Docker \
                 engine: pods this peer starts cannot resolve this cluster's services by name; give \
                 each cluster its own engine, or this peer its own --service-address or --dns-port"
            );
            tracing::warn!(%addr, "{why}");
            Err(why)
        }
        Holder::Other(reason) => {
            let why = format!(
                "DNS at {addr} is held by another process, no Shoal peer ({reason}): services are \
                 not resolvable there; free the port or pass --service-address or --dns-port"
            );
            tracing::warn!(%addr, "{why}");
            Err(why)
        }
    }
}

/// Sends what the load balancer cannot listen on to the driver, which
/// publishes it in this node's record, each time that changes. Ends when
/// either side is gone.
pub async fn report_listener_problems(
    mut status: watch::Receiver<Arc<PlaneStatus>>,
    problems: mpsc::Sender<ListenerProblems>,
) {
    let mut sent = None;
    loop {
        let now = listener_problems(&status.borrow_and_update());
        if sent.as_ref() != Some(&now) {
            if problems.send(now.clone()).await.is_err() {
                return;
            }
            sent = Some(now);
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// The listeners that do not listen, by service, each with why.
pub fn listener_problems(status: &PlaneStatus) -> ListenerProblems {
    let mut problems = ListenerProblems::new();
    for listener in status {
        if let Err(why) = &listener.state {
            problems
                .entry(listener.service.clone())
                .or_default()
                .push(why.clone());
        }
    }
    problems
}

/// Derives the table from each new snapshot until shutdown or until the
/// peer is gone; dropping the sender then stops the load balancer.
async fn feed_loop(
    handle: PeerHandle,
    tables: watch::Sender<Arc<ServiceTable>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut changes = handle.snapshot_changes();
    let mut seen = None;
    loop {
        let read_at = tokio::time::Instant::now();
        let Ok(snapshot) = handle.snapshot().await else {
            return;
        };
        if seen != Some(snapshot.generation) {
            seen = Some(snapshot.generation);
            let table = service_table(&snapshot);
            tables.send_if_modified(|current| {
                let changed = **current != table;
                if changed {
                    *current = Arc::new(table);
                }
                changed
            });
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(feed_delay(read_at.elapsed())) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_reacts_fast_after_quiet_and_reads_at_most_every_spacing_under_churn() {
        // A change long after the last read: only the gathering time.
        assert_eq!(feed_delay(Duration::from_secs(5)), FEED_GATHER);
        // Changes right after a read: the rest of the spacing.
        assert_eq!(feed_delay(Duration::ZERO), FEED_SPACING);
        assert_eq!(
            feed_delay(Duration::from_millis(100)),
            FEED_SPACING - Duration::from_millis(100)
        );
        // Never less than the gathering time.
        assert_eq!(
            feed_delay(FEED_SPACING - Duration::from_millis(10)),
            FEED_GATHER
        );
    }
}
