//! `gc`: tombstones are collected, and nothing deleted comes back.
//!
//! Six peers run four RCs. One peer (the *returner*) saves its state and
//! crashes; another (the *partitioned* one) is cut off. Two RCs are deleted
//! meanwhile. The run checks, with real peer cores and the real protocol:
//!
//! 1. Nothing is collected while the partitioned peer is away, even long
//!    past the grace: its acknowledgement is missing (`blocked_while_away`).
//! 2. After the heal, and once the crashed peer is forgotten
//!    (`forget_down_after`), every live peer collects both tombstones and
//!    the forgotten node's decision (`collected_at_s`).
//! 3. The returner resumes from its old state, in which both RCs are live.
//!    No other peer ever sees them live again (`resurrected`: any sample of
//!    any other peer holding one live), the returner drops them once it
//!    meets the cluster's horizon (`returner_caught_up_s`), and no pod of
//!    theirs runs at the end (`stale_pods_at_end`).
//! 4. Applying one of them again after all that creates it everywhere:
//!    the fence stops old copies, not new writes (`recreated_everywhere`).

use std::fmt;
use std::time::Duration;

use shoal::peer::{Command, PeerConfig};

use super::cluster::{PeerCluster, node_of, secs};
use super::{PeerOptions, workload_rc};
use crate::peer_node::wall;
use crate::queue::Micros;
use crate::scenarios::cluster::MS;
use crate::world::Slot;

/// What the `gc` scenario found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcReport {
    pub seed: u64,
    /// The tombstones were still held while the partitioned peer was away.
    pub blocked_while_away: bool,
    /// Seconds after the deletes until every live peer had collected.
    pub collected_at_s: Option<f64>,
    /// The forgotten node's decision was collected too.
    pub decision_collected: bool,
    /// Samples in which a peer other than the returner held a deleted RC live.
    pub resurrected: usize,
    /// Seconds after its restart until the returner dropped the deleted RCs.
    pub returner_caught_up_s: Option<f64>,
    /// Pods of the deleted RCs running anywhere at the end.
    pub stale_pods_at_end: usize,
    /// A re-apply after collection reached every peer.
    pub recreated_everywhere: bool,
    pub trace_hash: u64,
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gc seed {}: blocked while away {}, collected at {:?} s, decision collected {}, \
             resurrected {}, returner caught up at {:?} s, stale pods {}, recreated {}, trace {:016x}",
            self.seed,
            self.blocked_while_away,
            self.collected_at_s,
            self.decision_collected,
            self.resurrected,
            self.returner_caught_up_s,
            self.stale_pods_at_end,
            self.recreated_everywhere,
            self.trace_hash
        )
    }
}

/// Short timings so that the horizon passes within a run.
fn tune(config: &mut PeerConfig) {
    config.gc_grace = Duration::from_secs(5);
    config.gc_epoch = Duration::from_secs(1);
    config.forget_down_after = Duration::from_secs(40);
}

const PEERS: usize = 6;
const RETURNER: Slot = 5;
const PARTITIONED: Slot = 4;

pub fn run(o: &PeerOptions) -> GcReport {
    let mut c = PeerCluster::new(o);
    c.tune = tune;
    c.form(PEERS);
    c.run_until(secs(2));
    for i in 0..4 {
        c.apply(0, workload_rc(i, 1));
    }
    c.settle(secs(1) / 2, c.now() + secs(60));
    let deleted = [workload_rc(0, 0).name, workload_rc(1, 0).name];

    let persisted = {
        let now = wall(c.now());
        c.world.node(RETURNER).map(|n| n.peer.persisted(now))
    }
    .expect("the returner runs");
    c.crash(RETURNER, false);
    c.world.net.partition([(c.world.addr(PARTITIONED), 1)]);
    for name in &deleted {
        let _ = c.command(0, Command::Delete { name: name.clone() });
    }
    let t_delete = c.now();

    // 1. Far past the grace, with one peer away: nothing collected.
    c.run_until(t_delete + secs(20));
    let blocked_while_away = deleted.iter().all(|name| holds_record(&c, 0, name));

    // 2. Heal; once the crashed peer is forgotten, everything collects.
    c.world.net.heal();
    let mut collected_at = None;
    let mut decision_collected = false;
    while c.now() < t_delete + secs(150) {
        c.run_until(c.now() + secs(1));
        let collected = c
            .alive_slots()
            .into_iter()
            .all(|s| deleted.iter().all(|name| !holds_record(&c, s, name)));
        if collected && collected_at.is_none() {
            collected_at = Some(c.now());
        }
        decision_collected = c.alive_slots().into_iter().all(|s| {
            c.world.node(s).is_some_and(|n| {
                n.peer
                    .state()
                    .desired
                    .nodes()
                    .get(node_of(RETURNER))
                    .is_none()
            })
        });
        if collected && decision_collected {
            break;
        }
    }

    // 3. The returner comes back with both RCs live in its state.
    let seeds = [c.world.addr(0)];
    c.resume(RETURNER, persisted, None, &seeds);
    let t_return = c.now();
    let mut resurrected = 0;
    let mut caught_up = None;
    while c.now() < t_return + secs(30) {
        c.run_until(c.now() + 100 * MS);
        for s in c.alive_slots() {
            let live = deleted.iter().any(|name| holds_live(&c, s, name));
            if s != RETURNER && live {
                resurrected += 1;
            }
            if s == RETURNER && !live && caught_up.is_none() {
                caught_up = Some(c.now());
            }
        }
    }
    let stale_pods_at_end = c
        .running_counts()
        .iter()
        .filter(|(pod, _)| deleted.contains(&pod.rc))
        .map(|(_, n)| *n)
        .sum();

    // 4. A new write of a collected name is not fenced off.
    c.apply(1, workload_rc(0, 1));
    c.run_until(c.now() + secs(10));
    let recreated_everywhere = c
        .alive_slots()
        .into_iter()
        .all(|s| holds_live(&c, s, &deleted[0]));

    let since = |t: Option<Micros>, from: Micros| t.map(|t| (t - from) as f64 / secs(1) as f64);
    GcReport {
        seed: o.seed,
        blocked_while_away,
        collected_at_s: since(collected_at, t_delete),
        decision_collected,
        resurrected,
        returner_caught_up_s: since(caught_up, t_return),
        stale_pods_at_end,
        recreated_everywhere,
        trace_hash: c.world.trace_hash(),
    }
}

/// The peer in `slot` holds a record (live or tombstone) for `name`.
fn holds_record(c: &PeerCluster, slot: Slot, name: &str) -> bool {
    c.world
        .node(slot)
        .is_some_and(|n| n.peer.state().desired.record(name).is_some())
}

/// The peer in `slot` holds `name` as a live RC.
fn holds_live(c: &PeerCluster, slot: Slot, name: &str) -> bool {
    c.world
        .node(slot)
        .is_some_and(|n| n.peer.state().desired.get(name).is_some())
}
