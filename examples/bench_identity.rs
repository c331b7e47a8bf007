//! Cost of signed node records: CPU to sign and to verify one record
//! (ed25519 via ring), and the bytes a signature and a key binding add.
//! Prints Markdown rows for the identity section of BENCHMARKS.md.
//!
//! `cargo run --release -p shoal --example bench_identity`

use std::time::Instant;

use shoal::peer::{Ed25519, NodeKeys};
use shoal_crdt_state::identity::{self, RecordSigner, Signature};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::ObservedDelta;
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus};
use shoal_crdt_state::spec::{Resources, TemplateHash};
use shoal_crdt_state::sync::ClusterState;
use shoal_crdt_state::{Hlc, wire};

const RUNS: u32 = 20_000;

/// A node record as a busy node publishes it: `pods` pod statuses.
fn record_state(node: NodeId, pods: u32, keys: &NodeKeys) -> ClusterState {
    let mut state = ClusterState::new();
    state.desired.bind_key(
        node,
        keys.public_key(),
        Hlc::new(1_700_000_000_000, 0, node),
    );
    let room = Resources {
        cpu_millis: 8_000,
        memory_bytes: 16 << 30,
    };
    state.observed.set_node_info(
        node,
        NodeInfo {
            peer_addr: "192.168.1.20:7946".into(),
            api_addr: "192.168.1.20:7070".into(),
            version: "0.1.0".into(),
            ..NodeInfo::healthy("worker-17", room)
        },
    );
    for index in 0..pods {
        let status = PodStatus {
            id: PodId {
                rc: format!("web-{}", index % 7),
                index,
            },
            template_hash: TemplateHash(0x1234_5678_9abc_def0 + u64::from(index)),
            image: "registry.local/web:1.4.2".into(),
            phase: PodPhase::Running,
            ready: true,
            restarts: 0,
            last_error: None,
            preparing: None,
            ports: Vec::new(),
            claim: Some(42),
            available: true,
            stalled: None,
            started_ms: Some(1_700_000_000_000),
        };
        state.observed.set_pod_status(node, status).unwrap();
    }
    state.observed.sign(node, keys);
    state
}

fn micros_per(runs: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(runs)
}

fn main() {
    let node = NodeId(0x5eed);
    let keys = NodeKeys::from_seed(&[7; 32]);
    println!(
        "| pods in the record | record bytes (signed) | signature bytes | sign (µs) | verify (µs) |"
    );
    println!("|---|---|---|---|---|");
    for pods in [0u32, 10, 50] {
        let state = record_state(node, pods, &keys);
        let record = state.observed.get(node).unwrap().clone();
        let binding = state.desired.nodes().bound_key(node).copied();
        let mut unsigned = record.clone();
        unsigned.signature = Signature::default();
        let delta = |r| {
            wire::encoded_len(&ObservedDelta {
                nodes: [(node, r)].into(),
            })
        };
        let signed_len = delta(record.clone());
        let overhead = signed_len - delta(unsigned);
        let sign = micros_per(RUNS, || {
            std::hint::black_box(keys.sign(&identity::signed_bytes(node, &record)));
        });
        let verify = micros_per(RUNS, || {
            let ok = identity::check_record(binding.as_ref(), node, &record, &Ed25519).is_ok();
            assert!(std::hint::black_box(ok));
        });
        println!("| {pods} | {signed_len} | {overhead} | {sign:.1} | {verify:.1} |");
    }
    let state = record_state(node, 0, &keys);
    let with = wire::encoded_len(&state.desired.to_delta());
    println!();
    println!(
        "A key binding costs {with} bytes of desired state per node id, sent once; \
         every digest then carries an 8-byte hash of it per node."
    );
}
