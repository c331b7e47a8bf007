//! Placement benchmark: time of one full assignment, disruption when one
//! node joins or leaves, and the cost of building the inputs (held host
//! ports) from the observed state. Prints a Markdown section for BENCHMARKS.md.
//!
//! `cargo run --release -p shoal --example bench_placement`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal::placement::{NodeCandidate, WantedPorts, assign, ideal_moves, inputs, moved};
use shoal_crdt_state::NodeDecisions;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodPhase, PodStatus, PublishedPort};
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, PortSpec, Protocol, RcSpec, Resources,
    RestartPolicy, UpdateStrategy,
};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

const RCS: usize = 1_000;
const REPLICAS: u32 = 10;
const TIMING_RUNS: usize = 7;

/// splitmix64: node ids drawn from a seed, so every run measures the same clusters.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn node(id: u64) -> NodeCandidate {
    let big = Resources {
        cpu_millis: 64_000,
        memory_bytes: 256 << 30,
    };
    NodeCandidate {
        info: NodeInfo::healthy(format!("n{id:x}"), big),
        alive: true,
        cordoned: false,
        held_ports: Vec::new(),
    }
}

fn nodes(count: usize, seed: u64) -> BTreeMap<NodeId, NodeCandidate> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            let id = splitmix(&mut state);
            (NodeId(id), node(id))
        })
        .collect()
}

fn rcs() -> BTreeMap<String, RcSpec> {
    (0..RCS)
        .map(|i| {
            let name = format!("app-{i:04}");
            let spec = RcSpec {
                name: name.clone(),
                replicas: REPLICAS,
                selector: BTreeMap::from([("app".into(), name.clone())]),
                template: PodTemplate {
                    labels: BTreeMap::from([("app".into(), name.clone())]),
                    containers: vec![ContainerSpec {
                        resources: Resources {
                            cpu_millis: 100,
                            memory_bytes: 64 << 20,
                        },
                        ..ContainerSpec::new("main", "busybox:local")
                    }],
                    node_selector: BTreeMap::new(),
                    restart_policy: RestartPolicy::Always,
                    termination_grace_period_secs: 10,
                },
                update_strategy: UpdateStrategy::default(),
                partition_policy: PartitionPolicy::default(),
                paused: false,
            };
            (name, spec)
        })
        .collect()
}

/// Baseline measured in the same run: only the hashing of plain rendezvous
/// with one xxh3 call per (replica, node) pair, no bookkeeping at all.
fn xxh3_per_pair_scan(
    rcs: &BTreeMap<String, RcSpec>,
    nodes: &BTreeMap<NodeId, NodeCandidate>,
) -> u64 {
    let mut acc = 0u64;
    for name in rcs.keys() {
        for index in 0..REPLICAS {
            let seed = xxh3_64(format!("{name}/{index}").as_bytes());
            let best = nodes
                .keys()
                .map(|n| xxh3_64_with_seed(&n.0.to_le_bytes(), seed))
                .max()
                .unwrap_or(0);
            acc ^= best;
        }
    }
    acc
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Disruption {
    join: f64,
    leave: f64,
    join_moved: f64,
    join_ideal: f64,
}

/// Average over seeds of moved / ideal when one node joins and when one leaves.
fn disruption(node_count: usize, seeds: u64, rcs: &BTreeMap<String, RcSpec>) -> Disruption {
    let (mut join, mut leave, mut jm, mut ji) = (0.0, 0.0, 0.0, 0.0);
    for seed in 0..seeds {
        let base = nodes(node_count, seed);
        let before = assign(rcs, &base);
        let mut grown = base.clone();
        let mut state = seed ^ 0xA5A5_A5A5;
        let extra = splitmix(&mut state);
        grown.insert(NodeId(extra), node(extra));
        let after_join = assign(rcs, &grown);
        let (m, i) = (
            moved(&before, &after_join),
            ideal_moves(&before, &after_join),
        );
        join += m as f64 / i.max(1) as f64;
        jm += m as f64;
        ji += i as f64;
        let mut shrunk = base.clone();
        let victim = *shrunk
            .keys()
            .nth((splitmix(&mut state) as usize) % node_count)
            .unwrap();
        shrunk.remove(&victim);
        let after_leave = assign(rcs, &shrunk);
        let (m, i) = (
            moved(&before, &after_leave),
            ideal_moves(&before, &after_leave),
        );
        leave += m as f64 / i.max(1) as f64;
    }
    let n = seeds as f64;
    Disruption {
        join: join / n,
        leave: leave / n,
        join_moved: jm / n,
        join_ideal: ji / n,
    }
}

/// Every RC of `rcs` published on its own host port (10000 + its number).
fn with_host_ports(rcs: &BTreeMap<String, RcSpec>) -> BTreeMap<String, RcSpec> {
    rcs.iter()
        .enumerate()
        .map(|(i, (name, spec))| {
            let mut spec = spec.clone();
            spec.template.containers[0].ports.push(PortSpec {
                container_port: 80,
                host_port: Some(10_000 + i as u16),
                protocol: Protocol::Tcp,
                name: None,
            });
            (name.clone(), spec)
        })
        .collect()
}

/// The observed state once `rcs` run as placed on `cluster`: every node
/// reports its pods, running, with the host ports their template asks for.
fn observed(
    rcs: &BTreeMap<String, RcSpec>,
    cluster: &BTreeMap<NodeId, NodeCandidate>,
) -> ObservedState {
    let mut state = ObservedState::new();
    for (id, c) in cluster {
        state.set_node_info(*id, c.info.clone());
    }
    for (pod, node) in assign(rcs, cluster).iter() {
        let ports = rcs[&pod.rc]
            .template
            .host_ports()
            .map(|(host_port, protocol)| PublishedPort {
                container_port: 80,
                host_port,
                protocol,
            })
            .collect();
        let status = PodStatus {
            id: pod.clone(),
            template_hash: rcs[&pod.rc].template.hash(),
            image: "busybox:local".into(),
            phase: PodPhase::Running,
            ready: true,
            restarts: 0,
            last_error: None,
            preparing: None,
            ports,
            claim: None,
            available: false,
            stalled: None,
            started_ms: None,
        };
        state.set_pod_status(node, status).expect("node recorded");
    }
    state
}

/// Building the inputs and assigning from them, for one workload, and the
/// held-port fingerprint the peer takes of each merged node record.
struct InputsRow {
    inputs: Duration,
    assign: Duration,
    fingerprint_ns: f64,
    held: usize,
    moved: usize,
}

fn inputs_row(
    rcs: &BTreeMap<String, RcSpec>,
    cluster: &BTreeMap<NodeId, NodeCandidate>,
) -> InputsRow {
    let state = observed(rcs, cluster);
    let me = *cluster.keys().next().expect("nodes");
    let (mut build, mut place) = (Vec::new(), Vec::new());
    let mut held = 0;
    let mut moved_now = 0;
    let before = assign(rcs, cluster);
    for _ in 0..TIMING_RUNS {
        let start = Instant::now();
        let candidates = inputs(&state, &NodeDecisions::default(), rcs, me, |_| true);
        build.push(start.elapsed());
        let start = Instant::now();
        let a = assign(rcs, &candidates);
        place.push(start.elapsed());
        held = candidates.values().map(|c| c.held_ports.len()).sum();
        moved_now = moved(&before, &a);
    }
    let wanted = WantedPorts::of(rcs);
    let rounds = 100;
    let start = Instant::now();
    for _ in 0..rounds {
        for (_, record) in state.nodes() {
            std::hint::black_box(wanted.held_fingerprint(std::hint::black_box(&record.pods)));
        }
    }
    let fingerprint_ns = start.elapsed().as_secs_f64() * 1e9 / (rounds * state.len()) as f64;
    InputsRow {
        inputs: median(build),
        assign: median(place),
        fingerprint_ns,
        held,
        moved: moved_now,
    }
}

fn main() {
    let rcs = rcs();
    let mut rows = Vec::new();
    for (node_count, seeds) in [(100usize, 20u64), (1_000, 16)] {
        let cluster = nodes(node_count, 42);
        let mut times = Vec::new();
        let mut baseline = Vec::new();
        let mut max_load = 0;
        for _ in 0..TIMING_RUNS {
            let start = Instant::now();
            let a = assign(&rcs, &cluster);
            times.push(start.elapsed());
            let start = Instant::now();
            std::hint::black_box(xxh3_per_pair_scan(&rcs, &cluster));
            baseline.push(start.elapsed());
            max_load = a.max_load();
            assert_eq!(
                a.placed(),
                RCS * REPLICAS as usize,
                "bench cluster must fit everything"
            );
        }
        let d = disruption(node_count, seeds, &rcs);
        rows.push((
            node_count,
            median(times),
            median(baseline),
            max_load,
            d,
            seeds,
        ));
    }

    println!("### Placement\n");
    println!(
        "One full assignment of {RCS} RCs × {REPLICAS} replicas (median of {TIMING_RUNS} runs), \
         and disruption when one node joins or leaves (moved / ideal, mean over seeds). \
         The baseline column times only the hashing that plain rendezvous with one xxh3 call \
         per (replica, node) pair would do, measured in the same run.\n"
    );
    println!(
        "| nodes | replicas | assign (median) | xxh3-per-pair scan alone | max load (mean) | join moved / ideal | join moved_ratio | leave moved_ratio | seeds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, t, base, max_load, d, seeds) in rows {
        let total = RCS * REPLICAS as usize;
        println!(
            "| {n} | {total} | {:.1} ms | {:.1} ms | {max_load} ({:.1}) | {:.1} / {:.1} | {:.3} | {:.3} | {seeds} |",
            t.as_secs_f64() * 1e3,
            base.as_secs_f64() * 1e3,
            total as f64 / n as f64,
            d.join_moved,
            d.join_ideal,
            d.join,
            d.leave
        );
    }

    let cluster = nodes(1_000, 42);
    let plain = inputs_row(&rcs, &cluster);
    let ported = inputs_row(&with_host_ports(&rcs), &cluster);
    println!("\n#### Placement inputs\n");
    println!(
        "1,000 nodes reporting {} running pods: building the inputs from the observed state \
         (`placement::inputs`, median of {TIMING_RUNS}), the assignment from them, and the \
         held-port fingerprint a peer takes of each node record it merges. `moved` compares \
         with the assignment made before the pods ran: a replica keeps its own port.\n",
        RCS * REPLICAS as usize
    );
    println!("| workload | held ports | inputs | assign | fingerprint per record | moved |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, row) in [("no hostPort", plain), ("a hostPort per RC", ported)] {
        println!(
            "| {name} | {} | {:.1} ms | {:.1} ms | {:.0} ns | {} |",
            row.held,
            row.inputs.as_secs_f64() * 1e3,
            row.assign.as_secs_f64() * 1e3,
            row.fingerprint_ns,
            row.moved
        );
    }
    println!("\nCommand: `cargo run --release -p shoal --example bench_placement`");
}
