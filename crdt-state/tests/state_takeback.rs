//! Node removal and its take-back as a CRDT: whatever order and however
//! often the writes arrive, replicas end with the same whole `ClusterState`.
//!
//! Three writers: node X (writer 0), which reports, binds its key and takes
//! back its own removal as the peer does; and two others (writers 1, 2),
//! which report, remove X or each other, and claim X's id with another key
//! after a removal (a new machine reusing a deleted id). Writers pull from
//! each other at random, so removals name the versions they really held.
//! Every delta they produced is then delivered to fresh replicas in a
//! random order with duplicates; collection then runs on every replica,
//! and the deltas are delivered once more (stale copies after collection).

mod state_support;

use proptest::prelude::*;
use shoal_crdt_state::gc;
use shoal_crdt_state::hlc::{Clock, DEFAULT_MAX_DRIFT_MS};
use shoal_crdt_state::identity::PublicKey;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodPhase;
use shoal_crdt_state::sync::{ClusterState, Delta};
use state_support::{node_info, pod_status};

const NODES: [NodeId; 3] = [NodeId(0x42), NodeId(0x1001), NodeId(0x1002)];

#[derive(Debug, Clone)]
enum Op {
    /// The writer reports about itself (info `variant`).
    Report { variant: u8 },
    /// The writer reports a pod status (only once it has a record).
    Pod { index: u32, restarts: u32 },
    /// The writer removes node `of` (never itself), naming what it holds.
    Remove { of: usize },
    /// The writer, seeing itself removed or its record forgotten, takes
    /// the removal back and registers again (the peer's
    /// `follow_node_decisions`).
    TakeBack,
    /// The writer announces key `key` for node `of`'s id (its own at first
    /// start, or another node's id after a release).
    Bind { of: usize, key: u8 },
    /// `to` pulls what it lacks from `from`.
    Pull { from: usize },
}

#[derive(Debug, Clone)]
struct Step {
    writer: usize,
    op: Op,
    advance_ms: u64,
}

fn arb_step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        3 => (0u8..3).prop_map(|variant| Op::Report { variant }),
        2 => (0u32..3, 0u32..3).prop_map(|(index, restarts)| Op::Pod { index, restarts }),
        2 => (0usize..3).prop_map(|of| Op::Remove { of }),
        2 => Just(Op::TakeBack),
        1 => (0usize..3, 0u8..3).prop_map(|(of, key)| Op::Bind { of, key }),
        3 => (0usize..3).prop_map(|from| Op::Pull { from }),
    ];
    (0usize..3, op, 0u64..4).prop_map(|(writer, op, advance_ms)| Step {
        writer,
        op,
        advance_ms,
    })
}

struct Writer {
    node: NodeId,
    clock: Clock,
    state: ClusterState,
}

/// Runs the steps; returns every delta the writers produced and their
/// final states.
fn run(steps: &[Step]) -> (Vec<Delta>, Vec<ClusterState>) {
    let mut now_ms = 1_700_000_000_000u64;
    let mut writers: Vec<Writer> = NODES
        .iter()
        .map(|&node| Writer {
            node,
            clock: Clock::new(node, DEFAULT_MAX_DRIFT_MS),
            state: ClusterState::new(),
        })
        .collect();
    let mut deltas = Vec::new();
    for step in steps {
        now_ms += step.advance_ms;
        if let Op::Pull { from } = step.op {
            if from != step.writer {
                let digest = writers[step.writer].state.digest();
                let delta = writers[from].state.missing_for(&digest);
                let w = &mut writers[step.writer];
                if let Some(newest) = w.state.merge_delta(delta) {
                    w.clock.observe(&newest, now_ms);
                }
            }
            continue;
        }
        let w = &mut writers[step.writer];
        let me = w.node;
        let delta: Delta = match step.op {
            Op::Report { variant } => w
                .state
                .set_node_info(me, node_info(&format!("{me}-{variant}")))
                .into(),
            Op::Pod { index, restarts } => {
                let status = pod_status("web", index, PodPhase::Running, restarts);
                w.state
                    .observed
                    .set_pod_status(me, status)
                    .map(Delta::from)
                    .unwrap_or_default()
            }
            Op::Remove { of } if NODES[of] != me => {
                let stamp = w.clock.tick(now_ms);
                w.state.remove_node(NODES[of], true, stamp).into()
            }
            Op::Remove { .. } => Delta::default(),
            Op::TakeBack => {
                let nodes = w.state.desired.nodes();
                let forgotten = w.state.observed.get(me).is_none()
                    && nodes.get(me).is_some_and(|d| d.forgets_through.is_some());
                if nodes.is_removed(me) || forgotten {
                    let stamp = w.clock.tick(now_ms);
                    let mut delta: Delta = w.state.remove_node(me, false, stamp).into();
                    delta
                        .observed
                        .merge(w.state.set_node_info(me, node_info(&format!("{me}-back"))));
                    delta
                } else {
                    Delta::default()
                }
            }
            Op::Bind { of, key } => {
                let stamp = w.clock.tick(now_ms);
                w.state
                    .desired
                    .bind_key(NODES[of], PublicKey([key; 32]), stamp)
                    .into()
            }
            Op::Pull { .. } => unreachable!("handled above"),
        };
        if !delta.is_empty() {
            deltas.push(delta);
        }
    }
    let states = writers.into_iter().map(|w| w.state).collect();
    (deltas, states)
}

/// A deterministic order of `0..n` with duplicates, from `seed`: every
/// index once, shuffled, plus `n / 2` repeats at random places.
fn delivery_order(n: usize, seed: u64) -> Vec<usize> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    for _ in 0..n / 2 {
        let at = (next() % (order.len() as u64 + 1)) as usize;
        let index = (next() % n as u64) as usize;
        order.insert(at, index);
    }
    order
}

fn deliver(state: &mut ClusterState, deltas: &[Delta], order: &[usize]) {
    for &i in order {
        state.merge_delta(deltas[i].clone());
    }
}

/// Collects below a cutoff past every stamp, as every replica may once
/// they all hold the same settled records (checked with `gc::ready`).
fn collect_everything(replicas: &mut [ClusterState]) -> Result<(), TestCaseError> {
    let cutoff = u64::MAX / 2;
    let acks: Vec<gc::GcAck> = replicas
        .iter()
        .map(|r| gc::GcAck {
            cutoff_ms: cutoff,
            settled: r.desired.settled_hash(cutoff),
            collected_below_ms: r.desired.collected_below_ms(),
        })
        .collect();
    for (i, replica) in replicas.iter_mut().enumerate() {
        prop_assert!(gc::ready(&acks[i], acks.iter().map(Some)), "not ready");
        replica.desired.collect(cutoff);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn removals_take_backs_and_bindings_converge_in_any_order_with_duplicates(
        steps in prop::collection::vec(arb_step(), 0..50),
        seeds in prop::array::uniform3(any::<u64>()),
    ) {
        let (deltas, writers) = run(&steps);
        let mut replicas: Vec<ClusterState> = seeds
            .iter()
            .map(|&seed| {
                let mut state = ClusterState::new();
                deliver(&mut state, &deltas, &delivery_order(deltas.len(), seed));
                state
            })
            .collect();
        for replica in &replicas[1..] {
            prop_assert_eq!(replica, &replicas[0], "delivery order changed the state");
        }
        // A writer holds part of what was written: everything makes it equal.
        for writer in writers {
            let mut writer = writer;
            deliver(&mut writer, &deltas, &delivery_order(deltas.len(), seeds[0]));
            prop_assert_eq!(&writer, &replicas[0], "a writer differs after all deltas");
        }
        // Collection, then every delta again (stale copies): still equal.
        collect_everything(&mut replicas)?;
        for (replica, seed) in replicas.iter_mut().zip(seeds) {
            deliver(replica, &deltas, &delivery_order(deltas.len(), seed.rotate_left(17)));
        }
        for replica in &replicas[1..] {
            prop_assert_eq!(replica, &replicas[0], "collection made replicas differ");
        }
    }

    #[test]
    fn whole_states_with_removals_merge_as_a_join(
        steps in prop::collection::vec(arb_step(), 0..50),
    ) {
        let (_, writers) = run(&steps);
        let merge = |a: &mut ClusterState, b: &ClusterState| {
            a.merge(b);
        };
        let join = |a: &ClusterState, b: &ClusterState| {
            let mut out = a.clone();
            merge(&mut out, b);
            out
        };
        let (a, b, c) = (&writers[0], &writers[1], &writers[2]);
        prop_assert_eq!(join(a, b), join(b, a), "commutative");
        prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)), "associative");
        prop_assert_eq!(&join(a, a), a, "idempotent");
    }
}
