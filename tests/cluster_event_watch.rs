//! What users watch is pushed, and true, with real peers on 127.0.98.x,
//! real QUIC and the machine's Docker engine:
//!
//! - three watchers of one peer's events (the HTTP stream
//!   `/api/v1/events?watch=1`, `shoal get events -w` and the Kubernetes
//!   API's events watch) all see a scale,
//!   fed by one fan-in (`shoal_event_fanins_started_total` stays 1), which
//!   stops gathering once nobody watches; the peer's CPU while watched and
//!   idle is printed;
//! - the pods of a killed node are shown not ready as soon as a peer holds
//!   the node Suspect or Down, by the API, `shoal get pods` and the
//!   Kubernetes API alike.

mod cluster_support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc, ok, shoal_bin, wait_until};
use serde_json::Value;

const SUBNET: u8 = 98;

/// The raw bytes a stream sends, in chunks, on a channel.
fn chunks(mut from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Reads `rx` into `seen` until `text` appears or `timeout` passes.
fn wait_for(rx: &Receiver<String>, seen: &mut String, text: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !seen.contains(text) && Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&chunk);
        }
    }
    seen.contains(text)
}

/// A streaming `GET path` at peer 0 (HTTP/1.0: the body is the raw lines
/// until the peer closes): the socket, to shut, and what it receives.
fn open_watch(cluster: &Cluster, path: &str) -> (std::net::TcpStream, Receiver<String>) {
    let mut stream = std::net::TcpStream::connect(cluster.peers[0].api_addr()).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let received = chunks(stream.try_clone().unwrap());
    (stream, received)
}

/// `GET path` at peer `i`, answered whole.
fn get(cluster: &Cluster, i: usize, path: &str) -> (u16, String) {
    cluster_support::http(
        &cluster.peers[i].api_addr(),
        "GET",
        path,
        None,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| panic!("peer {i} did not answer GET {path}"))
}

/// The value of an unlabelled sample in peer `i`'s `/metrics`.
fn metric(cluster: &Cluster, i: usize, name: &str) -> Option<f64> {
    let (status, text) = get(cluster, i, "/metrics");
    assert_eq!(status, 200, "GET /metrics at peer {i}: {text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// CPU seconds (user + system) the process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Peer `i`'s CPU share over `window`.
fn cpu_share(cluster: &Cluster, i: usize, window: Duration) -> f64 {
    let pid = cluster.peers[i].pid().expect("the peer runs");
    let before = cpu_seconds(pid);
    std::thread::sleep(window);
    (cpu_seconds(pid) - before) / window.as_secs_f64()
}

#[test]
fn event_watchers_see_a_scale_through_one_fan_in_and_a_lost_nodes_pods_turn_unready() {
    let mut cluster = Cluster::start(SUBNET, 2);
    let web = cluster.manifest("web.yaml", &hello_rc("web", 1, "shoal-test/hello:1.0"));
    ok(&cluster.cli(0, &["apply", "-f", web.to_str().unwrap()]));
    assert!(
        wait_until(Duration::from_secs(60), || cluster
            .running_pods(0, "web")
            .len()
            == 1),
        "web did not start: {:?}",
        cluster.try_get_json(0, "pods")
    );

    // Watcher 1: the HTTP stream itself (HTTP/1.0: the body is the raw
    // lines, until the peer closes).
    let (stream, raw) = open_watch(&cluster, "/api/v1/events?watch=1&for=rc/web");
    // Watcher 3: the Kubernetes API's watch of events (`kubectl get
    // events -w`).
    let (kube_stream, kube) = open_watch(
        &cluster,
        "/kube/api/v1/namespaces/default/events?watch=true",
    );
    // Watcher 2: the CLI.
    let mut cli = Command::new(shoal_bin())
        .args(["get", "events", "-w", "--for", "rc/web"])
        .env("SHOAL_SERVER", cluster.peers[0].server())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run shoal get events -w");
    let printed = chunks(cli.stdout.take().unwrap());
    let (mut raw_seen, mut cli_seen, mut kube_seen) = (String::new(), String::new(), String::new());
    // Both are watching once the stream has answered and the CLI printed
    // its table (it opens its watch right after).
    assert!(
        wait_for(&raw, &mut raw_seen, "\r\n\r\n", Duration::from_secs(10)),
        "the watch stream did not answer: {raw_seen}"
    );
    assert!(
        raw_seen.starts_with("HTTP/1.0 200") || raw_seen.starts_with("HTTP/1.1 200"),
        "{raw_seen}"
    );
    assert!(
        wait_for(
            &printed,
            &mut cli_seen,
            "LAST SEEN",
            Duration::from_secs(10)
        ),
        "get events -w printed no table: {cli_seen}"
    );
    std::thread::sleep(Duration::from_secs(2));

    ok(&cluster.cli(1, &["scale", "web", "--replicas", "2"]));
    let scaled = "from 1 to 2";
    let raw_saw = wait_for(&raw, &mut raw_seen, scaled, Duration::from_secs(30));
    let cli_saw = wait_for(&printed, &mut cli_seen, scaled, Duration::from_secs(10));
    let kube_saw = wait_for(&kube, &mut kube_seen, scaled, Duration::from_secs(10));
    assert!(
        raw_saw,
        "the watch stream did not push the scale:\n{raw_seen}"
    );
    assert!(cli_saw, "get events -w did not show the scale:\n{cli_seen}");
    assert!(
        kube_saw,
        "the kube events watch did not push the scale:\n{kube_seen}"
    );
    let line = raw_seen
        .lines()
        .find(|l| l.contains(scaled))
        .expect("a line with the scale");
    let change: Value = serde_json::from_str(line).expect("each watch line is one JSON object");
    assert_eq!(change["type"], "ADDED", "{line}");
    assert_eq!(change["object"]["reason"], "Scaled", "{line}");
    assert_eq!(
        metric(&cluster, 0, "shoal_event_fanins_started_total"),
        Some(1.0),
        "three watchers of peer 0 must share one fan-in"
    );
    let gathers = metric(&cluster, 0, "shoal_event_fanin_gathers_total").unwrap_or(0.0);
    assert!(gathers >= 1.0, "the fan-in never gathered");
    let watched = cpu_share(&cluster, 0, Duration::from_secs(5));

    // Nobody watches: the fan-in stops gathering within a round.
    // (The reader thread holds a clone of the socket: shut it, not drop it.)
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = kube_stream.shutdown(std::net::Shutdown::Both);
    let _ = cli.kill();
    let _ = cli.wait();
    std::thread::sleep(Duration::from_secs(3));
    let stopped_at = metric(&cluster, 0, "shoal_event_fanin_gathers_total");
    let unwatched = cpu_share(&cluster, 0, Duration::from_secs(5));
    assert_eq!(
        metric(&cluster, 0, "shoal_event_fanin_gathers_total"),
        stopped_at,
        "the fan-in still gathers with no watcher"
    );
    eprintln!(
        "peer 0 CPU: {:.1}% with three idle event watchers (one fan-in, {gathers} gathers so far), \
         {:.1}% with none",
        watched * 100.0,
        unwatched * 100.0
    );

    // A node lost: its pods are not ready from the first moment peer
    // `reader` does not hold it Alive (nodes read before pods: a killed
    // node only goes further from Alive).
    assert!(
        wait_until(Duration::from_secs(60), || cluster
            .running_pods(0, "web")
            .len()
            == 2),
        "web did not scale: {:?}",
        cluster.try_get_json(0, "pods")
    );
    let pods = cluster.get_json(0, "pods");
    let victim_node = pods.as_array().unwrap()[0]["node"]
        .as_str()
        .expect("a pod's node")
        .to_owned();
    let victim: usize = victim_node.trim_start_matches("node").parse().unwrap();
    let reader = 1 - victim;
    let on_victim = |pods: &Value| -> Vec<Value> {
        pods.as_array()
            .unwrap()
            .iter()
            .filter(|p| p["node"] == victim_node.as_str())
            .cloned()
            .collect()
    };
    assert!(
        on_victim(&cluster.get_json(reader, "pods"))
            .iter()
            .all(|p| p["ready"] == true),
        "pods on {victim_node} not ready before the kill"
    );
    cluster.kill9(victim);
    let mut state = String::new();
    let lost = wait_until(Duration::from_secs(30), || {
        let Some(nodes) = cluster.try_get_json(reader, "nodes") else {
            return false;
        };
        state = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == victim_node.as_str())
            .and_then(|n| n["state"].as_str())
            .unwrap_or("")
            .to_owned();
        state != "Alive"
    });
    assert!(lost, "peer {reader} still holds {victim_node} Alive");
    eprintln!("peer {reader} holds {victim_node} {state}");
    let pods = cluster.get_json(reader, "pods");
    let lost_pods = on_victim(&pods);
    assert!(!lost_pods.is_empty(), "{pods}");
    for pod in &lost_pods {
        assert_eq!(pod["ready"], false, "{victim_node} is {state}: {pod}");
    }
    let name = lost_pods[0]["name"].as_str().unwrap();
    let (status, body) = get(&cluster, reader, "/api/v1/rcs/web");
    assert_eq!(status, 200, "{body}");
    let rc: Value = serde_json::from_str(&body).unwrap();
    let ready = rc["ready"].as_u64();
    assert!(
        ready.is_some_and(|r| r <= 1),
        "web counts a lost pod ready: {rc}"
    );
    let table = ok(&cluster.cli(reader, &["get", "pods"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
    assert_eq!(
        row.split_whitespace().nth(1),
        Some("0/1"),
        "get pods: {row}"
    );
    let (status, body) = get(
        &cluster,
        reader,
        &format!("/kube/api/v1/namespaces/default/pods/{name}"),
    );
    assert_eq!(status, 200, "{body}");
    let pod: Value = serde_json::from_str(&body).unwrap();
    let condition = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(condition["status"], "False", "kube pod {name}: {pod}");
}
