//! The load balancer with real sockets: tokio servers stand for the pods, a
//! `ServiceTable` is fed directly (the control plane derives it in a peer).
//! Needs the `shell` feature (on by default).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::services::{Endpoint, ServiceEntry, ServicePortEntry, ServiceTable};
use shoal::shell::service_plane::{PlaneConfig, PlaneStatus, ServicePlane};
use shoal_crdt_state::service::ProxyProtocol;
use shoal_runtime::docker::DirectAddresses;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Loopback addresses of this test file: the service and the node address.
const SERVICE_IP: [u8; 4] = [127, 0, 91, 1];
const NODE_IP: [u8; 4] = [127, 0, 91, 2];

/// A pod: answers every connection with its name, then echoes.
struct Pod {
    name: String,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pod(name: &str) -> Pod {
    pod_at(name, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

async fn pod_at(name: &str, at: SocketAddr) -> Pod {
    let listener = TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let me = name.to_owned();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let me = me.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(format!("{me}\n").as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Pod {
        name: name.to_owned(),
        addr,
        task,
    }
}

/// An address nothing listens on (bound, then closed).
async fn dead_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A port free on `ip` now.
async fn free_port(ip: [u8; 4]) -> u16 {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).await.unwrap();
    l.local_addr().unwrap().port()
}

fn endpoint(pod: &str, ready: bool, port: u16, at: SocketAddr) -> Endpoint {
    Endpoint {
        pod: pod.to_owned(),
        node: "node-a".to_owned(),
        ready,
        targets: BTreeMap::from([(port, at)]),
    }
}

fn service(
    name: &str,
    port: u16,
    node_port: Option<u16>,
    endpoints: Vec<Endpoint>,
) -> ServiceEntry {
    ServiceEntry {
        name: name.to_owned(),
        ports: vec![ServicePortEntry {
            name: Some("http".to_owned()),
            port,
            node_port,
            target_port: 8080,
        }],
        endpoints,
        proxy_protocol: Default::default(),
    }
}

fn table(services: Vec<ServiceEntry>) -> Arc<ServiceTable> {
    Arc::new(ServiceTable {
        services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
        peer_addrs: Vec::new(),
    })
}

fn plane(first: Arc<ServiceTable>) -> (ServicePlane, watch::Sender<Arc<ServiceTable>>) {
    let (plane, tables, _no_runtime) = plane_with_direct(first);
    (plane, tables)
}

/// A plane, the sender of its tables and that of its node's containers'
/// own addresses (what the Docker runtime sends in a peer).
fn plane_with_direct(
    first: Arc<ServiceTable>,
) -> (
    ServicePlane,
    watch::Sender<Arc<ServiceTable>>,
    watch::Sender<Arc<DirectAddresses>>,
) {
    let (tx, rx) = watch::channel(first);
    let (direct_tx, direct_rx) = watch::channel(Arc::new(DirectAddresses::new()));
    let config = PlaneConfig::new(IpAddr::from(NODE_IP), IpAddr::from(SERVICE_IP));
    (ServicePlane::spawn(config, rx, direct_rx), tx, direct_tx)
}

/// Waits until the plane's status satisfies `ok` (bounded).
async fn status_until(plane: &ServicePlane, ok: impl Fn(&PlaneStatus) -> bool) -> PlaneStatus {
    let mut status = plane.status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = status.borrow_and_update().clone();
        if ok(&now) {
            return (*now).clone();
        }
        assert!(Instant::now() < deadline, "status never got there: {now:?}");
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
}

fn all_listening(status: &PlaneStatus) -> bool {
    !status.is_empty() && status.iter().all(|s| s.state.is_ok())
}

/// Connects to `addr` and reads the answering pod's name; `None` if the
/// connection was refused or closed before a name arrived.
async fn who_answers(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
            Ok(Ok(1)) if byte[0] == b'\n' => break,
            Ok(Ok(1)) => line.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8(line).unwrap())
}

#[tokio::test]
async fn connections_spread_over_ready_endpoints_on_both_addresses() {
    let pods = [
        pod("hello-0").await,
        pod("hello-1").await,
        pod("hello-2").await,
    ];
    let not_ready = pod("hello-3").await;
    let (port, node_port) = (free_port(SERVICE_IP).await, free_port(NODE_IP).await);
    let mut endpoints: Vec<Endpoint> = pods
        .iter()
        .map(|p| endpoint(&p.name, true, port, p.addr))
        .collect();
    endpoints.push(endpoint(&not_ready.name, false, port, not_ready.addr));
    let (plane, _tables) = plane(table(vec![service(
        "hello",
        port,
        Some(node_port),
        endpoints,
    )]));
    let status = status_until(&plane, all_listening).await;
    assert_eq!(status.len(), 3, "{status:?}");

    for addr in [
        SocketAddr::from((SERVICE_IP, port)),
        SocketAddr::from((NODE_IP, port)),
        SocketAddr::from((NODE_IP, node_port)),
    ] {
        let mut seen = BTreeMap::<String, u32>::new();
        for _ in 0..60 {
            let name = who_answers(addr).await.expect("served");
            *seen.entry(name).or_default() += 1;
        }
        let names: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            BTreeSet::from(["hello-0", "hello-1", "hello-2"]),
            "via {addr}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn an_endpoint_on_this_node_is_reached_at_the_container_else_where_it_is_published() {
    let container = pod("hello-0 (container address)").await;
    let port = free_port(SERVICE_IP).await;
    let published_port = free_port(NODE_IP).await;
    let published = SocketAddr::from((NODE_IP, published_port));
    let endpoints = vec![endpoint("hello-0", true, port, published)];
    let (plane, _tables, direct) =
        plane_with_direct(table(vec![service("hello", port, None, endpoints)]));
    status_until(&plane, all_listening).await;
    let addr = SocketAddr::from((SERVICE_IP, port));

    // Nothing listens where it is published: only the direct route serves.
    direct.send_replace(Arc::new(DirectAddresses::from([(
        published_port,
        container.addr,
    )])));
    until_answered_by(addr, &container.name).await;

    // The container's address is stale: its published address still serves.
    let at_node = pod_at("hello-0 (published)", published).await;
    direct.send_replace(Arc::new(DirectAddresses::from([(
        published_port,
        dead_addr().await,
    )])));
    until_answered_by(addr, &at_node.name).await;
    for _ in 0..10 {
        assert_eq!(
            who_answers(addr).await.as_deref(),
            Some(at_node.name.as_str())
        );
    }
}

#[tokio::test]
async fn a_proxy_protocol_service_tells_the_endpoint_who_the_client_is() {
    let echo = pod("hello-0").await;
    let port = free_port(SERVICE_IP).await;
    let mut hello = service(
        "hello",
        port,
        None,
        vec![endpoint("hello-0", true, port, echo.addr)],
    );
    hello.proxy_protocol = ProxyProtocol::V1;
    let (plane, _tables) = plane(table(vec![hello]));
    status_until(&plane, all_listening).await;
    let at = SocketAddr::from((SERVICE_IP, port));
    let mut stream = TcpStream::connect(at).await.unwrap();
    let me = stream.local_addr().unwrap();
    stream.write_all(b"ping\n").await.unwrap();
    // The pod says its name, then echoes what it received: the header first.
    let want = format!(
        "hello-0\nPROXY TCP4 {} {} {} {}\r\nping\n",
        me.ip(),
        at.ip(),
        me.port(),
        at.port()
    );
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
        .await
        .expect("echoed in time")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

/// Waits (bounded) until a connection to `addr` is answered by `name`:
/// the plane applies a new set of addresses asynchronously.
async fn until_answered_by(addr: SocketAddr, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = who_answers(addr).await;
        if got.as_deref() == Some(name) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} answered {got:?}, not {name}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dead_endpoint_costs_latency_not_a_failed_connection() {
    let live = pod("hello-0").await;
    let port = free_port(SERVICE_IP).await;
    let endpoints = vec![
        endpoint("hello-0", true, port, live.addr),
        endpoint("hello-1", true, port, dead_addr().await),
        endpoint("hello-2", true, port, dead_addr().await),
    ];
    let (plane, _tables) = plane(table(vec![service("hello", port, None, endpoints)]));
    status_until(&plane, all_listening).await;
    let addr = SocketAddr::from((SERVICE_IP, port));
    for _ in 0..30 {
        assert_eq!(who_answers(addr).await.as_deref(), Some("hello-0"));
    }
}

#[tokio::test]
async fn scale_to_zero_closes_connections_cleanly_and_scaling_back_serves_again() {
    let live = pod("hello-0").await;
    let port = free_port(SERVICE_IP).await;
    let addr = SocketAddr::from((SERVICE_IP, port));
    let with = |endpoints| table(vec![service("hello", port, None, endpoints)]);
    let (plane, tables) = plane(with(vec![endpoint("hello-0", true, port, live.addr)]));
    status_until(&plane, all_listening).await;
    assert_eq!(who_answers(addr).await.as_deref(), Some("hello-0"));

    // A connection open before the scale-down keeps working.
    let mut open = TcpStream::connect(addr).await.unwrap();
    let mut hello = [0u8; 8];
    open.read_exact(&mut hello).await.unwrap();

    tables.send_replace(with(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while who_answers(addr).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "still served after scale to zero"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Closed at once (EOF), not left hanging.
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("the listener stays");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .expect("closed, not hanging")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(2));

    open.write_all(b"still here").await.unwrap();
    let mut echo = [0u8; 10];
    open.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"still here");

    tables.send_replace(with(vec![endpoint("hello-0", true, port, live.addr)]));
    let deadline = Instant::now() + Duration::from_secs(5);
    while who_answers(addr).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "not served again after scaling back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn removing_a_service_closes_its_listener_and_leaves_the_others() {
    let live = pod("hello-0").await;
    let (a, b) = (free_port(SERVICE_IP).await, free_port(SERVICE_IP).await);
    let two = table(vec![
        service(
            "alpha",
            a,
            None,
            vec![endpoint("hello-0", true, a, live.addr)],
        ),
        service(
            "beta",
            b,
            None,
            vec![endpoint("hello-0", true, b, live.addr)],
        ),
    ]);
    let (plane, tables) = plane(two);
    status_until(&plane, |s| s.len() == 4 && all_listening(s)).await;
    tables.send_replace(table(vec![service(
        "beta",
        b,
        None,
        vec![endpoint("hello-0", true, b, live.addr)],
    )]));
    status_until(&plane, |s| s.len() == 2).await;
    let refused = TcpStream::connect(SocketAddr::from((SERVICE_IP, a))).await;
    assert!(refused.is_err(), "alpha's port still accepts");
    assert_eq!(
        who_answers(SocketAddr::from((SERVICE_IP, b)))
            .await
            .as_deref(),
        Some("hello-0")
    );
}

#[tokio::test]
async fn a_port_in_use_is_reported_and_the_other_ports_keep_serving() {
    let live = pod("hello-0").await;
    let squatter = TcpListener::bind(SocketAddr::from((NODE_IP, 0)))
        .await
        .unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let port = free_port(SERVICE_IP).await;
    let (plane, _tables) = plane(table(vec![service(
        "hello",
        port,
        Some(taken),
        vec![endpoint("hello-0", true, port, live.addr)],
    )]));
    let status = status_until(&plane, |s| s.iter().any(|l| l.state.is_err())).await;
    let failed: Vec<_> = status.iter().filter(|l| l.state.is_err()).collect();
    assert_eq!(failed.len(), 1, "{status:?}");
    assert_eq!(failed[0].addr, SocketAddr::from((NODE_IP, taken)));
    let why = failed[0].state.as_ref().unwrap_err();
    assert!(why.contains("in use"), "{why}");
    assert_eq!(
        who_answers(SocketAddr::from((SERVICE_IP, port)))
            .await
            .as_deref(),
        Some("hello-0")
    );

    // Freed: the plane binds it on its next retry.
    drop(squatter);
    status_until(&plane, all_listening).await;
    assert_eq!(
        who_answers(SocketAddr::from((NODE_IP, taken)))
            .await
            .as_deref(),
        Some("hello-0")
    );
}

#[tokio::test]
async fn two_services_claiming_one_port_serve_the_first_and_report_the_second() {
    let live = pod("hello-0").await;
    let port = free_port(SERVICE_IP).await;
    let (plane, _tables) = plane(table(vec![
        service(
            "alpha",
            port,
            None,
            vec![endpoint("hello-0", true, port, live.addr)],
        ),
        service(
            "beta",
            port,
            None,
            vec![endpoint("hello-0", true, port, dead_addr().await)],
        ),
    ]));
    let status = status_until(&plane, |s| s.len() == 4).await;
    let beta = status.iter().find(|l| l.service == "beta").unwrap();
    assert!(
        beta.state.as_ref().unwrap_err().contains("service alpha"),
        "{beta:?}"
    );
    assert_eq!(
        who_answers(SocketAddr::from((SERVICE_IP, port)))
            .await
            .as_deref(),
        Some("hello-0")
    );
}
