//! Image transfer benchmark with real peers (release build), one Docker
//! engine per machine: how long a replica placed on a machine whose engine
//! lacks its image takes to run, against `docker save | docker load`
//! between the same two engines in the same run (alone, and followed by the
//! `docker run` that Shoal's figure includes); how an image spreads to 8
//! machines that lack it, against 8 `docker save | docker load` at once on
//! the same engines (what this one machine's CPUs allow); the holder's
//! memory while it serves. It prints figures, it asserts none.
//!
//! ```text
//! scripts/bench-images.sh   # builds shoal-bench/big:1.0 (~200 MB), then this
//! ```
//!
//! The Markdown goes to the file named by `SHOAL_BENCH_OUT` when set.

mod bench_support;
mod cluster_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_support::{loadavg, machine, met};
use cluster_support::{Cluster, hello_rc, http, ok, sh, wait_until};

const SMALL: &str = "shoal-test/hello:1.0";
const BIG: &str = "shoal-bench/big:1.0";
const ROUNDS: usize = 2;
/// Machines that lack the image in the fan-out run.
const FAN_OUT: usize = 8;
/// Targets from the issue.
const ONE_RATIO_TARGET: f64 = 1.5;
const FAN_OUT_TARGET: f64 = 4.0;
const RSS_TARGET_MB: f64 = 32.0;
/// Label of the baseline's own container (`docker run` by hand).
const BASELINE_LABEL: &str = "io.shoal.bench=baseline";

#[test]
#[ignore = "benchmark: scripts/bench-images.sh"]
fn image_transfer_figures() {
    let load_before = loadavg();
    let sizes = [SMALL, BIG].map(image_size_mb);
    let mut one = Vec::new();
    {
        let cluster = Cluster::start_machines(53, 2);
        for image in [SMALL, BIG] {
            give_only(&cluster, image, &[0]);
            for round in 0..ROUNDS {
                let baseline = save_load(&cluster, image);
                let shoal = transfer_to_machine_1(&cluster, image, round);
                one.push((image, baseline, shoal));
            }
        }
    }
    let single_big = one
        .iter()
        .filter(|(image, _, _)| *image == BIG)
        .map(|(_, _, s)| s.run)
        .min()
        .unwrap();
    let (fan_out, at_once) = spread_to_many();
    let markdown = render(&load_before, &sizes, &one, single_big, fan_out, at_once);
    println!("{markdown}");
    if let Ok(path) = std::env::var("SHOAL_BENCH_OUT") {
        std::fs::write(&path, &markdown).expect("write SHOAL_BENCH_OUT");
    }
}

/// The timeline of one transfer of each image: 2 machines on 127.0.109.x
/// with the image modules at debug; prints when the apply went out and when
/// machine 1's replica ran (UTC, as the peers' log lines) and copies both
/// peers' logs to `SHOAL_TRACE_DIR` (default `/tmp/shoal-image-trace`).
#[test]
#[ignore = "diagnosis: cargo test --test bench_images image_transfer_timeline -- --ignored"]
fn image_transfer_timeline() {
    let dir = std::env::var("SHOAL_TRACE_DIR").unwrap_or_else(|_| "/tmp/shoal-image-trace".into());
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = Cluster::builder(109, 2).engine_per_node().start();
    for image in [SMALL, BIG] {
        give_only(&cluster, image, &[0]);
        let baseline = save_load(&cluster, image);
        let name = if image == BIG {
            "tracebig"
        } else {
            "tracesmall"
        };
        let manifest = cluster.manifest(&format!("{name}.yaml"), &hello_rc(name, 2, image));
        let (started, applied) = (Instant::now(), utc_now());
        ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
        assert!(runs_on(&cluster, 1, name, Duration::from_secs(300)));
        println!(
            "{image}: save|load {:.2} s (+ run {:.2} s); apply at {applied}, running on machine 1 seen at {} ({:.2} s)",
            baseline.save_load.as_secs_f64(),
            baseline.with_run.as_secs_f64(),
            utc_now(),
            started.elapsed().as_secs_f64()
        );
        ok(&cluster.cli(0, &["delete", "rc", name]));
        assert!(wait_until(Duration::from_secs(60), || {
            (0..2).all(|i| cluster.machine_containers(i).is_empty())
        }));
    }
    for (i, peer) in cluster.peers.iter().enumerate() {
        std::fs::copy(&peer.log, format!("{dir}/peer{i}.log")).unwrap();
    }
}

/// The fan-out's timeline: 9 machines on 127.0.109.x, only machine 0
/// holds the big image; the peers' logs go to `SHOAL_TRACE_DIR`/spread.
#[test]
#[ignore = "diagnosis: cargo test --test bench_images image_spread_timeline -- --ignored"]
fn image_spread_timeline() {
    let dir = std::env::var("SHOAL_TRACE_DIR").unwrap_or_else(|_| "/tmp/shoal-image-trace".into());
    let dir = format!("{dir}/spread");
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = Cluster::builder(109, FAN_OUT + 1).engine_per_node().start();
    give_only(&cluster, BIG, &[0]);
    let replicas = (FAN_OUT + 1) as u32;
    let manifest = cluster.manifest("fan.yaml", &hello_rc("fan", replicas, BIG));
    let (started, applied) = (Instant::now(), utc_now());
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let ran = wait_until(Duration::from_secs(600), || {
        cluster.running_pods(0, "fan").len() == FAN_OUT + 1
    });
    println!(
        "apply at {applied}, all running seen at {} ({:.2} s)",
        utc_now(),
        started.elapsed().as_secs_f64()
    );
    for (i, peer) in cluster.peers.iter().enumerate() {
        std::fs::copy(&peer.log, format!("{dir}/peer{i}.log")).unwrap();
    }
    assert!(ran);
}

/// Now as `HH:MM:SS.micros` UTC, to line up with the peers' log lines.
fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_micros()
    )
}

fn image_size_mb(image: &str) -> f64 {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .output()
        .expect("docker image inspect");
    assert!(
        out.status.success(),
        "{image} is missing: run scripts/bench-images.sh"
    );
    let bytes: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    bytes / 1e6
}

/// Machines `holders` hold `image` (copied from the machine's engine); the
/// others of the cluster do not.
fn give_only(cluster: &Cluster, image: &str, holders: &[usize]) {
    for i in 0..cluster.peers.len() {
        let host = cluster.engine(i).host();
        let _ = Command::new("docker")
            .args(["-H", &host, "image", "rm", "-f", image])
            .output();
        if holders.contains(&i) {
            sh(&format!("docker save {image} | docker -H {host} load -q"));
        }
    }
}

/// The baselines on machine 1, which lacks `image`.
struct Baseline {
    /// `docker save` on machine 0's engine piped into `docker load` on
    /// machine 1's: the issue's baseline.
    save_load: Duration,
    /// The same, then `docker run -d -p 80` of the image there: what a user
    /// does by hand to get what Shoal's figure measures, a running container
    /// with its port published on an ephemeral host port, as Shoal does.
    with_run: Duration,
}

/// Both baselines, leaving machine 1 without the image and the container.
fn save_load(cluster: &Cluster, image: &str) -> Baseline {
    let (from, to) = (cluster.engine(0).host(), cluster.engine(1).host());
    let started = Instant::now();
    sh(&format!(
        "docker -H {from} save {image} | docker -H {to} load -q"
    ));
    let save_load = started.elapsed();
    sh(&format!(
        "docker -H {to} run -d -p 80 --label {BASELINE_LABEL} {image} >/dev/null"
    ));
    let with_run = started.elapsed();
    sh(&format!(
        "docker -H {to} ps -aq --filter label={BASELINE_LABEL} | xargs -r docker -H {to} rm -f >/dev/null"
    ));
    sh(&format!("docker -H {to} image rm -f {image} >/dev/null"));
    Baseline {
        save_load,
        with_run,
    }
}

/// `docker save` on machine 0's engine piped into `docker load` on each of
/// `targets` at once: the time until the last load ends. Every transfer
/// shares this machine's CPUs, as Shoal's fan-out does; removes the image
/// from the targets again.
fn save_load_at_once(
    cluster: &Cluster,
    image: &str,
    targets: std::ops::RangeInclusive<usize>,
) -> Duration {
    let from = cluster.engine(0).host();
    let hosts: Vec<String> = targets.map(|i| cluster.engine(i).host()).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for to in &hosts {
            let from = &from;
            scope.spawn(move || {
                sh(&format!(
                    "docker -H {from} save {image} | docker -H {to} load -q"
                ))
            });
        }
    });
    let took = started.elapsed();
    for to in &hosts {
        sh(&format!("docker -H {to} image rm -f {image} >/dev/null"));
    }
    took
}

struct Transfer {
    /// From the apply to the replica on machine 1 running.
    run: Duration,
    /// Of which the fetch itself (export, QUIC stream, load, ID check), as
    /// machine 1's peer logged it.
    fetch: Option<f64>,
    /// The holder's RSS before and at most during the transfer (MB).
    rss_idle: f64,
    rss_peak: f64,
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// An RC of 2 replicas of `image` on 2 machines where only machine 0 holds
/// it: the time until machine 1 runs its replica, and machine 0's peer
/// memory meanwhile. Leaves machine 1 without the image again.
fn transfer_to_machine_1(cluster: &Cluster, image: &str, round: usize) -> Transfer {
    let name = format!("t{}{round}", if image == BIG { "big" } else { "small" });
    let holder = cluster.peers[0].pid().expect("peer 0 runs");
    let rss_idle = rss_mb(holder);
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let kb = (rss_mb(holder) * 1024.0) as u64;
                peak.fetch_max(kb, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let manifest = cluster.manifest(&format!("{name}.yaml"), &hello_rc(&name, 2, image));
    let started = Instant::now();
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let ran = runs_on(cluster, 1, &name, Duration::from_secs(300));
    let run = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(
        ran,
        "{name} never ran on machine 1:\n{}",
        cluster.log_tail(1)
    );
    ok(&cluster.cli(0, &["delete", "rc", &name]));
    assert!(
        wait_until(Duration::from_secs(60), || {
            (0..2).all(|i| cluster.machine_containers(i).is_empty())
        }),
        "{name}'s containers stayed"
    );
    let host = cluster.engine(1).host();
    sh(&format!("docker -H {host} image rm -f {image} >/dev/null"));
    Transfer {
        run,
        fetch: last_fetch_seconds(&cluster.peers[1].log),
        rss_idle,
        rss_peak: peak.load(Ordering::Relaxed) as f64 / 1024.0,
    }
}

/// Whether peer `i` reports a pod of `rc` running on its own node within
/// `timeout`. Asks its API directly every 20 ms: the CLI and
/// `wait_until`'s 200 ms would add a poll's worth to every figure.
fn runs_on(cluster: &Cluster, i: usize, rc: &str, timeout: Duration) -> bool {
    let addr = cluster.peers[i].api_addr();
    let node = format!("node{i}");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let pods = http(&addr, "GET", "/api/v1/pods", None, Duration::from_secs(5))
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok());
        let running = pods
            .as_ref()
            .and_then(|p| p.as_array())
            .is_some_and(|pods| {
                pods.iter()
                    .any(|p| p["rc"] == rc && p["node"] == node.as_str() && p["phase"] == "Running")
            });
        if running {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// How long the last fetch logged in `log` took (`image transferred and
/// loaded ... seconds=S`).
fn last_fetch_seconds(log: &std::path::Path) -> Option<f64> {
    let log = std::fs::read_to_string(log).ok()?;
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("image transferred and loaded"))?;
    let (_, rest) = line.split_once("seconds=")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `FAN_OUT` + 1 machines, only machine 0 holds the big image, an RC with
/// one replica per machine: the time until all run; and, first, the
/// time of `FAN_OUT` plain save | load at once on the same engines.
fn spread_to_many() -> (Duration, Duration) {
    let cluster = Cluster::start_machines(58, FAN_OUT + 1);
    give_only(&cluster, BIG, &[0]);
    let at_once = save_load_at_once(&cluster, BIG, 1..=FAN_OUT);
    let replicas = (FAN_OUT + 1) as u32;
    let manifest = cluster.manifest("fan.yaml", &hello_rc("fan", replicas, BIG));
    let started = Instant::now();
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let ran = wait_until(Duration::from_secs(600), || {
        cluster.running_pods(0, "fan").len() == FAN_OUT + 1
    });
    let took = started.elapsed();
    assert!(ran, "fan never ran everywhere:\n{}", cluster.log_tail(1));
    (took, at_once)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn render(
    load_before: &str,
    sizes: &[f64; 2],
    one: &[(&str, Baseline, Transfer)],
    single_big: Duration,
    fan_out: Duration,
    at_once: Duration,
) -> String {
    let mut md = String::new();
    md.push_str("## Images without a registry (real peers, one engine per machine)\n\n");
    md.push_str(&format!(
        "`scripts/bench-images.sh` on {}; load average before: {load_before}. \
         Images: `{SMALL}` ({:.1} MB) and `{BIG}` ({:.0} MB, busybox plus random data, \
         built locally). Baseline: `docker save` on machine 0's engine piped into \
         `docker load` on machine 1's, measured in the same run; \"+ run\" adds the \
         `docker run -d -p 80` (its port published, as Shoal publishes it) that gets a user, by hand, what Shoal's figure measures: a \
         running container.\n\n",
        machine(),
        sizes[0],
        sizes[1]
    ));
    md.push_str("### One machine lacks the image\n\n");
    md.push_str(
        "From `apply` (2 replicas, 2 machines, only machine 0 holds the image) to machine \
         1's peer reporting its replica running (its API polled every 20 ms): the peer tries the registry (none is reachable: it \
         fails at once), finds a holder, streams its export over QUIC into its engine's \
         load, checks the ID, starts the container. \"Of which the fetch\": from asking \
         the holder to the checked load, as the peer logs it; the rest is placement, \
         the registry attempt, the container's start and its status reaching machine 0.\n\n",
    );
    md.push_str("| image | save \\| load | + run | Shoal: replica running | of which the fetch | ratio | target ≤ 1.5 | ratio to + run | holder RSS idle → peak |\n|---|---|---|---|---|---|---|---|---|\n");
    for (image, baseline, t) in one {
        let ratio = t.run.as_secs_f64() / baseline.save_load.as_secs_f64();
        let ratio_run = t.run.as_secs_f64() / baseline.with_run.as_secs_f64();
        let fetch = t.fetch.map_or("?".to_owned(), |f| format!("{f:.2} s"));
        md.push_str(&format!(
            "| `{image}` | {} | {} | {} | {fetch} | {ratio:.2} | {} | {ratio_run:.2} | {:.1} → {:.1} MB (+{:.1}, target ≤ {RSS_TARGET_MB}) |\n",
            secs(baseline.save_load),
            secs(baseline.with_run),
            secs(t.run),
            met(ratio <= ONE_RATIO_TARGET),
            t.rss_idle,
            t.rss_peak,
            t.rss_peak - t.rss_idle
        ));
    }
    let multiple = fan_out.as_secs_f64() / single_big.as_secs_f64();
    let bound = at_once.as_secs_f64() / single_big.as_secs_f64();
    md.push_str(&format!(
        "\n### {FAN_OUT} machines lack the big image\n\n\
         {} machines, only machine 0 holds `{BIG}`, an RC of {} replicas (one per machine): \
         all running after **{}**, {multiple:.1} × one transfer to one machine ({}); one \
         after another would take {FAN_OUT} ×. Target ≤ {FAN_OUT_TARGET} ×: {}.\n\n\
         What this machine allows: {FAN_OUT} plain `docker save | docker load` from machine 0 \
         into the {FAN_OUT} others at once, on the same engines in the same run, took {} \
         ({bound:.1} × that one transfer, {:.2} × Shoal's spread), with no container to \
         start, no encryption and no second hop. Every machine here shares the same \
         {} CPUs, so transfers at once do not add up to more throughput; on machines of \
         their own they would.\n",
        FAN_OUT + 1,
        FAN_OUT + 1,
        secs(fan_out),
        secs(single_big),
        met(multiple <= FAN_OUT_TARGET),
        secs(at_once),
        at_once.as_secs_f64() / fan_out.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    md
}
