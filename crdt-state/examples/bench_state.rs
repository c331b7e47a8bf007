//! Benchmark of the replicated desired state at 1,000 and 10,000 RCs.
//!
//! `cargo run --release -p shoal-crdt-state --example bench_state`
//!
//! Prints a Markdown section (heading, table, command) for BENCHMARKS.md.
//! Figures are printed, not asserted. Specs are realistic: 1–2 containers,
//! 3 labels, 2–6 env vars, ports, requests, a readiness probe on some; a
//! fifth of the RCs had one rolling update (so they carry one history entry).
//! Every timing is the median of several runs.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use shoal_crdt_state::desired::DesiredState;
use shoal_crdt_state::hlc::{Clock, DEFAULT_MAX_DRIFT_MS};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::spec::{
    ContainerSpec, EnvVar, PartitionPolicy, PodTemplate, PortSpec, Probe, ProbeAction, Protocol,
    PullPolicy, RcSpec, Resources, RestartPolicy, UpdateStrategy,
};
use shoal_crdt_state::sync::ClusterState;
use shoal_crdt_state::wire::{self, MAX_MESSAGE_BYTES};

const RUNS: usize = 7;
const SIZES: [usize; 2] = [1_000, 10_000];

/// Small deterministic generator (xorshift64*): same specs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const IMAGES: [&str; 5] = [
    "registry.local/shop/frontend",
    "registry.local/shop/cart-service",
    "nginx",
    "redis",
    "registry.local/data/ingest-worker",
];

fn container(rng: &mut Rng, name: &str, version: u64) -> ContainerSpec {
    let image = IMAGES[rng.below(IMAGES.len() as u64) as usize];
    let env = (0..2 + rng.below(5))
        .map(|i| EnvVar {
            name: format!("SETTING_{i}"),
            value: format!("value-{}", rng.below(100_000)),
        })
        .collect();
    let port = 8000 + rng.below(1000) as u16;
    ContainerSpec {
        name: name.to_owned(),
        image: format!("{image}:1.{version}.{}", rng.below(10)),
        command: Vec::new(),
        args: vec!["--listen".to_owned(), format!(":{port}")],
        env,
        ports: vec![PortSpec {
            container_port: port,
            host_port: None,
            protocol: Protocol::Tcp,
            name: None,
        }],
        resources: Resources {
            cpu_millis: 50 * (1 + rng.below(8)),
            memory_bytes: (64 << 20) * (1 + rng.below(8)),
        },
        readiness_probe: (rng.below(2) == 0).then(|| Probe {
            action: ProbeAction::HttpGet {
                path: "/healthz".to_owned(),
                port,
            },
            initial_delay_secs: 2,
            period_secs: 5,
            timeout_secs: 1,
            failure_threshold: 3,
        }),
        image_pull_policy: PullPolicy::IfNotPresent,
    }
}

fn template(rng: &mut Rng, name: &str, version: u64) -> PodTemplate {
    let mut containers = vec![container(rng, "app", version)];
    if rng.below(3) == 0 {
        containers.push(container(rng, "sidecar", version));
    }
    PodTemplate {
        labels: labels(name),
        containers,
        node_selector: BTreeMap::new(),
        restart_policy: RestartPolicy::Always,
        termination_grace_period_secs: 30,
    }
}

fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), name.to_owned()),
        ("team".to_owned(), "platform".to_owned()),
        ("tier".to_owned(), "backend".to_owned()),
    ])
}

/// `count` RCs applied at one node; every fifth then had a rolling update.
fn build(count: usize) -> DesiredState {
    let mut rng = Rng(0x5eed_0000 + count as u64);
    let mut clock = Clock::new(NodeId(rng.next()), DEFAULT_MAX_DRIFT_MS);
    let mut state = DesiredState::new();
    let mut now = 1_764_000_000_000;
    for i in 0..count {
        let name = format!("svc-{i:05}");
        let spec = RcSpec {
            name: name.clone(),
            replicas: 1 + rng.below(5) as u32,
            selector: labels(&name),
            template: template(&mut rng, &name, 0),
            update_strategy: UpdateStrategy::default(),
            partition_policy: PartitionPolicy::Available,
            paused: false,
        };
        now += 1;
        state.apply(&spec, clock.tick(now));
        if i % 5 == 0 {
            now += 1;
            let next = template(&mut rng, &name, 1);
            state
                .set_template(&name, next, clock.tick(now))
                .expect("the RC was just applied");
        }
    }
    state
}

/// Median of `RUNS` timed runs, after one untimed warm-up run.
fn median(mut f: impl FnMut() -> Duration) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..RUNS).map(|_| f()).collect();
    times.sort();
    times[RUNS / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

struct Row {
    metric: &'static str,
    values: Vec<String>,
}

fn main() {
    let mut rows: Vec<Row> = Vec::new();
    let mut push =
        |metric: &'static str, value: String| match rows.iter_mut().find(|r| r.metric == metric) {
            Some(row) => row.values.push(value),
            None => rows.push(Row {
                metric,
                values: vec![value],
            }),
        };
    for count in SIZES {
        let state = build(count);
        let bytes = wire::encode(&state).expect("state encodes");
        // Same-run baseline, to read the other timings as ratios on a noisy
        // machine: a copy of every record (what `clone` cost before records
        // were shared).
        let copy_records = median(|| {
            let t = Instant::now();
            let copy = black_box(black_box(&state).to_delta());
            let d = t.elapsed();
            drop(copy); // not timed, like the other runs' results
            d
        });
        // Records are shared (`Arc`): a clone copies the map's keys and pointers.
        let clone = median(|| {
            let t = Instant::now();
            let copy = black_box(black_box(&state).clone());
            let d = t.elapsed();
            drop(copy);
            d
        });
        let merge_empty = median(|| {
            let mut fresh = DesiredState::new();
            let t = Instant::now();
            fresh.merge(&state);
            let d = t.elapsed();
            assert_eq!(fresh, state);
            d
        });
        let merge_equal = median(|| {
            let mut same: DesiredState =
                wire::decode(&bytes, MAX_MESSAGE_BYTES).expect("own encoding decodes");
            let t = Instant::now();
            same.merge(&state);
            t.elapsed()
        });
        // The same, while a snapshot (API read, disk write) shares every
        // record: each is copied aside, merged, and found unchanged.
        let merge_equal_shared = median(|| {
            let mut same = state.clone();
            let t = Instant::now();
            same.merge(&state);
            t.elapsed()
        });
        let encode = median(|| {
            let t = Instant::now();
            black_box(wire::encode(black_box(&state)).expect("state encodes"));
            t.elapsed()
        });
        let decode = median(|| {
            let t = Instant::now();
            let back: DesiredState =
                wire::decode(black_box(&bytes), MAX_MESSAGE_BYTES).expect("own encoding decodes");
            let d = t.elapsed();
            assert_eq!(back, state);
            d
        });
        // Peers exchange the digest of their whole state (desired + observed).
        let cluster = ClusterState {
            desired: state.clone(),
            ..ClusterState::default()
        };
        let digest = cluster.digest();
        let digest_bytes = wire::encode(&digest).expect("digest encodes");
        let digest_time = median(|| {
            let t = Instant::now();
            black_box(wire::encode(&cluster.digest()).expect("digest encodes"));
            t.elapsed()
        });
        let digest_build = median(|| {
            let t = Instant::now();
            black_box(black_box(&cluster).digest());
            t.elapsed()
        });
        // A state just decoded (loaded from disk, or pulled whole) has no
        // digest entry cached yet: every record is hashed.
        let digest_cold = median(|| {
            let fresh = ClusterState {
                desired: wire::decode(&bytes, MAX_MESSAGE_BYTES).expect("own encoding decodes"),
                ..ClusterState::default()
            };
            let t = Instant::now();
            black_box(black_box(&fresh).digest());
            let d = t.elapsed();
            drop(fresh);
            d
        });
        let missing_none = median(|| {
            let t = Instant::now();
            let delta = cluster.missing_for(black_box(&digest));
            let d = t.elapsed();
            assert!(delta.is_empty());
            d
        });
        push(
            "baseline: copy every record in memory (`to_delta`) (ms)",
            ms(copy_records),
        );
        push("clone the state (records shared) (ms)", ms(clone));
        push("full-state merge into an empty peer (ms)", ms(merge_empty));
        push("full-state merge into an equal peer (ms)", ms(merge_equal));
        push(
            "full-state merge into an equal peer whose records a snapshot shares (ms)",
            ms(merge_equal_shared),
        );
        push("encode full state (ms)", ms(encode));
        push("decode full state (ms)", ms(decode));
        push("encoded full state (bytes)", bytes.len().to_string());
        push(
            "encoded bytes per RC",
            format!("{:.0}", bytes.len() as f64 / count as f64),
        );
        push("digest size (bytes)", digest_bytes.len().to_string());
        push(
            "digest bytes per RC",
            format!("{:.1}", digest_bytes.len() as f64 / count as f64),
        );
        push("build digest (ms)", ms(digest_build));
        push("build digest of a just-decoded state (ms)", ms(digest_cold));
        push("compute and encode digest (ms)", ms(digest_time));
        push("missing_for against an equal digest (ms)", ms(missing_none));
    }

    // Typical gossip deltas: what one command puts on the wire.
    let mut state = build(10);
    let mut clock = Clock::new(NodeId(u64::MAX - 7), DEFAULT_MAX_DRIFT_MS);
    clock.observe(&state.to_delta().max_stamp().expect("state has stamps"), 0);
    let now = 1_800_000_000_000;
    let scale = state
        .scale("svc-00003", 7, clock.tick(now))
        .expect("live RC");
    let mut rng = Rng(99);
    let image = state
        .set_template(
            "svc-00003",
            template(&mut rng, "svc-00003", 2),
            clock.tick(now),
        )
        .expect("live RC");
    let size = |d| wire::encode(&d).expect("delta encodes").len();

    println!("### CRDT state\n");
    println!(
        "Desired state of N ReplicationControllers (1–2 containers, 3 labels, 2–6 env vars; \
         a fifth with one rollout in history). Median of {RUNS} runs.\n"
    );
    print!("| metric |");
    for count in SIZES {
        print!(" {count} RCs |");
    }
    println!();
    println!("|---|{}", "---:|".repeat(SIZES.len()));
    for row in &rows {
        println!("| {} | {} |", row.metric, row.values.join(" | "));
    }
    println!();
    println!(
        "Gossip deltas: `scale` = {} bytes, image change (new body + previous template) = {} bytes.\n",
        size(scale),
        size(image)
    );
    println!("Command: `cargo run --release -p shoal-crdt-state --example bench_state`");
}
