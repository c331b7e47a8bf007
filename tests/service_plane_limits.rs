//! The load balancer's per-client limits with real sockets: a tokio server
//! stands for the pod (as in `service_plane.rs`), clients bind distinct
//! loopback source addresses of this file's subnet, 127.0.106.x, and the
//! refusals are read from the process's metrics registry (what `/metrics`
//! renders). Needs the `shell` feature (on by default).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shoal::services::{Endpoint, ServiceEntry, ServicePortEntry, ServiceTable};
use shoal::shell::client_limits::LimitSettings;
use shoal::shell::service_plane::{PlaneConfig, ServicePlane};
use shoal_runtime::docker::DirectAddresses;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const SERVICE_IP: [u8; 4] = [127, 0, 106, 1];
const NODE_IP: [u8; 4] = [127, 0, 106, 2];
const POD_IP: [u8; 4] = [127, 0, 106, 3];

fn client_ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 106, last])
}

/// A pod: greets every connection with "pod\n", then echoes; counts the
/// connections it accepted.
struct Pod {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pod() -> Pod {
    let listener = TcpListener::bind(SocketAddr::from((POD_IP, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = stream.write_all(b"pod\n").await;
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
        addr,
        accepted,
        task,
    }
}

async fn free_port(ip: [u8; 4]) -> u16 {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).await.unwrap();
    l.local_addr().unwrap().port()
}

/// A plane serving one service on a node port, forwarding to `pod`, with
/// `limits` per client; returns once the node port listens.
async fn plane(
    pod: &Pod,
    limits: LimitSettings,
) -> (ServicePlane, SocketAddr, watch::Sender<Arc<ServiceTable>>) {
    let port = free_port(SERVICE_IP).await;
    let node_port = free_port(NODE_IP).await;
    let service = ServiceEntry {
        name: "web".to_owned(),
        ports: vec![ServicePortEntry {
            name: Some("http".to_owned()),
            port,
            node_port: Some(node_port),
            target_port: 8080,
        }],
        endpoints: vec![Endpoint {
            pod: "web-1".to_owned(),
            node: "node-a".to_owned(),
            ready: true,
            targets: BTreeMap::from([(port, pod.addr)]),
        }],
        proxy_protocol: Default::default(),
    };
    let table = Arc::new(ServiceTable {
        services: BTreeMap::from([(service.name.clone(), service)]),
        peer_addrs: Vec::new(),
    });
    let (tables, rx) = watch::channel(table);
    let (_direct_tx, direct_rx) = watch::channel(Arc::new(DirectAddresses::new()));
    let mut config = PlaneConfig::new(IpAddr::from(NODE_IP), IpAddr::from(SERVICE_IP));
    config.client_limits = limits;
    let plane = ServicePlane::spawn(config, rx, direct_rx);
    let addr = SocketAddr::from((NODE_IP, node_port));
    let mut status = plane.status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = status.borrow_and_update().clone();
        let listening = now.iter().any(|s| s.addr == addr && s.state.is_ok());
        if listening {
            break;
        }
        assert!(Instant::now() < deadline, "never listened: {now:?}");
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
    (plane, addr, tables)
}

/// What a client got: forwarded (the pod's greeting, connection kept
/// open) or refused (reset before a byte).
enum Outcome {
    Served(TcpStream),
    Refused,
}

impl Outcome {
    fn served(self) -> TcpStream {
        match self {
            Outcome::Served(s) => s,
            Outcome::Refused => panic!("refused, expected to be served"),
        }
    }

    fn is_refused(&self) -> bool {
        matches!(self, Outcome::Refused)
    }
}

/// Connects from `from` to `to` and reads the greeting (bounded).
async fn connect_from(from: IpAddr, to: SocketAddr) -> Outcome {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let connected = tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .expect("connect timed out");
    // On loopback the reset can come before the connect call returns.
    let stream = match connected {
        Ok(stream) => stream,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Outcome::Refused,
        Err(e) => panic!("cannot connect to {to}: {e}"),
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .expect("neither served nor refused within 5 s");
    match read {
        Ok(_) if line == "pod\n" => Outcome::Served(reader.into_inner()),
        // The load balancer resets (linger 0): a FIN would read as Ok(0).
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Outcome::Refused,
        other => panic!("unexpected answer {other:?} {line:?}"),
    }
}

/// The refused-connection counter for `reason` in the rendered metrics.
fn refused_count(reason: &str) -> u64 {
    let text = shoal::shell::metrics::install().render();
    let series = format!("shoal_lb_connections_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_client_past_its_connection_cap_is_reset_while_another_is_served() {
    shoal::shell::metrics::install();
    let before = refused_count("connections");
    let pod = pod().await;
    let limits = LimitSettings {
        rate_per_sec: 0,
        burst: 0,
        max_connections: 3,
    };
    let (_plane, addr, _tables) = plane(&pod, limits).await;
    let a = client_ip(10);
    let b = client_ip(11);

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(a, addr).await.served());
    }
    let mut refused = 0;
    for _ in 0..2 {
        assert!(connect_from(a, addr).await.is_refused(), "past the cap");
        refused += 1;
    }
    assert_eq!(
        pod.accepted.load(Ordering::SeqCst),
        3,
        "a refused connection never reaches the pod"
    );
    // Another client is served while the first one is at its cap.
    let mut other = connect_from(b, addr).await.served();
    other.write_all(b"ping\n").await.unwrap();
    let mut echo = [0u8; 5];
    other.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping\n");

    // One of the first client's connections ends: it gets a slot back
    // once the proxy has closed that connection.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match connect_from(a, addr).await {
            Outcome::Served(s) => break s,
            Outcome::Refused => refused += 1,
        }
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(again);
    assert_eq!(refused_count("connections") - before, refused);
}

#[tokio::test]
async fn a_burst_past_the_rate_is_reset_and_served_again_after_the_refill() {
    shoal::shell::metrics::install();
    let before = refused_count("rate");
    let pod = pod().await;
    let limits = LimitSettings {
        rate_per_sec: 1,
        burst: 2,
        max_connections: 0,
    };
    let (_plane, addr, _tables) = plane(&pod, limits).await;
    let c = client_ip(12);
    let d = client_ip(13);

    // Ten new connections at once: the burst (2) is served, plus one per
    // second that passed meanwhile; the rest are reset. Ten, so that even a
    // machine too loaded to open them within 7 s still sees a refusal.
    const ATTEMPTS: u64 = 10;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..ATTEMPTS {
        outcomes.push(connect_from(c, addr).await);
    }
    let elapsed = started.elapsed();
    let refused = outcomes.iter().filter(|o| o.is_refused()).count() as u64;
    let served = ATTEMPTS - refused;
    let refilled = elapsed.as_secs_f64().ceil() as u64;
    assert!(
        served >= 2 && served <= 2 + refilled,
        "{served} served in {elapsed:?}"
    );
    if 2 + refilled < ATTEMPTS {
        assert!(refused >= 1, "nothing refused in {elapsed:?}");
    }
    assert!(
        outcomes.first().is_some_and(|o| !o.is_refused()),
        "the first of a burst is served"
    );
    drop(outcomes);
    assert_eq!(pod.accepted.load(Ordering::SeqCst) as u64, served);
    assert_eq!(refused_count("rate") - before, refused);

    // Another client has its own bucket.
    drop(connect_from(d, addr).await.served());
    // A second later the first client's bucket has a token again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(connect_from(c, addr).await.served());
}
