//! Restart and durability benchmark with real peers (release build): a
//! whole site of 10 `shoal up` processes stopped and restarted in random
//! order with the seed last, and apply throughput with durable
//! acknowledgement against the same peer without fsync. It prints
//! figures, it asserts none.
//!
//! ```text
//! cargo test --release -p shoal --all-features --test bench_real_restart -- --ignored --nocapture
//! scripts/bench-real-restart.sh   # the same, only the Markdown on stdout
//! ```
//!
//! The Markdown goes to the file named by `SHOAL_BENCH_OUT` when set.

mod bench_support;
mod cluster_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_support::{fmt_ms, loadavg, machine, met, ms};
use cluster_support::{Cluster, GroundTruth, hello_rc, hello_rc_probed, http, wait_until};

const PEERS: usize = 10;
const REPLICAS: u32 = 10;
/// Restart rounds, alternating SIGTERM (graceful) and `kill -9`.
const ROUNDS: usize = 4;
/// Targets from the issue, from the last peer's start.
const ALL_SEEN_TARGET: Duration = Duration::from_secs(5);
const EXACT_TARGET: Duration = Duration::from_secs(10);
/// Applies per throughput measurement, and client threads of the concurrent one.
const APPLIES: usize = 200;
const CLIENTS: usize = 8;

#[test]
#[ignore = "benchmark: cargo test --release -p shoal --all-features --test bench_real_restart -- --ignored --nocapture"]
fn restart_and_durability_figures() {
    let load_before = loadavg();
    let rounds = measure_restarts();
    let durable = measure_throughput(43, true);
    let unsynced = measure_throughput(44, false);
    let markdown = render(&load_before, &rounds, &durable, &unsynced);
    println!("{markdown}");
    if let Ok(path) = std::env::var("SHOAL_BENCH_OUT") {
        std::fs::write(&path, &markdown).expect("write SHOAL_BENCH_OUT");
    }
}

// ---------------------------------------------------------------- restarts

struct Round {
    how: &'static str,
    order: Vec<usize>,
    /// From the first restart to the last peer's start.
    starting: Duration,
    /// From the last peer's start: every peer sees all, and exactly the
    /// declared replicas run, all ready.
    all_seen: Option<Duration>,
    exact: Option<Duration>,
    /// Most copies of the RC seen running at once (declared: REPLICAS),
    /// from the stop to convergence, and right after the stop.
    peak: usize,
    after_stop: usize,
}

fn measure_restarts() -> Vec<Round> {
    let mut cluster = Cluster::start_with_log(41, PEERS, "info");
    let manifest = cluster.manifest(
        "web.yaml",
        &hello_rc_probed("web", REPLICAS, "shoal-test/hello:1.0"),
    );
    let applied = cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]);
    assert!(applied.status.success(), "{applied:?}");
    assert!(
        wait_until(Duration::from_secs(90), || exact(&cluster)),
        "web never settled"
    );
    let mut seed = u64::from(std::process::id());
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let graceful = round % 2 == 0;
        let watcher = Watcher::start(cluster.ground_truth());
        let all: Vec<usize> = (0..PEERS).collect();
        if graceful {
            cluster.terminate_all(&all);
        } else {
            for &i in &all {
                cluster.kill9(i);
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        let after_stop = cluster.engine_copies("web").len();
        let mut order: Vec<usize> = (1..PEERS).collect();
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        order.push(0); // the seed comes back last
        let first = Instant::now();
        let mut last = first;
        for &i in &order {
            last = Instant::now();
            cluster.spawn(i);
        }
        let mut all_seen = None;
        let mut exact_at = None;
        wait_until(Duration::from_secs(60), || {
            if all_seen.is_none() && (0..PEERS).all(|i| cluster.count_nodes(i, "Alive") == PEERS) {
                all_seen = Some(last.elapsed());
            }
            if exact_at.is_none() && exact(&cluster) {
                exact_at = Some(last.elapsed());
            }
            all_seen.is_some() && exact_at.is_some()
        });
        let peak = watcher.stop();
        eprintln!(
            "round {round}: {} order {order:?}: all seen {all_seen:?}, exact {exact_at:?}, peak {peak}",
            if graceful { "SIGTERM" } else { "kill -9" }
        );
        rounds.push(Round {
            how: if graceful { "SIGTERM" } else { "`kill -9`" },
            order,
            starting: last - first,
            all_seen,
            exact: exact_at,
            peak,
            after_stop,
        });
        // Settle fully before the next round.
        wait_until(Duration::from_secs(60), || exact(&cluster));
    }
    rounds
}

/// Exactly one copy of every replica on the engine, and peer 0 counts
/// them all running and ready.
fn exact(cluster: &Cluster) -> bool {
    let copies = cluster.engine_copies("web");
    let replicas: std::collections::BTreeSet<&str> =
        copies.iter().map(|(r, _)| r.as_str()).collect();
    copies.len() == REPLICAS as usize
        && replicas.len() == REPLICAS as usize
        && cluster.rc_counts(0, "web") == Some((REPLICAS.into(), REPLICAS.into()))
}

/// Polls the engine in the background for the most copies at once.
struct Watcher {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<usize>>,
    thread: std::thread::JoinHandle<()>,
}

impl Watcher {
    fn start(truth: GroundTruth) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let n = truth.copies("web").len();
                let mut peak = p.lock().unwrap();
                *peak = (*peak).max(n);
                drop(peak);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watcher { stop, peak, thread }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        *self.peak.lock().unwrap()
    }
}

// ---------------------------------------------------------------- throughput

struct Throughput {
    /// Applies per second, one client waiting for each answer.
    sequential: f64,
    /// Applies per second, `CLIENTS` clients at once.
    concurrent: f64,
}

/// Applies of RCs with no replicas (the write, not the containers) at a
/// one-peer cluster, with or without fsync before the answer.
fn measure_throughput(subnet: u8, fsync: bool) -> Throughput {
    let args: &[&str] = if fsync { &[] } else { &["--unsafe-no-fsync"] };
    let cluster = Cluster::start_with(subnet, 1, "info", args);
    let api = cluster.peers[0].api_addr();
    let apply = |name: &str| {
        let manifest = hello_rc(name, 0, "shoal-test/hello:1.0");
        let reply = http(
            &api,
            "POST",
            "/api/v1/rcs",
            Some(&manifest),
            Duration::from_secs(10),
        );
        assert!(matches!(reply, Some((201, _))), "{name}: {reply:?}");
    };
    let started = Instant::now();
    for k in 0..APPLIES {
        apply(&format!("seq-{k}"));
    }
    let sequential = APPLIES as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let apply = &apply;
            scope.spawn(move || {
                for k in 0..APPLIES / CLIENTS {
                    apply(&format!("par-{c}-{k}"));
                }
            });
        }
    });
    let concurrent = (APPLIES / CLIENTS * CLIENTS) as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "fsync {fsync}: {sequential:.0}/s sequential, {concurrent:.0}/s with {CLIENTS} clients"
    );
    Throughput {
        sequential,
        concurrent,
    }
}

// ---------------------------------------------------------------- report

fn render(
    load_before: &str,
    rounds: &[Round],
    durable: &Throughput,
    unsynced: &Throughput,
) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let w = &mut md;
    let opt = |d: Option<Duration>| d.map_or("never (60 s)".to_owned(), |d| fmt_ms(ms(d)));
    let _ = writeln!(
        w,
        "### Whole-site restarts and durable writes (real peers)\n"
    );
    let _ = writeln!(
        w,
        "{PEERS} `shoal up` processes (release build) on 127.0.41.x, one machine: {}; load \
         average {load_before} before, {} after. An RC of {REPLICAS} replicas of \
         `shoal-test/hello:1.0` with an httpGet readiness probe. Each round stops every peer \
         (SIGTERM: graceful, or `kill -9`; the containers keep running, as when the peers \
         restart but not the engine), then starts them again one after another, each waiting \
         for its API, in random order with the seed (peer 0, everyone's `--join`) last. \
         Times run from the last peer's start. Copies are counted on the engine every 100 ms.\n",
        machine(),
        loadavg(),
    );
    let _ = writeln!(
        w,
        "| round | stop | restart order | starting all | all see all | exactly {REPLICAS} ready | copies after the stop | peak copies |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|");
    for (i, r) in rounds.iter().enumerate() {
        let _ = writeln!(
            w,
            "| {} | {} | {:?} | {} | {} | {} | {} | {} |",
            i + 1,
            r.how,
            r.order,
            fmt_ms(ms(r.starting)),
            opt(r.all_seen),
            opt(r.exact),
            r.after_stop,
            r.peak,
        );
    }
    let worst = |f: fn(&Round) -> Option<Duration>| {
        rounds
            .iter()
            .map(f)
            .try_fold(Duration::ZERO, |acc, d| d.map(|d| acc.max(d)))
    };
    let seen = worst(|r| r.all_seen);
    let exact = worst(|r| r.exact);
    let _ = writeln!(w, "\n| target | worst round | met |");
    let _ = writeln!(w, "|---|---|---|");
    let _ = writeln!(
        w,
        "| all peers see each other within 5 s of the last start | {} | {} |",
        opt(seen),
        met(seen.is_some_and(|d| d <= ALL_SEEN_TARGET))
    );
    let _ = writeln!(
        w,
        "| exactly {REPLICAS} ready within 10 s of the last start | {} | {} |",
        opt(exact),
        met(exact.is_some_and(|d| d <= EXACT_TARGET))
    );
    let _ = writeln!(
        w,
        "\nApply throughput at one peer (RCs with 0 replicas, {APPLIES} applies over raw HTTP; \
         the answer comes once the write is durable, see the README's \"What an answer means\"), \
         against the same peer started with `--unsafe-no-fsync` in the same run:\n"
    );
    let _ = writeln!(w, "| peer | 1 client | {CLIENTS} clients |");
    let _ = writeln!(w, "|---|---|---|");
    let _ = writeln!(
        w,
        "| durable (fsync before the answer, group commit) | {:.0} applies/s | {:.0} applies/s |",
        durable.sequential, durable.concurrent
    );
    let _ = writeln!(
        w,
        "| `--unsafe-no-fsync` (baseline) | {:.0} applies/s | {:.0} applies/s |",
        unsynced.sequential, unsynced.concurrent
    );
    let _ = writeln!(
        w,
        "| durable ÷ baseline | {:.2} | {:.2} |",
        durable.sequential / unsynced.sequential,
        durable.concurrent / unsynced.concurrent
    );
    let _ = writeln!(w, "\nCommand: `scripts/bench-real-restart.sh`\n");
    md
}
