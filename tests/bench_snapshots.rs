//! Benchmark: what API reads cost the task that owns the peer core, at
//! 10,000 RCs × 3 replicas declared and 10 nodes' records (issue 15).
//!
//! `scripts/bench-snapshots.sh` runs it here and against a baseline built
//! from main in the same session (this file and `snapshot_bench/`,
//! compiled there with `--cfg shoal_baseline`, which swaps in main's way
//! of serving reads), and prints the Markdown section. Alone:
//!
//! ```text
//! SHOAL_BENCH_OUT=/tmp/rows.md cargo test --release -p shoal --test bench_snapshots -- --ignored --nocapture
//! ```
//!
//! Peer 0 is a full peer core (see `snapshot_bench/` for the cluster around
//! it) serving the real axum router. Once it runs and sees all 30,000
//! replicas, one of the other nodes changes a pod's readiness every 100 ms
//! (a polled cluster is one that changes), and each way of serving reads is
//! measured twice: without readers, then while one client issues
//! `GET /api/v1/pods` 50 times a second (each request after the previous
//! answer). Measured on peer 0's driver: its time per snapshot request and
//! on snapshots altogether, how late a 10 ms tick in its select fires (loop
//! latency) and how late the peer's own timers fire; at the client, GET
//! latency. Figures are printed, never asserted.

mod bench_support;
mod snapshot_bench;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bench_support::{fmt_ms, loadavg, machine, ms, percentile};
use shoal::shell::api::{ApiState, router};
use shoal::shell::handle::REQUEST_QUEUE;
use snapshot_bench::{Driver0, Metrics, NODES, RCS, REPLICAS, Serve, standins_loop, whole_site};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const READS_PER_SEC: u32 = 50;
const CHURN_EVERY: Duration = Duration::from_millis(100);
const QUIET: Duration = Duration::from_secs(10);
const LOADED: Duration = Duration::from_secs(20);

/// This branch: `shell/snapshots.rs`, built on read (what the driver
/// does) or after every change (the alternative it was measured against).
#[cfg(not(shoal_baseline))]
mod serving {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use shoal::peer::Peer;
    use shoal::shell::handle::{PeerHandle, Request};
    use shoal::shell::snapshots::SnapshotSource;
    use tokio::sync::mpsc;

    pub const WAYS: [&str; 2] = ["built on read (chosen)", "built after every change"];

    pub struct Serving {
        source: SnapshotSource,
        eager: Arc<AtomicBool>,
    }

    impl Serving {
        pub fn new(peer: &Peer, tx: mpsc::Sender<Request>) -> (Serving, PeerHandle) {
            let (source, reader) = SnapshotSource::new(peer, "bench");
            let eager = Arc::new(AtomicBool::new(false));
            (Serving { source, eager }, PeerHandle::new(tx, reader))
        }

        /// Selects `WAYS[way]`.
        pub fn switch(&self) -> impl Fn(usize) + Send + Sync + 'static {
            let eager = self.eager.clone();
            move |way| eager.store(way == 1, Ordering::Relaxed)
        }
    }

    impl super::Serve for Serving {
        fn after_input(&mut self, peer: &Peer) {
            self.source.note(peer);
            if self.eager.load(Ordering::Relaxed) {
                let _ = self.source.current(peer);
            }
        }

        fn answer(&mut self, peer: &Peer, request: Request) {
            if let Request::Snapshot { reply } = request {
                let _ = reply.send(self.source.current(peer));
            }
        }

        fn builds(&self) -> u64 {
            self.source.builds()
        }
    }
}

/// Main before issue 15: every read asks the driver, which copies.
#[cfg(shoal_baseline)]
mod serving {
    use shoal::peer::Peer;
    use shoal::shell::handle::{PeerHandle, Request, Snapshot};
    use tokio::sync::mpsc;

    pub const WAYS: [&str; 1] = ["main: a copy per request"];

    pub struct Serving {
        builds: u64,
    }

    impl Serving {
        pub fn new(_: &Peer, tx: mpsc::Sender<Request>) -> (Serving, PeerHandle) {
            (Serving { builds: 0 }, PeerHandle::new(tx))
        }

        pub fn switch(&self) -> impl Fn(usize) + Send + Sync + 'static {
            |_| {}
        }
    }

    impl super::Serve for Serving {
        fn after_input(&mut self, _: &Peer) {}

        fn answer(&mut self, peer: &Peer, request: Request) {
            if let Request::Snapshot { reply } = request {
                self.builds += 1;
                let _ = reply.send(Snapshot::of(peer, "bench"));
            }
        }

        fn builds(&self) -> u64 {
            self.builds
        }
    }
}

/// One phase's figures.
struct Row {
    way: &'static str,
    phase: &'static str,
    metrics: Metrics,
    builds: u64,
    secs: f64,
    gets: Vec<f64>,
}

impl Row {
    fn render(&self) -> String {
        let m = &self.metrics;
        let pair = |v: &[f64]| {
            if v.is_empty() {
                "–".to_owned()
            } else {
                format!(
                    "{} / {}",
                    fmt_ms(percentile(v, 0.5)),
                    fmt_ms(percentile(v, 0.99))
                )
            }
        };
        let max = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
        let gets = if self.gets.is_empty() {
            "–".to_owned()
        } else {
            format!(
                "{} ({:.0}/s)",
                pair(&self.gets),
                self.gets.len() as f64 / self.secs
            )
        };
        format!(
            "| {} | {} | {:.1} | {} | {:.1} | {:.1} | {} · {} | {} · {} | {} | {} |",
            self.way,
            self.phase,
            m.requests.len() as f64 / self.secs,
            pair(&m.requests),
            self.builds as f64 / self.secs,
            ms(m.on_snapshots) / self.secs,
            pair(&m.ticks),
            fmt_ms(max(&m.ticks)),
            fmt_ms(percentile(&m.timers, 0.99)),
            fmt_ms(max(&m.timers)),
            gets,
            m.downs,
        )
    }
}

/// `GET /api/v1/pods` at `READS_PER_SEC`, each after the previous answer.
async fn poll_pods(url: &str, for_: Duration) -> Vec<f64> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let every = Duration::from_secs(1) / READS_PER_SEC;
    let end = Instant::now() + for_;
    let mut next = Instant::now();
    let mut latencies = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep_until(next).await;
        let t = Instant::now();
        let response = client.get(format!("{url}/api/v1/pods")).send().await;
        let body = response.unwrap().bytes().await.unwrap();
        assert!(body.len() > 1_000_000, "every pod listed");
        latencies.push(ms(t.elapsed()));
        next = (next + every).max(Instant::now());
    }
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run by scripts/bench-snapshots.sh"]
async fn api_reads_at_ten_thousand_rcs() {
    let started = Instant::now();
    let site = whole_site(snapshot_bench::wall_now());
    eprintln!("bench: site built after {:.0?}", started.elapsed());
    let (tx, requests) = mpsc::channel(REQUEST_QUEUE);
    let (serving, handle) = serving::Serving::new(&site.peer, tx);
    let switch = serving.switch();
    let (to_standins, standins_inbox) = mpsc::unbounded_channel();
    let (to_peer0, peer0_inbox) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let churn = Arc::new(AtomicBool::new(false));
    let driver = Driver0::new(site.peer, site.ready, to_standins, serving);
    let (metrics, builds) = (driver.metrics.clone(), driver.builds.clone());
    tokio::spawn(driver.run(peer0_inbox, requests, stopped.clone()));
    tokio::spawn(standins_loop(
        site.standins,
        site.records,
        standins_inbox,
        to_peer0,
        churn.clone(),
        CHURN_EVERY,
        stopped,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let api = ApiState {
        handle: handle.clone(),
        runtime: None,
        api_token: None,
        cluster_ca: None,
        limits: shoal::shell::api::limits::ClientLimits::new(
            shoal::shell::api::limits::LimitSettings::UNLIMITED,
        ),
        service_dns: Err("this test runs no service plane".to_owned()),
        transfers: Default::default(),
    };
    tokio::spawn(async move { axum::serve(listener, router(api)).await.unwrap() });

    // Every member up, every replica reported running and ready, steadily.
    let want = RCS * REPLICAS as usize;
    let mut settled = 0;
    while settled < 3 {
        let s = handle.snapshot().await.unwrap();
        let pods = s.state.observed.pods().count();
        let ready = s.state.observed.pods().filter(|(_, p)| p.ready).count();
        let seen = (
            pods,
            ready,
            s.state.observed.len(),
            s.members.active_nodes().len(),
        );
        settled = if seen == (want, want, NODES, NODES) {
            settled + 1
        } else {
            0
        };
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "settled: {seen:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "bench: {want} replicas ready on {NODES} nodes after {:.0?}",
        started.elapsed()
    );
    churn.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut rows = Vec::new();
    for (way, name) in serving::WAYS.iter().enumerate() {
        switch(way);
        for phase in ["none", "50 GET /pods per s"] {
            let before = builds.load(Ordering::Relaxed);
            std::mem::take(&mut *metrics.lock().unwrap());
            let t = Instant::now();
            let gets = if phase == "none" {
                tokio::time::sleep(QUIET).await;
                Vec::new()
            } else {
                poll_pods(&url, LOADED).await
            };
            let secs = t.elapsed().as_secs_f64();
            let taken = std::mem::take(&mut *metrics.lock().unwrap());
            rows.push(Row {
                way: name,
                phase,
                metrics: taken,
                builds: builds.load(Ordering::Relaxed) - before,
                secs,
                gets,
            });
            eprintln!("bench: {}", rows.last().unwrap().render());
        }
    }
    let _ = stop.send(true);

    let mut out = String::new();
    for row in &rows {
        out.push_str(&row.render());
        out.push('\n');
    }
    out.push_str(&format!(
        "\n_{}: {} on {}, load average {} at the end._\n",
        serving::WAYS[0],
        format_args!("{RCS} RCs, {want} replicas, {NODES} nodes"),
        machine(),
        loadavg(),
    ));
    print!("{out}");
    if let Ok(path) = std::env::var("SHOAL_BENCH_OUT") {
        std::fs::write(&path, &out).expect("write SHOAL_BENCH_OUT");
    }
}
