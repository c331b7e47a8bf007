//! What an open dashboard costs an idle cluster: 2 `shoal up` peers on
//! 127.0.93.11..12, no RC, the CPU (utime+stime ÷ wall) of each peer over
//! [`WINDOW`] while, in turn:
//!
//! 1. nothing asks them anything;
//! 2. one client follows the cluster's events: `curl -N` on peer 0's
//!    `/kube/api/v1/events?watch=true` (the only streaming events route; a
//!    watch of events gathers every live peer's events every 2 s);
//! 3. one open dashboard page: what `/ui`'s script asks peer 0 every 2 s
//!    (`/nodes`, `/rcs`, `/pods`, `/services`, and `/events`, which asks
//!    every live peer), issued over raw HTTP;
//! 4. the real page in headless Chromium (its requests counted by peer 0's
//!    `/metrics`);
//! 5. nothing again (drift).
//!
//! It prints figures and asserts only that each client was really served.
//! Timing on a shared machine is noise: compare phases of one run.
//!
//! ```text
//! cargo test --all-features --test bench_dashboard_idle -- --ignored --nocapture
//! ```

mod bench_support;
mod cluster_support;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bench_support::{clock_ticks_per_second, cpu_ticks, loadavg, machine};
use cluster_support::{Cluster, http};

/// 127.0.93.0/24.
const SUBNET: u8 = 93;
const PEERS: usize = 2;
/// Quiet time after the cluster formed, before the first window.
const SETTLE: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(20);
/// The dashboard's `REFRESH_MS`.
const PAGE_EVERY: Duration = Duration::from_secs(2);
/// What the page's two loops ask at each refresh (no service: no details).
const PAGE_PATHS: [&str; 5] = [
    "/api/v1/nodes",
    "/api/v1/rcs",
    "/api/v1/pods",
    "/api/v1/services",
    "/api/v1/events",
];

/// CPU % of each peer over one window while `during` runs.
fn window(cluster: &Cluster, hz: f64) -> Vec<f64> {
    let pids: Vec<u32> = cluster
        .peers
        .iter()
        .map(|p| p.pid().expect("every peer runs"))
        .collect();
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let t0 = Instant::now();
    sleep(WINDOW);
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let wall = t0.elapsed().as_secs_f64();
    before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / hz / wall * 100.0)
        .collect()
}

/// Requests peer 0's API has answered, from its `/metrics`.
fn api_requests(api: &str) -> u64 {
    let (_, text) = http(api, "GET", "/metrics", None, Duration::from_secs(5)).expect("/metrics");
    text.lines()
        .filter(|l| l.starts_with("shoal_api_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn row(name: &str, cpu: &[f64]) -> String {
    let cells: Vec<String> = cpu.iter().map(|c| format!("{c:.2} %")).collect();
    format!("| {name} | {} |", cells.join(" | "))
}

#[test]
#[ignore = "benchmark: cargo test --all-features --test bench_dashboard_idle -- --ignored --nocapture"]
fn an_open_dashboard_on_an_idle_cluster() {
    let cluster = Cluster::start(SUBNET, PEERS);
    let hz = clock_ticks_per_second();
    let api = cluster.peers[0].api_addr();
    sleep(SETTLE);
    let load_before = loadavg();

    let idle = window(&cluster, hz);

    // One events watch, followed as a dashboard's event stream would be.
    let out = cluster.manifest("watch.out", "");
    let mut curl = Command::new("curl")
        .args(["-sN", "-o"])
        .arg(&out)
        .arg(format!(
            "http://{api}/kube/api/v1/events?watch=true&timeoutSeconds=600"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run curl");
    sleep(Duration::from_secs(1));
    let watched = window(&cluster, hz);
    let _ = curl.kill();
    let _ = curl.wait();
    let streamed = std::fs::read_to_string(&out).unwrap_or_default();

    // One open page: its refresh loop, every PAGE_EVERY.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let page = {
        let (stop, served, failed, api) =
            (stop.clone(), served.clone(), failed.clone(), api.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let tick = Instant::now();
                for path in PAGE_PATHS {
                    match http(&api, "GET", path, None, Duration::from_secs(5)) {
                        Some((200, _)) => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                sleep(PAGE_EVERY.saturating_sub(tick.elapsed()));
            }
        })
    };
    let polled = window(&cluster, hz);
    stop.store(true, Ordering::Relaxed);
    page.join().unwrap();

    // The real page, in headless Chromium (its own process group, ended
    // as a whole).
    let requests_before = api_requests(&api);
    let profile = cluster
        .manifest("chromium.keep", "")
        .with_extension("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let mut chromium = Command::new("/usr/bin/chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://{api}/ui"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run chromium");
    sleep(Duration::from_secs(5));
    let browsed = window(&cluster, hz);
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", chromium.id())])
        .status();
    let _ = chromium.wait();
    let page_requests = api_requests(&api) - requests_before;

    let again = window(&cluster, hz);
    let load_after = loadavg();

    println!(
        "\nDashboard idle cost, debug build, {PEERS} peers, no RC, {} s windows",
        WINDOW.as_secs()
    );
    println!("{}; load average {load_before} → {load_after}\n", machine());
    println!("| phase | peer 0 (asked) | peer 1 |");
    println!("| --- | --- | --- |");
    println!("{}", row("nothing asking", &idle));
    println!("{}", row("one `curl -N` events watch at peer 0", &watched));
    println!(
        "{}",
        row(
            "one open page's refresh at peer 0 (5 requests / 2 s)",
            &polled
        )
    );
    println!(
        "{}",
        row("the page open in headless Chromium at peer 0", &browsed)
    );
    println!("{}", row("nothing asking, again", &again));
    println!(
        "\nwatch delivered {} lines ({} bytes); page requests answered 200: {}, failed: {}",
        streamed.lines().count(),
        streamed.len(),
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    assert!(
        streamed.contains("\"ADDED\""),
        "the events watch delivered nothing: {streamed:?}\npeer 0:\n{}",
        cluster.log_tail(0)
    );
    println!("Chromium's page made {page_requests} API requests in its 25 s");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "page requests failed");
    assert!(
        page_requests >= 10,
        "the page in Chromium asked only {page_requests} times"
    );
    assert!(served.load(Ordering::Relaxed) >= PAGE_PATHS.len() * 5);
}
