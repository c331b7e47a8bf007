//! `/metrics` on a real 3-peer cluster: every peer's scrape passes
//! `promtool check metrics` (Debian's `prometheus`) and is parsed by the
//! Python `prometheus_client` parser (Debian's `python3-prometheus-client`);
//! the parsed values follow what the cluster does: a scale moves an RC's
//! desired and running replicas, API requests are counted by route and
//! status, and a killed peer moves the members by state and the downs.

mod cluster_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster_support::{API_PORT, Cluster, hello_rc, ok, wait_until};

/// The subnet of this test's peers: 127.0.45.0/24.
const SUBNET: u8 = 45;

/// The interpreter Debian's Python packages are installed for (a `python3`
/// earlier on PATH may be another one).
const PYTHON: &str = "/usr/bin/python3";

/// Parses the text format on stdin with prometheus_client and prints one
/// JSON object per sample: name, labels, value.
const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"type": family.type, "name": s.name, "labels": s.labels, "value": s.value}))
"#;

/// One sample of a scrape, as prometheus_client parsed it.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape of one peer.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    text: String,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels`, if
    /// exactly one matches.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.samples.iter().filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        });
        let first = found.next()?;
        assert!(
            found.next().is_none(),
            "{name} {labels:?} matches several samples"
        );
        Some(first.value)
    }

    /// The sum of every sample `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// GET `path` from peer `i`'s API: (status, body).
fn http_get(cluster: &Cluster, i: usize, path: &str) -> Option<(u16, String)> {
    let addr = format!("{}:{API_PORT}", cluster.peers[i].ip);
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Runs `program args` with `input` on stdin: (success, stdout + stderr).
fn run_with_input(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (see .ci/run for its package): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Scrapes peer `i`, checks the text with promtool and parses it with
/// prometheus_client; `None` when the peer does not answer.
fn scrape(cluster: &Cluster, i: usize) -> Option<Scrape> {
    let (status, text) = http_get(cluster, i, "/metrics")?;
    assert_eq!(status, 200, "GET /metrics at peer {i}: {text}");
    let (clean, lint) = run_with_input("promtool", &["check", "metrics"], &text);
    assert!(clean, "promtool check metrics at peer {i}:\n{lint}");
    let (parsed, json) = run_with_input(PYTHON, &["-c", PARSER], &text);
    assert!(
        parsed,
        "prometheus_client could not parse peer {i}'s scrape:\n{json}"
    );
    let samples = json
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("parser prints JSON");
            Sample {
                name: v["name"].as_str().unwrap().to_owned(),
                labels: v["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect();
    Some(Scrape { samples, text })
}

/// Scrapes peer `i` until `check` holds (at most `limit`); the last scrape.
fn scrape_until(
    cluster: &Cluster,
    i: usize,
    limit: Duration,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let mut last = None;
    let held = wait_until(limit, || match scrape(cluster, i) {
        Some(s) => {
            let held = check(&s);
            last = Some(s);
            held
        }
        None => false,
    });
    let last = last.unwrap_or_else(|| panic!("peer {i} never answered /metrics"));
    assert!(
        held,
        "peer {i}: {what} did not hold within {limit:?}; last scrape:\n{}\nlog:\n{}",
        last.text,
        cluster.log_tail(i)
    );
    last
}

#[test]
fn three_peers_metrics_follow_scale_requests_and_a_killed_peer() {
    let mut cluster = Cluster::start(SUBNET, 3);
    let long = Duration::from_secs(120);

    // Every peer: a clean scrape with the cluster's shape in it.
    for i in 0..3 {
        let s = scrape_until(
            &cluster,
            i,
            long,
            "3 alive members, engine reachable",
            |s| {
                s.value("shoal_members", &[("state", "alive")]) == Some(3.0)
                    && s.value("shoal_engine_reachable", &[]) == Some(1.0)
            },
        );
        assert!(s.value("shoal_process_resident_memory_bytes", &[]).unwrap() > 1e6);
        assert!(s.value("shoal_process_open_fds", &[]).unwrap() > 0.0);
        assert!(s.value("shoal_process_cpu_seconds_total", &[]).unwrap() > 0.0);
        assert!(s.value("shoal_transport_connections", &[]).unwrap() >= 1.0);
        assert!(s.value("shoal_swim_probes_total", &[]).unwrap() >= 1.0);
        assert!(s.sum("shoal_sync_messages_total", &[("direction", "sent")]) >= 1.0);
        assert!(s.value("shoal_state_records", &[("kind", "nodes")]) == Some(3.0));
    }

    // A scale moves desired, then running and ready, as any peer sees them.
    let manifest = cluster.manifest(
        "metered.yaml",
        &hello_rc("metered", 1, "shoal-test/hello:1.0"),
    );
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let rc = [("rc", "metered")];
    scrape_until(&cluster, 2, long, "metered runs 1 replica", |s| {
        s.value("shoal_rc_replicas_desired", &rc) == Some(1.0)
            && s.value("shoal_rc_replicas_running", &rc) == Some(1.0)
    });
    ok(&cluster.cli(0, &["scale", "metered", "--replicas", "3"]));
    let s = scrape_until(&cluster, 2, long, "metered runs 3 ready replicas", |s| {
        s.value("shoal_rc_replicas_desired", &rc) == Some(3.0)
            && s.value("shoal_rc_replicas_running", &rc) == Some(3.0)
            && s.value("shoal_rc_replicas_ready", &rc) == Some(3.0)
    });
    assert_eq!(s.value("shoal_rc_replicas_unplaced", &rc), Some(0.0));
    // Each peer timed the start of the replica it runs.
    let mut started = 0.0;
    for i in 0..3 {
        started += scrape(&cluster, i)
            .unwrap()
            .sum("shoal_pod_start_seconds_count", &[]);
    }
    assert!(started >= 3.0, "3 pod starts timed, got {started}");

    // API requests by route template and status: the scale (200) and a
    // scale of an RC that does not exist (404), both at peer 0.
    let out = cluster.cli(0, &["scale", "nosuch", "--replicas", "2"]);
    assert!(!out.status.success(), "scaling a missing RC must fail");
    let scale = "/api/v1/rcs/{name}/scale";
    let s = scrape(&cluster, 0).unwrap();
    let counted = |status| {
        s.value(
            "shoal_api_requests_total",
            &[("route", scale), ("method", "PUT"), ("status", status)],
        )
    };
    assert_eq!(counted("200"), Some(1.0), "{}", s.text);
    assert_eq!(counted("404"), Some(1.0), "{}", s.text);
    assert!(
        s.sum(
            "shoal_api_request_duration_seconds_count",
            &[("route", scale)]
        ) >= 2.0
    );
    assert!(
        s.value(
            "shoal_api_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        )
        .unwrap()
            >= 1.0
    );

    // A killed peer: the survivors see it down, count the down, and one of
    // them suspected it first (SWIM declares down only after a suspicion).
    let downs_before = s.value("shoal_member_downs_total", &[]).unwrap();
    cluster.kill9(2);
    let s0 = scrape_until(&cluster, 0, long, "peer 2 down", |s| {
        s.value("shoal_members", &[("state", "alive")]) == Some(2.0)
            && s.value("shoal_members", &[("state", "down")]) == Some(1.0)
            && s.value("shoal_member_downs_total", &[]).unwrap() > downs_before
    });
    let s1 = scrape_until(&cluster, 1, long, "peer 2 down at peer 1", |s| {
        s.value("shoal_members", &[("state", "down")]) == Some(1.0)
    });
    let suspicions = s0.value("shoal_swim_suspicions_total", &[]).unwrap()
        + s1.value("shoal_swim_suspicions_total", &[]).unwrap();
    assert!(suspicions >= 1.0, "no survivor counted a suspicion");
    // The RC is whole again on the survivors.
    scrape_until(&cluster, 1, long, "metered back to 3 running", |s| {
        s.value("shoal_rc_replicas_running", &rc) == Some(3.0)
    });

    // Counters never go back: a later scrape of peer 0 has at least as
    // many probes and sync messages.
    let later = scrape(&cluster, 0).unwrap();
    for name in [
        "shoal_swim_probes_total",
        "shoal_sync_anti_entropy_rounds_total",
    ] {
        assert!(
            later.value(name, &[]).unwrap() >= s0.value(name, &[]).unwrap(),
            "{name} went back"
        );
    }
}
