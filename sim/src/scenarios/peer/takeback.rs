//! `takeback`: a node is forgotten while it is away and takes the removal
//! back when it returns; every peer ends with the same view.
//!
//! Five peers run a light workload (two RCs of one replica). One peer (the
//! *returner*) saves its state and crashes; the others forget it after
//! `forget_down_after` (a removal naming the record version they hold),
//! and a third peer also deletes it by command (`shoal node delete`), so
//! two removals with different stamps race. The returner then resumes
//! from its old state, in which it is not removed: it learns the removals
//! in whatever order the network delivers them, takes them back with a
//! newer stamp and registers again. The run checks that every live peer
//! ends holding the same node decisions and the same observed records
//! (`agreed_at_s`), that the returner is listed everywhere and not removed
//! (`returner_back`), and that the replicas run exactly once (`exact`).
//! Before order-independent removal, a peer that met the returner's new
//! record while a removal was in force dropped it and one that met the
//! take-back first kept its old record: the views differed.

use std::fmt;
use std::time::Duration;

use shoal::peer::{Command, PeerConfig};

use super::cluster::{PeerCluster, node_of, secs};
use super::{PeerOptions, workload_rc};
use crate::peer_node::wall;
use crate::queue::Micros;
use crate::scenarios::cluster::MS;
use crate::world::Slot;

/// What the `takeback` scenario found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TakebackReport {
    pub seed: u64,
    /// Every other peer had forgotten the returner while it was away.
    pub forgotten_while_away: bool,
    /// Seconds after the returner resumed until every live peer held the
    /// same node decisions and observed records, the returner listed.
    pub agreed_at_s: Option<f64>,
    /// At the end, every peer lists the returner and none holds it removed.
    pub returner_back: bool,
    /// At the end, every declared replica runs exactly once.
    pub exact: bool,
    pub trace_hash: u64,
}

impl fmt::Display for TakebackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "takeback seed {}: forgotten while away {}, agreed at {:?} s, returner back {}, \
             exact {}, trace {:016x}",
            self.seed,
            self.forgotten_while_away,
            self.agreed_at_s,
            self.returner_back,
            self.exact,
            self.trace_hash
        )
    }
}

/// Short timings so that the removal happens within a short run.
fn tune(config: &mut PeerConfig) {
    config.forget_down_after = Duration::from_secs(3);
}

const PEERS: usize = 5;
const RETURNER: Slot = 4;
/// The peer that also deletes the returner by command.
const DELETER: Slot = 2;

pub fn run(o: &PeerOptions) -> TakebackReport {
    let mut c = PeerCluster::new(o);
    c.tune = tune;
    c.form(PEERS);
    c.run_until(secs(2));
    for i in 0..2 {
        c.apply(0, workload_rc(i, 1));
    }
    c.settle(secs(1) / 2, c.now() + secs(20));

    let persisted = {
        let now = wall(c.now());
        c.world.node(RETURNER).map(|n| n.peer.persisted(now))
    }
    .expect("the returner runs");
    c.crash(RETURNER, false);
    let t_crash = c.now();
    // Forgotten by `forget_down_after`; a node delete races with it.
    let mut forgotten_while_away = false;
    let mut deleted = false;
    while c.now() < t_crash + secs(15) && !forgotten_while_away {
        c.run_until(c.now() + 250 * MS);
        if !deleted && c.now() >= t_crash + secs(3) {
            let node = node_of(RETURNER);
            deleted = c
                .command(DELETER, Command::RemoveNode { node })
                .is_some_and(|r| r.is_ok());
        }
        forgotten_while_away = c.alive_slots().into_iter().all(|s| {
            c.world.node(s).is_some_and(|n| {
                let state = n.peer.state();
                state.desired.nodes().is_removed(node_of(RETURNER))
                    && state.observed.get(node_of(RETURNER)).is_none()
            })
        });
    }

    let seeds = [c.world.addr(0)];
    c.resume(RETURNER, persisted, None, &seeds);
    let t_return = c.now();
    let mut agreed_at = None;
    while c.now() < t_return + secs(20) {
        c.run_until(c.now() + 250 * MS);
        if agreed(&c) {
            agreed_at = Some(c.now());
            break;
        }
    }
    // Later writes (pod statuses, collection acknowledgements) keep
    // flowing: a while later the peers must agree again, the returner
    // still listed (a stale removal arriving late must not drop it).
    c.run_until(c.now() + secs(2));
    let again = c.now() + secs(5);
    while !agreed(&c) && c.now() < again {
        c.run_until(c.now() + 100 * MS);
    }
    if !agreed(&c) {
        agreed_at = None;
    }
    let returner_back = c.alive_slots().into_iter().all(|s| {
        c.world.node(s).is_some_and(|n| {
            let state = n.peer.state();
            !state.desired.nodes().is_removed(node_of(RETURNER))
                && state.observed.get(node_of(RETURNER)).is_some()
        })
    });
    let exact = c.settle(secs(1) / 2, c.now() + secs(20)).is_some();

    let since = |t: Option<Micros>, from: Micros| t.map(|t| (t - from) as f64 / secs(1) as f64);
    TakebackReport {
        seed: o.seed,
        forgotten_while_away,
        agreed_at_s: since(agreed_at, t_return),
        returner_back,
        exact,
        trace_hash: c.world.trace_hash(),
    }
}

/// Every live peer holds the same node decisions and observed records,
/// and lists every live peer (the returner included).
fn agreed(c: &PeerCluster) -> bool {
    let slots = c.alive_slots();
    let states: Vec<_> = slots
        .iter()
        .filter_map(|&s| c.world.node(s).map(|n| n.peer.state()))
        .collect();
    let Some(first) = states.first() else {
        return false;
    };
    let all_listed = slots
        .iter()
        .all(|&s| first.observed.get(node_of(s)).is_some());
    all_listed
        && states
            .iter()
            .all(|s| s.desired.nodes() == first.desired.nodes() && s.observed == first.observed)
}
