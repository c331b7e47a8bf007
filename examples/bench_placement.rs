//! Placement benchmark: time of one full assignment, disruption when one
//! node joins or leaves, against the bounded-load rendezvous placement used
//! before issue #15 (kept below, in this file only, as the baseline); the
//! probe count sweep that chose `PROBES`; one assignment of 1,000,000
//! replicas over 10,000 nodes; a full cluster (requests = capacity); and the cost of building the inputs (held
//! host ports) from the observed state. Prints a Markdown section for
//! BENCHMARKS.md.
//!
//! `cargo run --release -p shoal --example bench_placement`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use shoal::placement::hash::{node_key, rc_key, replica_seed};
use shoal::placement::{
    Assignment, NodeCandidate, WantedPorts, assign, assign_with_probes, ideal_moves, inputs, moved,
};
use shoal_crdt_state::NodeDecisions;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus, PublishedPort};
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, PortSpec, Protocol, RcSpec, Resources,
    RestartPolicy, UpdateStrategy,
};

const RCS: usize = 1_000;
const REPLICAS: u32 = 10;
const TIMING_RUNS: usize = 7;
const SATURATED_RUNS: usize = 3;
/// The large row: 100,000 RCs × 10 replicas over 10,000 nodes.
const LARGE_RCS: usize = 100_000;
const LARGE_NODES: usize = 10_000;
const LARGE_SEEDS: u64 = 8;
/// Disruption seeds of the probe count sweep at 1,000 nodes.
const SWEEP_SEEDS: u64 = 16;
/// Probe counts of the sweep.
const SWEEP: [usize; 7] = [1, 2, 4, 9, 16, 21, 32];

/// splitmix64: node ids drawn from a seed, so every run measures the same clusters.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn node(id: u64) -> NodeCandidate {
    sized_node(
        id,
        Resources {
            cpu_millis: 64_000,
            memory_bytes: 256 << 30,
        },
    )
}

fn sized_node(id: u64, allocatable: Resources) -> NodeCandidate {
    NodeCandidate {
        info: NodeInfo::healthy(format!("n{id:x}"), allocatable),
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

fn workload(count: usize) -> BTreeMap<String, RcSpec> {
    (0..count)
        .map(|i| {
            let name = format!("app-{i:06}");
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

/// The placement of main before issue #15 (`git show 6dcb568^1:src/placement/assign.rs`,
/// `choose` and `best`): per tier (spread and bound, spread, bound, neither)
/// one `fmix64(seed ⊕ node key)` weight per node, and the tier's checks only
/// for a node that beats the best weight so far; index-major, surge slots
/// after. Reduced to what this bench's workloads exercise: no host ports, no
/// node selectors, one request size.
fn rendezvous_assign(
    rcs: &BTreeMap<String, RcSpec>,
    nodes: &BTreeMap<NodeId, NodeCandidate>,
) -> BTreeMap<PodId, NodeId> {
    let ids: Vec<NodeId> = nodes.keys().copied().collect();
    let keys: Vec<u64> = ids.iter().map(|id| node_key(*id)).collect();
    let mut free: Vec<Resources> = nodes.values().map(|c| c.info.allocatable).collect();
    let total: u64 = rcs.values().map(|r| u64::from(r.replicas)).sum();
    // The old `LoadCap`: floor or floor + 1 of total × 7/4 / nodes, by key.
    let (num, den) = (total * 7, 4 * ids.len().max(1) as u64);
    let caps: Vec<u64> = keys
        .iter()
        .map(|k| {
            let extra = u128::from(*k) * u128::from(den) < u128::from(num % den) << 64;
            (num / den + u64::from(extra)).max(1)
        })
        .collect();
    let mut load = vec![0u64; ids.len()];
    let mut owners = BTreeMap::new();
    let mut place = |spec: &RcSpec, index: u32, used: &mut Vec<usize>| {
        let seed = replica_seed(rc_key(&spec.name), index);
        let request = spec.template.requests();
        let tiers = [(true, true), (true, false), (false, true), (false, false)];
        let chosen = tiers.into_iter().find_map(|(spread, bounded)| {
            let acceptable = |s: usize| {
                let over_bound = bounded && load[s] >= caps[s];
                let stacks = spread && used.contains(&s);
                !over_bound && !stacks && free[s].fits(&request)
            };
            let mut best: Option<(u64, usize)> = None;
            for (s, key) in keys.iter().enumerate() {
                let w = fmix64(seed ^ key);
                if best.is_none_or(|(bw, _)| w > bw) && acceptable(s) {
                    best = Some((w, s));
                }
            }
            best.map(|(_, s)| s)
        })?;
        load[chosen] += 1;
        free[chosen] = free[chosen].saturating_sub(&request);
        used.push(chosen);
        Some(ids[chosen])
    };
    let mut used: Vec<Vec<usize>> = vec![Vec::new(); rcs.len()];
    let most = rcs.values().map(|r| r.replicas).max().unwrap_or(0);
    for index in 0..most {
        for (r, spec) in rcs.values().enumerate() {
            if index < spec.replicas
                && let Some(node) = place(spec, index, &mut used[r])
            {
                owners.insert(
                    PodId {
                        rc: spec.name.clone(),
                        index,
                    },
                    node,
                );
            }
        }
    }
    for (r, spec) in rcs.values().enumerate() {
        let (surge, _) = spec.update_strategy.resolve(spec.replicas);
        for index in spec.replicas..spec.replicas + surge {
            std::hint::black_box(place(spec, index, &mut used[r]));
        }
    }
    owners
}

fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn moved_between(before: &BTreeMap<PodId, NodeId>, after: &BTreeMap<PodId, NodeId>) -> usize {
    before
        .iter()
        .filter(|(pod, owner)| after.get(*pod).is_some_and(|o| o != *owner))
        .count()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[derive(Default)]
struct Disruption {
    join: f64,
    leave: f64,
    join_moved: f64,
    join_ideal: f64,
}

/// `count` nodes with room for exactly `REPLICAS` replicas of `workload` each.
fn full_cluster(count: usize, seed: u64) -> BTreeMap<NodeId, NodeCandidate> {
    let room = Resources {
        cpu_millis: 100 * u64::from(REPLICAS),
        memory_bytes: (64 << 20) * u64::from(REPLICAS),
    };
    nodes(count, seed)
        .into_keys()
        .map(|id| (id, sized_node(id.0, room)))
        .collect()
}

/// The clusters of one disruption seed: before, one node more, one fewer.
fn clusters(node_count: usize, seed: u64) -> [BTreeMap<NodeId, NodeCandidate>; 3] {
    let base = nodes(node_count, seed);
    let mut grown = base.clone();
    let mut state = seed ^ 0xA5A5_A5A5;
    let extra = splitmix(&mut state);
    grown.insert(NodeId(extra), node(extra));
    let mut shrunk = base.clone();
    let victim = *shrunk
        .keys()
        .nth((splitmix(&mut state) as usize) % node_count)
        .unwrap();
    shrunk.remove(&victim);
    [base, grown, shrunk]
}

/// Mean over seeds of moved / ideal when one node joins and when one
/// leaves, for the probe placement with `probes` and, when `baseline`, for
/// the old rendezvous placement on the same clusters (the ideal is the
/// same for both: it depends only on membership and counts).
fn disruption(
    node_count: usize,
    seeds: u64,
    rcs: &BTreeMap<String, RcSpec>,
    probes: usize,
    baseline: bool,
) -> (Disruption, Disruption) {
    let (mut new, mut old) = (Disruption::default(), Disruption::default());
    for seed in 0..seeds {
        let [base, grown, shrunk] = clusters(node_count, seed);
        let before = assign_with_probes(rcs, &base, probes);
        let old_before = baseline.then(|| rendezvous_assign(rcs, &base));
        for (after, joined) in [(grown, true), (shrunk, false)] {
            let a = assign_with_probes(rcs, &after, probes);
            let ideal = ideal_moves(&before, &a).max(1) as f64;
            let add = |d: &mut Disruption, m: usize| {
                let ratio = m as f64 / ideal;
                if joined {
                    d.join += ratio;
                    d.join_moved += m as f64;
                    d.join_ideal += ideal;
                } else {
                    d.leave += ratio;
                }
            };
            add(&mut new, moved(&before, &a));
            if let Some(ob) = &old_before {
                add(&mut old, moved_between(ob, &rendezvous_assign(rcs, &after)));
            }
        }
    }
    let n = seeds as f64;
    for d in [&mut new, &mut old] {
        d.join /= n;
        d.leave /= n;
        d.join_moved /= n;
        d.join_ideal /= n;
    }
    (new, old)
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

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Median time of `assign` with `probes` on `cluster`, and its max load.
fn time_assign(
    rcs: &BTreeMap<String, RcSpec>,
    cluster: &BTreeMap<NodeId, NodeCandidate>,
    probes: usize,
    runs: usize,
) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut max_load = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let a: Assignment = assign_with_probes(rcs, cluster, probes);
        times.push(start.elapsed());
        max_load = a.max_load();
        let declared: usize = rcs.values().map(|r| r.replicas as usize).sum();
        assert_eq!(a.placed(), declared, "bench cluster must fit everything");
    }
    (median(times), max_load)
}

fn main() {
    let rcs = workload(RCS);
    let total = RCS * REPLICAS as usize;
    println!("### Placement\n");
    println!(
        "One full assignment of {RCS} RCs × {REPLICAS} replicas (median of {TIMING_RUNS} runs), \
         and disruption when one node joins or leaves (moved / ideal, mean over seeds), for \
         multi-probe placement (`PROBES` = {}) and, on the same clusters in the same run, \
         the bounded-load rendezvous placement main used before (a copy kept in the bench, \
         reduced to what this bench exercises: no host ports, no selectors).\n",
        shoal::placement::assign::PROBES
    );
    println!(
        "| nodes | replicas | algorithm | assign (median) | max load (mean) | join moved / ideal | join moved_ratio | leave moved_ratio | seeds |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for (node_count, seeds) in [(100usize, 20u64), (1_000, 16)] {
        let cluster = nodes(node_count, 42);
        let (t, max_load) = time_assign(
            &rcs,
            &cluster,
            shoal::placement::assign::PROBES,
            TIMING_RUNS,
        );
        let mut old_times = Vec::new();
        let mut old_max = 0;
        for _ in 0..TIMING_RUNS {
            let start = Instant::now();
            let owners = rendezvous_assign(&rcs, &cluster);
            old_times.push(start.elapsed());
            let mut per_node: BTreeMap<NodeId, usize> = BTreeMap::new();
            for n in owners.values() {
                *per_node.entry(*n).or_default() += 1;
            }
            old_max = per_node.values().copied().max().unwrap_or(0);
        }
        let (new, old) = disruption(
            node_count,
            seeds,
            &rcs,
            shoal::placement::assign::PROBES,
            true,
        );
        let mean = total as f64 / node_count as f64;
        for (name, t, max_load, d) in [
            ("multi-probe", t, max_load, new),
            ("rendezvous (old)", median(old_times), old_max, old),
        ] {
            println!(
                "| {node_count} | {total} | {name} | {} | {max_load} ({mean:.1}) | {:.1} / {:.1} | {:.3} | {:.3} | {seeds} |",
                ms(t),
                d.join_moved,
                d.join_ideal,
                d.join,
                d.leave
            );
        }
    }

    let large = workload(LARGE_RCS);
    let large_total = LARGE_RCS * REPLICAS as usize;
    let large_mean = large_total as f64 / LARGE_NODES as f64;
    println!("\n#### Probe count\n");
    println!(
        "`PROBES` chosen here: time and max load of one assignment ({RCS} RCs × {REPLICAS} over \
         1,000 nodes: median of {TIMING_RUNS}; {LARGE_RCS} RCs × {REPLICAS} over {LARGE_NODES} \
         nodes: one run), and disruption at 1,000 nodes ({SWEEP_SEEDS} seeds).\n"
    );
    println!(
        "| probes | assign 1k nodes | max load (10.0) | join moved_ratio | leave moved_ratio | assign 10k nodes × 1M | max load ({large_mean:.1}) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let thousand = nodes(1_000, 42);
    let ten_thousand = nodes(LARGE_NODES, 42);
    for probes in SWEEP {
        let (t, max_load) = time_assign(&rcs, &thousand, probes, TIMING_RUNS);
        let (d, _) = disruption(1_000, SWEEP_SEEDS, &rcs, probes, false);
        let (big_t, big_max) = time_assign(&large, &ten_thousand, probes, 1);
        println!(
            "| {probes} | {} | {max_load} | {:.3} | {:.3} | {:.2} s | {big_max} |",
            ms(t),
            d.join,
            d.leave,
            big_t.as_secs_f64()
        );
    }

    println!("\n#### A million replicas\n");
    let (t, max_load) = time_assign(&large, &ten_thousand, shoal::placement::assign::PROBES, 3);
    let (d, _) = disruption(
        LARGE_NODES,
        LARGE_SEEDS,
        &large,
        shoal::placement::assign::PROBES,
        false,
    );
    println!(
        "{LARGE_RCS} RCs × {REPLICAS} replicas over {LARGE_NODES} nodes, `PROBES` = {}: one \
         assignment (median of 3), and moved / ideal when one node joins or leaves \
         (mean of {LARGE_SEEDS} seeds).\n",
        shoal::placement::assign::PROBES
    );
    println!(
        "| nodes | replicas | assign (median) | max load (mean) | join moved / ideal | join moved_ratio | leave moved_ratio | old rendezvous, one run |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let start = Instant::now();
    std::hint::black_box(rendezvous_assign(&large, &ten_thousand));
    let old = start.elapsed();
    println!(
        "| {LARGE_NODES} | {large_total} | {:.2} s | {max_load} ({large_mean:.1}) | {:.1} / {:.1} | {:.3} | {:.3} | {:.1} s |",
        t.as_secs_f64(),
        d.join_moved,
        d.join_ideal,
        d.join,
        d.leave,
        old.as_secs_f64()
    );

    println!("\n#### A full cluster\n");
    println!(
        "{RCS} RCs × {REPLICAS} replicas over 1,000 nodes that each have room for exactly \
         {REPLICAS} (requests = capacity): the last replicas walk far to find the few nodes \
         left with room, and every surge slot fits nowhere (median of {SATURATED_RUNS}).\n"
    );
    println!("| algorithm | assign (median) | placed | surge placed |");
    println!("|---|---:|---:|---:|");
    let full = full_cluster(1_000, 42);
    let (mut new_times, mut old_times) = (Vec::new(), Vec::new());
    let (mut placed, mut surge, mut old_placed) = (0, 0, 0);
    for _ in 0..SATURATED_RUNS {
        let start = Instant::now();
        let a = assign(&rcs, &full);
        new_times.push(start.elapsed());
        placed = a.placed();
        surge = a
            .usable_nodes()
            .iter()
            .map(|n| a.surge_for(*n).count())
            .sum::<usize>();
        let start = Instant::now();
        old_placed = rendezvous_assign(&rcs, &full).len();
        old_times.push(start.elapsed());
    }
    println!(
        "| multi-probe | {} | {placed} | {surge} |",
        ms(median(new_times))
    );
    println!(
        "| rendezvous (old) | {} | {old_placed} | 0 |",
        ms(median(old_times))
    );

    let cluster = thousand;
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
