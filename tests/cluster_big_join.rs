//! A peer joins a cluster whose state is far larger than one network
//! message: 5,000 RCs of about 4 KB each (the seed's state file passes
//! 16 MiB, the old single-message limit, and twice the one limit of
//! today) reach the joiner in pieces over QUIC. Real `shoal up` processes
//! on 127.0.46.x. (5,000 large RCs rather than 20,000 small ones: the
//! same bytes, loaded four times faster, since the API applies and makes
//! durable one RC at a time.)
//!
//! Prints the figures BENCHMARKS.md quotes: time to load, time for the
//! joiner to hold every RC, the joiner's peak RSS. Bounds are generous
//! (a loaded 2-core machine); the outcome asserted is a complete state.
//! Needs `--features shell` like every real-cluster test.
#![cfg(feature = "shell")]

mod cluster_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{API_PORT, Cluster, PEER_PORT, http, shoal_bin, wait_until};

const SUBNET: u8 = 46;
const JOINER_IP: &str = "127.0.46.20";

/// RCs in the cluster, overridable for the benchmark (`SHOAL_BIG_JOIN_RCS`).
fn rc_count() -> usize {
    std::env::var("SHOAL_BIG_JOIN_RCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// Env entries per RC: its size (about 60 bytes each, encoded).
const ENV_PER_RC: usize = 64;

/// Concurrent writers while loading: the peer commits their writes to
/// disk together.
const WRITERS: usize = 32;
/// RCs per request: stays under the API's 1 MiB body limit.
const PER_REQUEST: usize = 100;

/// One RC of about 4 KB encoded: an app with its configuration in env.
fn rc_yaml(i: usize) -> String {
    let env: String = (0..ENV_PER_RC)
        .map(|k| {
            format!(
                "        - name: CONFIG_{k:02}\n          value: \"{}\"\n",
                format!("{i:06}-{k:02}-").repeat(5)
            )
        })
        .collect();
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: app-{i:05}
spec:
  replicas: 0
  selector:
    app: app-{i:05}
  template:
    metadata:
      labels:
        app: app-{i:05}
    spec:
      containers:
      - name: web
        image: shoal-test/hello:1.0
        env:
{env}"
    )
}

/// The joiner process, killed when the test ends (also on failure).
struct Joiner(Child);

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident memory of a process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// RCs listed by the API at `addr`.
fn listed_rcs(addr: &str) -> Option<usize> {
    let (status, body) = http(addr, "GET", "/api/v1/rcs", None, Duration::from_secs(60))?;
    if status != 200 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(&body).ok()?;
    value
        .as_array()
        .or_else(|| value["items"].as_array())
        .map(Vec::len)
}

#[test]
fn a_peer_joins_a_cluster_whose_state_is_far_beyond_one_message() {
    let n = rc_count();
    let cluster = Cluster::builder(SUBNET, 1).log("info").start();
    let seed_api = cluster.peers[0].api_addr();

    let loading = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let seed_api = seed_api.clone();
            scope.spawn(move || {
                let mut start = w * PER_REQUEST;
                while start < n {
                    let end = (start + PER_REQUEST).min(n);
                    let body: Vec<String> = (start..end).map(rc_yaml).collect();
                    let body = body.join("---\n");
                    let answer = http(
                        &seed_api,
                        "POST",
                        "/api/v1/rcs",
                        Some(&body),
                        Duration::from_secs(300),
                    );
                    assert!(
                        matches!(answer, Some((200 | 201, _))),
                        "applying RCs {start}..{end}: {answer:?}"
                    );
                    start += WRITERS * PER_REQUEST;
                }
            });
        }
    });
    let load_s = loading.elapsed().as_secs_f64();
    assert_eq!(listed_rcs(&seed_api), Some(n), "the seed holds every RC");
    // The seed checkpoints every so often: once its state file holds every
    // RC it is the size a single-message transfer would have needed (an
    // earlier checkpoint plus the write-ahead log may be there first).
    let state_file = cluster.peers[0].data_dir.join("state.bin");
    let mut state_bytes = 0;
    wait_until(Duration::from_secs(60), || {
        state_bytes = std::fs::metadata(&state_file).map_or(0, |m| m.len());
        state_bytes > 16 << 20
    });
    println!(
        "loaded {n} RCs in {load_s:.1} s; seed state file {:.1} MiB",
        state_bytes as f64 / (1 << 20) as f64
    );
    if n >= 5_000 {
        assert!(
            state_bytes > 16 << 20,
            "the state ({state_bytes} bytes) should exceed one old 16 MiB message"
        );
    }

    let joined = Instant::now();
    let mut joiner = Joiner(
        Command::new(shoal_bin())
            .args(["up", "--listen", &format!("{JOINER_IP}:{PEER_PORT}")])
            .args(["--api", &format!("{JOINER_IP}:{API_PORT}")])
            .arg("--data-dir")
            .arg(cluster.dir.join("joiner"))
            .args(["--name", "joiner", "--memory", "4Gi"])
            .args(["--join", &cluster.peers[0].peer_addr()])
            .args(["--join-token", &cluster.token])
            .env("SHOAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(cluster.dir.join("joiner.log")).expect("joiner log file"))
            .spawn()
            .expect("spawn the joiner"),
    );
    let joiner_api = format!("{JOINER_IP}:{API_PORT}");
    let last = format!("/api/v1/rcs/app-{:05}", n - 1);
    let first = "/api/v1/rcs/app-00000";
    let has = |path: &str| {
        http(&joiner_api, "GET", path, None, Duration::from_secs(10))
            .is_some_and(|(status, _)| status == 200)
    };
    let complete = wait_until(Duration::from_secs(600), || {
        assert!(
            matches!(joiner.0.try_wait(), Ok(None)),
            "the joiner exited; log:\n{}",
            std::fs::read_to_string(cluster.dir.join("joiner.log")).unwrap_or_default()
        );
        has(first) && has(&last) && listed_rcs(&joiner_api) == Some(n)
    });
    let join_s = joined.elapsed().as_secs_f64();
    let rss = peak_rss_mib(joiner.0.id());
    let log = std::fs::read_to_string(cluster.dir.join("joiner.log")).unwrap_or_default();
    assert!(
        complete,
        "the joiner did not get all {n} RCs within 600 s (it lists {:?}); log tail:\n{}",
        listed_rcs(&joiner_api),
        &log[log.len().saturating_sub(4000)..]
    );
    println!(
        "joiner holds all {n} RCs {join_s:.1} s after it started; peak RSS {:.0} MiB",
        rss.unwrap_or(f64::NAN)
    );
    assert!(
        !log.contains("exceeds the network limit"),
        "a sync message was too large:\n{log}"
    );
}
