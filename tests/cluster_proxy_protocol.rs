//! The PROXY protocol opt-in end to end: two real peers on the machine's
//! engine, one pod whose container echoes every byte it receives (busybox
//! `nc -ll -e cat`), a NodePort Service. With `shoal.io/proxy-protocol` the
//! pod receives, before the client's bytes, a header naming the client's
//! address and the address it connected to — through the peer that runs the
//! pod (which reaches the container at its own address) and through the
//! other (which reaches it where its node publishes it). Without the
//! annotation it receives the client's bytes only.

mod cluster_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, ECHO_RC, ok, wait_until};

const NODE_PORT: u16 = 30810;

fn service(annotation: Option<&str>) -> String {
    let annotations = annotation
        .map(|v| format!("  annotations:\n    shoal.io/proxy-protocol: \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: echo
{annotations}spec:
  type: NodePort
  selector:
    app: echo
  ports:
    - port: 8081
      targetPort: 80
      nodePort: {NODE_PORT}
"
    )
}

/// Connects to `at`, sends `payload`, and returns what came back once it
/// holds `payload` (the echo), with the client's own address; `None` if the
/// connection failed or the echo did not come within a few seconds.
fn exchange(at: SocketAddr, payload: &[u8]) -> Option<(Vec<u8>, SocketAddr)> {
    let mut stream = TcpStream::connect_timeout(&at, Duration::from_secs(3)).ok()?;
    let me = stream.local_addr().ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(payload).ok()?;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return None,
        }
        if got.ends_with(payload) {
            return Some((got, me));
        }
    }
    None
}

/// What the pod received before `payload` through `at`, waiting (bounded)
/// until it is `want`'s kind: the table and the listeners follow an apply
/// asynchronously.
fn prefix_until(
    cluster: &Cluster,
    at: SocketAddr,
    payload: &[u8],
    want: impl Fn(&[u8], SocketAddr) -> bool,
) -> (Vec<u8>, SocketAddr) {
    let mut last = None;
    let served = wait_until(Duration::from_secs(60), || {
        if let Some((got, me)) = exchange(at, payload) {
            let prefix = got[..got.len() - payload.len()].to_vec();
            let done = want(&prefix, me);
            last = Some((prefix, me));
            return done;
        }
        false
    });
    assert!(
        served,
        "through {at}: last received {:?}; pods {:?}\n{}",
        last.as_ref()
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned()),
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );
    last.unwrap()
}

fn v1_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        client.ip(),
        server.ip(),
        client.port(),
        server.port()
    )
    .into_bytes()
}

fn v2_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(c), SocketAddr::V4(s)) = (client, server) else {
        panic!("IPv4 only here");
    };
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend([0x21, 0x11, 0, 12]);
    out.extend(c.ip().octets());
    out.extend(s.ip().octets());
    out.extend(c.port().to_be_bytes());
    out.extend(s.port().to_be_bytes());
    out
}

#[test]
fn endpoints_of_a_proxy_protocol_service_learn_the_clients_address() {
    let cluster = Cluster::start(81, 2);
    let manifest = cluster.manifest("echo.yaml", &format!("{ECHO_RC}---\n{}", service(None)));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let peers: Vec<SocketAddr> = cluster
        .peers
        .iter()
        .map(|p| SocketAddr::from((p.ip, NODE_PORT)))
        .collect();
    let payload = b"hello through the load balancer\n";

    // Off: the pod receives the client's bytes only, through either peer.
    for &at in &peers {
        let (prefix, _) = prefix_until(&cluster, at, payload, |_, _| true);
        assert!(prefix.is_empty(), "through {at}: {prefix:?}");
    }

    // v1: one text line first, then the client's bytes.
    let v1 = cluster.manifest("echo-v1.yaml", &service(Some("v1")));
    ok(&cluster.cli(1, &["apply", "-f", v1.to_str().unwrap()]));
    let described = ok(&cluster.cli(0, &["describe", "svc", "echo"]));
    assert!(described.contains("PROXY protocol: v1"), "{described}");
    for &at in &peers {
        let (prefix, me) = prefix_until(&cluster, at, payload, |p, _| !p.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&prefix),
            String::from_utf8_lossy(&v1_header(me, at)),
            "through {at}"
        );
    }

    // v2: the binary header.
    let v2 = cluster.manifest("echo-v2.yaml", &service(Some("v2")));
    ok(&cluster.cli(0, &["apply", "-f", v2.to_str().unwrap()]));
    for &at in &peers {
        let (prefix, me) = prefix_until(&cluster, at, payload, |p, _| p.starts_with(b"\r\n\r\n"));
        assert_eq!(prefix, v2_header(me, at), "through {at}");
    }

    // A value that is neither is refused at apply, saying what to write.
    let bad = cluster.manifest("echo-bad.yaml", &service(Some("v3")));
    let out = cluster.cli(0, &["apply", "-f", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("shoal.io/proxy-protocol") && stderr.contains("\"v1\""),
        "{stderr}"
    );
}
