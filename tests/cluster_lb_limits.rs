//! The load balancer's per-client connection cap end to end: a real
//! `shoal up` peer on 127.0.102.11 (this file's subnet) started with
//! `--lb-max-connections-per-client 2`, one pod whose container echoes
//! (busybox `nc -ll -e cat`), a NodePort Service. One client address holding
//! two connections is reset on its third while another client address is
//! served, and the peer's `/metrics` counts the refusal.

mod cluster_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, ECHO_RC, http, ok, wait_until};

const SUBNET: u8 = 102;
const NODE_PORT: u16 = 30902;

/// A NodePort service in front of `ECHO_RC`.
const ECHO_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  type: NodePort
  selector:
    app: echo
  ports:
    - port: 8082
      targetPort: 80
      nodePort: 30902
";

fn client_ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, SUBNET, last])
}

/// A connection to `to` from the source address `from` (std has no bind
/// before connect; tokio's socket does it, then hands the stream over).
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = tokio::time::timeout(Duration::from_secs(3), socket.connect(to))
            .await
            .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "connect timed out"))??;
        stream.into_std()
    })?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// Sends a line and reads its echo: the connection is forwarded to the pod.
fn echoes(stream: &mut TcpStream) -> std::io::Result<()> {
    let payload = b"through the load balancer\n";
    stream.write_all(payload)?;
    let mut got = vec![0u8; payload.len()];
    stream.read_exact(&mut got)?;
    if got == payload {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("echo was {got:?}")))
    }
}

/// The peer's refused-connection counter for `reason`, from `/metrics`.
fn refused(cluster: &Cluster, reason: &str) -> u64 {
    let (status, text) = http(
        &cluster.peers[0].api_addr(),
        "GET",
        "/metrics",
        None,
        Duration::from_secs(5),
    )
    .expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    let series = format!("shoal_lb_connections_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn a_client_past_its_cap_is_reset_and_counted_while_another_is_served() {
    let cluster = Cluster::start_with_args(
        SUBNET,
        1,
        &[
            "--service-address",
            "127.0.102.11",
            "--lb-max-connections-per-client",
            "2",
            "--lb-connection-rate",
            "0",
        ],
    );
    let manifest = cluster.manifest("echo.yaml", &format!("{ECHO_RC}---\n{ECHO_SERVICE}"));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let at = SocketAddr::from((cluster.peers[0].ip, NODE_PORT));
    let (a, b) = (client_ip(20), client_ip(21));

    // The pod starts and the load balancer learns it (each try is closed
    // before the next, so it stays within the cap).
    let served = wait_until(Duration::from_secs(90), || {
        connect_from(a, at).and_then(|mut s| echoes(&mut s)).is_ok()
    });
    assert!(
        served,
        "the echo pod never answered through {at}; pods {:?}\n{}",
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );
    let before = refused(&cluster, "connections");

    // Two held open; the slot of the last try may take a moment to return.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while held.len() < 2 {
        let mut s = None;
        let attempt = connect_from(a, at).and_then(|mut c| {
            let served = echoes(&mut c);
            s = Some(c);
            served
        });
        match attempt {
            Ok(()) => held.extend(s),
            Err(e) => {
                assert!(Instant::now() < deadline, "not served: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let early = refused(&cluster, "connections") - before;

    // The third from the same address is reset before any byte (on
    // loopback the reset can come before the connect call returns).
    let read = connect_from(a, at).and_then(|mut third| third.read(&mut [0u8; 16]));
    assert!(
        matches!(&read, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "expected a reset, got {read:?}"
    );
    // Another address is served meanwhile, and so are the two held.
    let mut other = connect_from(b, at).unwrap();
    echoes(&mut other).unwrap();
    for s in &mut held {
        echoes(s).unwrap();
    }
    assert_eq!(refused(&cluster, "connections") - before, early + 1);

    // One held connection ends: the first address is served again.
    drop(held.pop());
    let back = wait_until(Duration::from_secs(5), || {
        connect_from(a, at).and_then(|mut s| echoes(&mut s)).is_ok()
    });
    assert!(back, "the slot never came back");
}
