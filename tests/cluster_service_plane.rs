//! The services data plane end to end: 3 machines (a peer and its own
//! Docker engine each), the hello RC and a NodePort Service. Every peer's
//! load balancer reaches the replicas on all machines, every peer's DNS
//! server answers `dig`, and a pod Shoal started resolves `hello` through
//! its peer and gets pages from the service address.

mod cluster_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc_probed, http, ok, wait_until};

/// The node port the service asks for (in the default range).
const NODE_PORT: u16 = 30480;

/// Pods answer with their hostname (the container's id), so a client can
/// count distinct pods.
fn rc(replicas: u32) -> String {
    hello_rc_probed("hello", replicas, "shoal-test/hello:1.0")
        .replace(
            "        - containerPort: 80\n",
            "        - containerPort: 80\n          name: http\n",
        )
        .replace(
            "        image: shoal-test/hello:1.0\n",
            "        image: shoal-test/hello:1.0\n        command: [\"/bin/sh\", \"-c\", \"hostname > /www/index.html; exec /init\"]\n",
        )
}

fn service() -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  type: NodePort
  selector:
    app: hello
  ports:
    - name: http
      port: 8080
      targetPort: http
      nodePort: {NODE_PORT}
"
    )
}

/// The pod that answered a GET at `addr`, or `None`.
fn answering_pod(addr: &str) -> Option<String> {
    let (status, body) = http(addr, "GET", "/", None, Duration::from_secs(3))?;
    (status == 200).then(|| body.trim().to_owned())
}

/// The pods answering at `addr` over up to `tries` requests, stopping once
/// all `want` were seen (a request that times out on a loaded machine
/// only costs a try). A refused request waits 50 ms before the next: the
/// API counts an endpoint ready up to one feed period (50-250 ms) before
/// the peer's load balancer has it, and refusals come back in microseconds.
fn pods_behind(addr: &str, want: usize, tries: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..tries {
        if seen.len() == want {
            break;
        }
        match answering_pod(addr) {
            Some(pod) => {
                seen.insert(pod);
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    seen
}

/// `dig +short` against a peer's DNS server on port 53.
fn dig(server: &str, name: &str, kind: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args([
            &format!("@{server}"),
            name,
            kind,
            "+short",
            "+time=3",
            "+tries=2",
        ])
        .output()
        .expect("dig runs (Debian package bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ready_endpoints(cluster: &Cluster, i: usize) -> Option<u64> {
    let services = cluster.try_get_json(i, "svc")?;
    let svc = services.as_array()?.iter().find(|s| s["name"] == "hello")?;
    svc["endpoints_ready"].as_u64()
}

#[test]
fn every_peer_balances_and_resolves_a_service_over_replicas_on_all_machines() {
    let cluster = Cluster::start_machines(54, 3);
    let manifest = cluster.manifest("hello.yaml", &format!("{}---\n{}", rc(3), service()));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    for i in 0..3 {
        let ready = wait_until(Duration::from_secs(90), || {
            ready_endpoints(&cluster, i) == Some(3)
        });
        assert!(
            ready,
            "peer {i} shows {:?} ready endpoints; pods {:?}\n{}",
            ready_endpoints(&cluster, i),
            cluster.try_get_json(i, "pods"),
            cluster.log_tail(i)
        );
    }
    let peers: Vec<String> = cluster.peers.iter().map(|p| p.ip.to_string()).collect();

    // Every peer's nodePort and service port reach the pods on all machines.
    let mut everyone = BTreeSet::new();
    for (i, ip) in peers.iter().enumerate() {
        for port in [NODE_PORT, 8080] {
            let addr = format!("{ip}:{port}");
            let seen = pods_behind(&addr, 3, 90);
            assert_eq!(
                seen.len(),
                3,
                "via peer {i} at {addr}: {seen:?}\n{}",
                cluster.log_tail(i)
            );
            everyone.extend(seen);
        }
    }
    assert_eq!(everyone.len(), 3, "{everyone:?}");

    // Every peer's DNS: itself first, then the other live peers; SRV.
    for (i, ip) in peers.iter().enumerate() {
        let answer = dig(ip, "hello.svc.shoal", "A");
        assert_eq!(answer.first(), Some(ip), "peer {i}: {answer:?}");
        let all: BTreeSet<&String> = answer.iter().collect();
        assert_eq!(all, peers.iter().collect(), "peer {i}: {answer:?}");
        assert_eq!(
            dig(ip, "_http._tcp.hello.svc.shoal", "SRV"),
            vec!["0 10 8080 hello.svc.shoal.".to_owned()]
        );
    }

    // A pod on machine 0 resolves through its peer at the bridge gateway,
    // with the search domain, and gets pages at the service address.
    let gateway = "10.54.0.1".to_owned();
    let engine = cluster.engine(0);
    let containers = ok(&engine
        .docker()
        .args(["ps", "-q", "--filter", "label=app=hello"])
        .output()
        .unwrap());
    let container = containers
        .lines()
        .next()
        .expect("a hello pod runs on machine 0");
    let exec = |cmd: &str| {
        engine
            .docker()
            .args(["exec", container, "sh", "-c", cmd])
            .output()
            .unwrap()
    };
    let resolv = ok(&exec("cat /etc/resolv.conf"));
    assert!(
        resolv.contains(&format!("nameserver {gateway}")) && resolv.contains("search svc.shoal"),
        "{resolv}"
    );
    // busybox's own resolver (its libc one has no NSS in a static binary).
    let lookup = String::from_utf8_lossy(&exec("nslookup hello").stdout).into_owned();
    assert!(lookup.contains(&gateway), "{lookup}");
    let mut from_pod = BTreeSet::new();
    let mut failures = Vec::new();
    for _ in 0..20 {
        let out = exec(&format!("wget -qO- http://{gateway}:8080/"));
        if out.status.success() {
            from_pod.insert(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        } else {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    assert_eq!(from_pod.len(), 3, "{from_pod:?} {failures:?}");

    // Scale to zero: connections are closed at once, none hangs; back: served.
    ok(&cluster.cli(1, &["scale", "hello", "--replicas", "0"]));
    let node_addr = format!("{}:{NODE_PORT}", peers[2]);
    let drained = wait_until(Duration::from_secs(60), || {
        answering_pod(&node_addr).is_none()
    });
    assert!(drained, "still served after scale to zero");
    let sock: SocketAddr = node_addr.parse().unwrap();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        if let Ok(mut stream) = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2))
        {
            use std::io::Read;
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(stream.read(&mut buf).unwrap_or(0), 0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    ok(&cluster.cli(1, &["scale", "hello", "--replicas", "3"]));
    let back = wait_until(Duration::from_secs(90), || {
        pods_behind(&node_addr, 3, 10).len() == 3
    });
    assert!(
        back,
        "not served by 3 pods again: {:?}",
        pods_behind(&node_addr, 3, 10)
    );
}

/// When `node` is no longer Alive in peer `i`'s view (polled every 100 ms).
fn wait_declared_down(cluster: &Cluster, i: usize, node: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let nodes = cluster.try_get_json(i, "nodes");
        let state = nodes.as_ref().and_then(|v| {
            v.as_array()?
                .iter()
                .find(|n| n["name"] == node)
                .map(|n| n["state"].as_str().unwrap_or("").to_owned())
        });
        if state.as_deref() == Some("Down") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// 3 replicas on 3 machines: the dead machine's replica moves, and
/// placement may move another between the survivors, whose old copy then
/// drains (`handover_drain_ms`) before it stops.
#[test]
fn a_machine_killed_under_load_costs_requests_only_until_it_is_declared_down() {
    let mut cluster = Cluster::start_machines(55, 3);
    let manifest = cluster.manifest("hello.yaml", &format!("{}---\n{}", rc(3), service()));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let ready = wait_until(Duration::from_secs(90), || {
        ready_endpoints(&cluster, 0) == Some(3)
    });
    assert!(
        ready,
        "{:?}\n{}",
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );
    // The client goes through peer 0; a machine running a replica dies.
    let running = cluster.running_pods(0, "hello");
    let victim = (1..3)
        .find(|i| running.iter().any(|(_, n)| *n == format!("node{i}")))
        .expect("a replica runs on machine 1 or 2");
    let victim_node = format!("node{victim}");

    // A bounded client: 100 requests a second for 20 s through peer 0.
    let addr = format!("{}:{NODE_PORT}", cluster.peers[0].ip);
    // The API may count an endpoint ready a moment before peer 0's load
    // balancer has it (the feed lets changes gather, FEED_GATHER): the timed
    // load starts once the node port itself serves all three, so a failure
    // before the kill is a fault.
    let serving = wait_until(Duration::from_secs(30), || {
        pods_behind(&addr, 3, 10).len() == 3
    });
    assert!(serving, "peer 0's node port does not serve all 3 replicas");
    let start = Instant::now();
    let client = std::thread::spawn(move || {
        (0..2000u32)
            .map(|k| {
                let slot = start + Duration::from_millis(10 * u64::from(k));
                std::thread::sleep(slot.saturating_duration_since(Instant::now()));
                let sent = start.elapsed();
                let ok = answering_pod(&addr).is_some();
                (sent, start.elapsed(), ok)
            })
            .collect::<Vec<(Duration, Duration, bool)>>()
    });
    std::thread::sleep(Duration::from_secs(3));
    let killed_at = start.elapsed();
    cluster.kill_machine(victim);
    let down = wait_declared_down(&cluster, 0, &victim_node, Duration::from_secs(15));
    let down_at = start.elapsed();
    assert!(
        down,
        "peer 0 never declared {victim_node} down: {:?}",
        cluster.try_get_json(0, "nodes")
    );
    let results = client.join().unwrap();

    let failed: Vec<Duration> = results
        .iter()
        .filter(|(_, _, ok)| !ok)
        .map(|(sent, _, _)| *sent)
        .collect();
    // A request still in flight when the machine died may fail with it.
    let failed_before_kill: Vec<Duration> = results
        .iter()
        .filter(|(_, done, ok)| !ok && *done < killed_at)
        .map(|(sent, _, _)| *sent)
        .collect();
    println!(
        "kill -9 of machine {victim} at {killed_at:?}, declared down at peer 0 by {down_at:?}: \
         {} of {} requests failed, first {:?}, last {:?}",
        failed.len(),
        results.len(),
        failed.first(),
        failed.last()
    );
    // The feed reads a new table 50-250 ms after a change; the CLI polls
    // every 100 ms.
    let late: Vec<&Duration> = failed
        .iter()
        .filter(|t| **t > down_at + Duration::from_secs(1))
        .collect();
    assert!(
        late.is_empty(),
        "requests failed after {victim_node} was declared down: {late:?}"
    );
    assert!(
        failed_before_kill.is_empty(),
        "requests failed before the kill: {failed_before_kill:?}\n{}",
        cluster.log_tail(0)
    );
}

/// Drain first: a scale-down through another peer, under a client loop at
/// peer 0's node port, costs no request. The stopped replicas leave every
/// peer's endpoints (`Terminating`) before their containers stop.
#[test]
fn a_scale_down_under_load_fails_no_request() {
    let cluster = Cluster::start_machines(57, 3);
    let manifest = cluster.manifest("hello.yaml", &format!("{}---\n{}", rc(3), service()));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let ready = wait_until(Duration::from_secs(90), || {
        ready_endpoints(&cluster, 0) == Some(3)
    });
    assert!(
        ready,
        "{:?}\n{}",
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );

    // The load balancer follows the table within 50-250 ms: served once first.
    let addr = format!("{}:{NODE_PORT}", cluster.peers[0].ip);
    let served = wait_until(Duration::from_secs(30), || answering_pod(&addr).is_some());
    assert!(served, "peer 0 does not serve:\n{}", cluster.log_tail(0));

    // A bounded client: 50 requests a second through peer 0, until told
    // to stop (at most 60 s).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_client = done.clone();
    let start = Instant::now();
    let client = std::thread::spawn(move || {
        let mut results = Vec::new();
        for k in 0..3_000u32 {
            if stop_client.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let slot = start + Duration::from_millis(20 * u64::from(k));
            std::thread::sleep(slot.saturating_duration_since(Instant::now()));
            results.push((start.elapsed(), answering_pod(&addr).is_some()));
        }
        results
    });
    std::thread::sleep(Duration::from_secs(1));
    ok(&cluster.cli(1, &["scale", "hello", "--replicas", "1"]));
    let scaled_at = start.elapsed();
    // Ground truth: the containers are really gone while the client runs.
    let stopped = wait_until(Duration::from_secs(45), || {
        cluster.engine_pods("hello").len() == 1
    });
    let stopped_at = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = client.join().unwrap();
    assert!(
        stopped,
        "still on the engines: {:?}",
        cluster.engine_pods("hello")
    );

    let failed: Vec<Duration> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(t, _)| *t)
        .collect();
    println!(
        "scale 3 -> 1 at {scaled_at:?}, containers stopped by {stopped_at:?}: \
         {} of {} requests failed",
        failed.len(),
        results.len()
    );
    assert!(results.len() >= 100, "{} requests", results.len());
    assert!(
        failed.is_empty(),
        "requests failed during the scale-down at {failed:?}\n{}",
        cluster.log_tail(0)
    );
}

/// A node port taken on one machine: that peer's load balancer reports
/// it, `describe svc` at any peer shows it for that node, and the other
/// peer keeps serving the service.
#[test]
fn a_port_in_use_on_one_node_shows_in_describe_and_the_others_serve() {
    let cluster = Cluster::start(58, 2);
    let taken = format!("{}:{NODE_PORT}", cluster.peers[1].ip);
    let _squatter = std::net::TcpListener::bind(&taken).expect("the test holds the node port");
    let manifest = cluster.manifest("hello.yaml", &format!("{}---\n{}", rc(1), service()));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));

    let expected = format!("Not listening:  node1: cannot listen on {taken}");
    for i in 0..2 {
        let shown = wait_until(Duration::from_secs(60), || {
            let out = cluster.cli(i, &["describe", "svc", "hello"]);
            String::from_utf8_lossy(&out.stdout).contains(&expected)
        });
        let out = cluster.cli(i, &["describe", "svc", "hello"]);
        assert!(
            shown,
            "peer {i}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            cluster.log_tail(1)
        );
        // (Both peers share one engine here, so one of them cannot have
        // its bridge gateway's service port: that line is right too.)
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let node0 = format!(
            "node0: cannot listen on {}:{NODE_PORT}",
            cluster.peers[0].ip
        );
        assert!(!text.contains(&node0), "node0 listens:\n{text}");
    }
    let served = wait_until(Duration::from_secs(60), || {
        answering_pod(&format!("{}:{NODE_PORT}", cluster.peers[0].ip)).is_some()
    });
    assert!(served, "peer 0 does not serve:\n{}", cluster.log_tail(0));
}
