//! A watcher that goes away ends its watch promptly even when nothing
//! happens (issue #14), with real peers on 127.0.105.x: on a quiet
//! cluster (no pod, no event after the start), an `events?watch=1`
//! stream, a Kubernetes events watch and `shoal get events -w` each leave
//! `shoal_event_watchers` within a few seconds of their client closing,
//! and with the last one gone the fan-in stops gathering
//! (`shoal_event_fanin_gathers_total` stops moving); a watch whose client
//! vanished without closing (its packets dropped) ends by TCP keep-alive.

mod cluster_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, shoal_bin, wait_until};

const SUBNET: u8 = 105;

/// How long a closed watch may keep its place.
const BOUND: Duration = Duration::from_secs(10);

/// The value of an unlabelled sample in peer 0's `/metrics`.
fn metric(cluster: &Cluster, name: &str) -> Option<f64> {
    let (status, text) = cluster_support::http(
        &cluster.peers[0].api_addr(),
        "GET",
        "/metrics",
        None,
        Duration::from_secs(10),
    )
    .expect("peer 0 answers GET /metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn watchers(cluster: &Cluster) -> f64 {
    metric(cluster, "shoal_event_watchers").unwrap_or(0.0)
}

/// Opens a streaming `GET path` at peer 0 and reads until its head is in
/// (the watch then holds its place); the socket, with nothing else read.
fn open_watch(cluster: &Cluster, path: &str, version: &str) -> TcpStream {
    let mut stream = TcpStream::connect(cluster.peers[0].api_addr()).expect("connect");
    write!(stream, "GET {path} HTTP/{version}\r\nHost: test\r\n\r\n").unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("the watch answers");
        assert!(
            n > 0,
            "the watch closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen);
    assert!(head.contains(" 200 "), "GET {path}: {head}");
    stream
}

/// Waits until peer 0 counts `n` event watchers; how long that took.
fn until_watchers(cluster: &Cluster, n: f64, what: &str) -> Duration {
    let start = Instant::now();
    assert!(
        wait_until(BOUND, || watchers(cluster) == n),
        "{what}: peer 0 still counts {} event watchers after {BOUND:?}, expected {n}",
        watchers(cluster)
    );
    start.elapsed()
}

#[test]
fn closed_event_watches_end_without_an_event_and_the_fan_in_stops() {
    let cluster = Cluster::start(SUBNET, 2);

    let raw = open_watch(&cluster, "/api/v1/events?watch=1", "1.0");
    let kube = open_watch(
        &cluster,
        "/kube/api/v1/namespaces/default/events?watch=true",
        "1.1",
    );
    let mut cli = Command::new(shoal_bin())
        .args(["get", "events", "-w"])
        .env("SHOAL_SERVER", cluster.peers[0].server())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run shoal get events -w");
    until_watchers(&cluster, 3.0, "three watches opened");
    assert_eq!(
        metric(&cluster, "shoal_event_fanins_started_total"),
        Some(1.0),
        "three watchers share one fan-in"
    );
    // The cluster is quiet from here: no command, no pod, so no event
    // reaches a watch to write, and only the closing can end it.
    std::thread::sleep(Duration::from_secs(2));

    // Dropped, with what the peer sent (the known events) left unread.
    drop(raw);
    let raw_took = until_watchers(&cluster, 2.0, "the events?watch=1 socket closed");
    drop(kube);
    let kube_took = until_watchers(&cluster, 1.0, "the kube watch socket closed");
    let _ = cli.kill();
    let _ = cli.wait();
    let cli_took = until_watchers(&cluster, 0.0, "shoal get events -w killed");
    eprintln!(
        "watch ended after its client closed: events?watch=1 {raw_took:?}, \
         kube {kube_took:?}, get events -w {cli_took:?}"
    );

    // Nobody watches: the fan-in stops within a round.
    std::thread::sleep(Duration::from_secs(2));
    let stopped_at = metric(&cluster, "shoal_event_fanin_gathers_total");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        metric(&cluster, "shoal_event_fanin_gathers_total"),
        stopped_at,
        "the fan-in still gathers with no watcher"
    );

    // A new watcher starts a new fan-in; its client then vanishes without
    // a FIN (every packet the peer sends it dropped): TCP keep-alive finds
    // it (10 s idle + 3 probes 5 s apart), and its watch ends.
    let vanished = open_watch(&cluster, "/api/v1/events?watch=1", "1.1");
    until_watchers(&cluster, 1.0, "a watch opened again");
    assert_eq!(
        metric(&cluster, "shoal_event_fanins_started_total"),
        Some(2.0)
    );
    let blackhole = Blackhole::to(&vanished);
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(45), || watchers(&cluster) == 0.0),
        "a watch whose client vanished is still counted after 45 s"
    );
    eprintln!(
        "a watch whose client vanished ended after {:?}",
        start.elapsed()
    );
    drop(blackhole);
    drop(vanished);
}

/// Drops every packet to one client socket on this machine (an iptables
/// rule on exactly its address and port), as if its machine went away
/// without closing; removed on drop.
struct Blackhole(Vec<String>);

impl Blackhole {
    fn to(client: &TcpStream) -> Blackhole {
        let to = client.local_addr().unwrap();
        let from = client.peer_addr().unwrap();
        let rule: Vec<String> = [
            "INPUT",
            "-p",
            "tcp",
            "-s",
            &from.ip().to_string(),
            "--sport",
            &from.port().to_string(),
            "-d",
            &to.ip().to_string(),
            "--dport",
            &to.port().to_string(),
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let inserted = Command::new("iptables")
            .arg("-I")
            .args(&rule)
            .status()
            .is_ok_and(|s| s.success());
        assert!(inserted, "iptables -I {rule:?} failed");
        Blackhole(rule)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = Command::new("iptables").arg("-D").args(&self.0).status();
    }
}
