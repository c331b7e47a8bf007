//! Garbage collection: tombstones of deleted RCs and services, and the
//! decisions that forgot nodes, removed once no peer can bring back what
//! they deleted.
//!
//! **The danger.** A tombstone is what makes a delete win over the older
//! writes of the deleted object. Drop it while some peer still holds an
//! older live copy (it was partitioned, or down, when the delete spread),
//! and that copy comes back through anti-entropy as if new: the deleted RC
//! runs again. A horizon on the clock alone ("collect tombstones older
//! than a week") trusts that no peer is ever away that long; Cassandra's
//! `gc_grace_seconds` is that bet, and a node back after it resurrects data.
//!
//! **The choice: acknowledgement by every known node, then a horizon.**
//! Time proposes, acknowledgements decide:
//!
//! 1. Every peer proposes the same *cutoff* ([`cutoff`]: its clock minus a
//!    grace, rounded down to an epoch, so peers with roughly synchronized
//!    clocks propose the same one). A record is *settled* below a cutoff
//!    when every stamp it carries is older.
//! 2. Every peer publishes, in its own node record (one writer, replicated
//!    like the rest of its record), a [`GcAck`]: its cutoff and a hash of
//!    every settled record it holds (RCs, services, node decisions, their
//!    digest entries).
//! 3. A peer collects below cutoff C only when every node it knows (every
//!    node record in its state, its own included — down ones too, until
//!    they are forgotten) acknowledges C with the same hash as its own, or
//!    has already collected below C ([`ready`]). Equal hashes mean every
//!    known node holds exactly the same settled records, tombstones
//!    included, so none of them holds an older live copy of a deleted
//!    object. The settled tombstones (and removed-node decisions) are then
//!    dropped ([`DesiredState::collect`]), and the peer's *horizon*
//!    (`collected_below_ms`) moves to C.
//!
//! A peer that is partitioned or down keeps its last acknowledgement in
//! everyone's state, so nobody collects past it until it is back and has
//! caught up: safety needs no bound on partitions. Liveness needs one: a
//! node down for good blocks collection until it is forgotten
//! (`--forget-down-after`, a day by default), which removes its record.
//!
//! **After the horizon.** Two rules keep collected objects collected:
//! - *Fence* ([`DesiredState::merge_delta`]): a record below our horizon
//!   for a name we do not hold is dropped on arrival. Every known node held
//!   the same settled records when we collected, so such a record can only
//!   come from a node outside that set: a forgotten node that came back
//!   with its old state.
//!   Node decisions are fenced by what collection takes, not by name: a
//!   settled removal (its binding's stamp included) is dropped held or not,
//!   and every other decision passes — a live node's old binding must
//!   reach a peer that took the horizon before it learnt the binding.
//! - *Catch up* ([`ClusterState::adopt_horizon`]): digests carry the
//!   sender's horizon. A peer behind it drops its own records below that
//!   horizon that the sender does not hold (collected there; of node
//!   decisions removals, the only ones collection takes, and those of
//!   nodes the sender forgot whole), and node records of nodes the sender
//!   does not know and that it does not see alive (forgotten there), then
//!   takes the horizon, at most one epoch past its own cutoff. That is how a
//!   forgotten node that comes back stops running a deleted RC, and how a
//!   peer whose acknowledgement was the last one needed catches up.
//!
//! **What it costs.** Writes older than the horizon from outside the
//! acknowledging set are lost by design: a node forgotten while it held a
//! write nobody else had loses that write when it returns. A clock set far
//! behind proposes an older cutoff and delays collection (hashes differ);
//! it never makes collection unsafe, because a node's new writes are
//! stamped after everything it saw and after its own cutoff. Catching up
//! on such a node takes a horizon capped by its own clock: a deleted RC
//! stamped between the capped and the real horizon stays on that node (and
//! may run there) until its clock reaches it; the others fence its pushes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::desired::{DesiredDelta, DesiredState};
use crate::digest::Digest;
use crate::hlc::Hlc;
use crate::node::NodeId;
use crate::register::encoding;
use crate::sync::ClusterState;

/// What a node publishes about collection, in its own node record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GcAck {
    /// The cutoff (ms since the epoch) this node proposes; 0: none yet.
    pub cutoff_ms: u64,
    /// Hash of the records it holds that are settled below `cutoff_ms`.
    pub settled: u64,
    /// Its horizon: it collected below this.
    pub collected_below_ms: u64,
}

/// What a collection (or catching up with a horizon) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub rcs: Vec<String>,
    pub services: Vec<String>,
    /// Node decisions (removed nodes) collected.
    pub nodes: Vec<NodeId>,
    /// Node records dropped while catching up with a horizon.
    pub node_records: Vec<NodeId>,
}

impl Collected {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.rcs.len() + self.services.len() + self.nodes.len() + self.node_records.len()
    }
}

/// The cutoff a peer proposes at `now_ms`: `grace_ms` ago, rounded down to
/// a multiple of `epoch_ms` (so that peers agree for a whole epoch).
pub fn cutoff(now_ms: u64, grace_ms: u64, epoch_ms: u64) -> u64 {
    let at = now_ms.saturating_sub(grace_ms);
    at - at % epoch_ms.max(1)
}

/// Whether a peer whose own acknowledgement is `mine` may collect below
/// `mine.cutoff_ms`: every known node's acknowledgement (`None`: it
/// published none) says the same cutoff and hash, or a horizon at or past
/// it.
pub fn ready<'a>(mine: &GcAck, known: impl IntoIterator<Item = Option<&'a GcAck>>) -> bool {
    if mine.cutoff_ms == 0 || mine.cutoff_ms <= mine.collected_below_ms {
        return false;
    }
    known.into_iter().all(|ack| {
        ack.is_some_and(|a| {
            (a.cutoff_ms == mine.cutoff_ms && a.settled == mine.settled)
                || a.collected_below_ms >= mine.cutoff_ms
        })
    })
}

/// The furthest horizon a peer whose own cutoff is `cutoff_ms` takes from
/// another's digest: one epoch past its cutoff. An honest horizon is a
/// cutoff every known node proposed, so it is not past ours unless our
/// clock is behind by more than an epoch; then we take this much now and
/// the rest as our clock moves on (every digest offers it again). Taking
/// less is sound: what the sender lacks below its horizon it collected,
/// so below a lower one too. Without a cap, a member's digest claiming a
/// horizon far ahead (`u64::MAX`) would fence every write made before it
/// at every peer: no new RC or service would ever be taken again.
pub fn horizon_cap(cutoff_ms: u64, epoch_ms: u64) -> u64 {
    cutoff_ms.saturating_add(epoch_ms.max(1))
}

/// Settled below `cutoff_ms`: every stamp is older (a record with no stamp
/// at all is not settled: it holds nothing to collect).
pub fn settled(max_stamp: Option<Hlc>, cutoff_ms: u64) -> bool {
    max_stamp.is_some_and(|s| s.physical_ms < cutoff_ms)
}

impl DesiredState {
    /// The horizon: records below it were collected here.
    pub fn collected_below_ms(&self) -> u64 {
        self.collected_below_ms
    }

    /// Hash of the records settled below `cutoff_ms` (their digest
    /// entries, in key order): equal on two peers iff they hold the same
    /// settled records.
    pub fn settled_hash(&self, cutoff_ms: u64) -> u64 {
        let mut h = Xxh3::new();
        for (name, record) in self.summarized() {
            if settled(record.get().max_stamp(), cutoff_ms) {
                h.update(b"rc\0");
                h.update(name.as_bytes());
                h.update(&encoding(record.summary()));
            }
        }
        for (name, record) in self.summarized_services() {
            if settled(record.get().max_stamp(), cutoff_ms) {
                h.update(b"service\0");
                h.update(name.as_bytes());
                h.update(&encoding(record.summary()));
            }
        }
        for (node, decision) in self.nodes.iter() {
            if settled(decision.max_stamp(), cutoff_ms) {
                h.update(b"node\0");
                h.update(&node.0.to_le_bytes());
                h.update(&encoding(&decision.stamps()));
            }
        }
        h.digest()
    }

    /// Drops the tombstones (RCs, services) and removed-node decisions
    /// settled below `cutoff_ms`, and moves the horizon there. Call only
    /// when [`ready`] says every known node holds the same settled records.
    pub fn collect(&mut self, cutoff_ms: u64) -> Collected {
        let mut out = Collected::default();
        if cutoff_ms <= self.collected_below_ms {
            return out;
        }
        self.rcs.retain(|name, record| {
            let r = record.get();
            let doomed = r.is_deleted() && settled(r.max_stamp(), cutoff_ms);
            if doomed {
                out.rcs.push(name.clone());
            }
            !doomed
        });
        self.services.retain(|name, record| {
            let r = record.get();
            let doomed = r.is_deleted() && settled(r.max_stamp(), cutoff_ms);
            if doomed {
                out.services.push(name.clone());
            }
            !doomed
        });
        out.nodes = self
            .nodes
            .retain_unless(|_, d| d.is_removed() && settled(d.max_stamp(), cutoff_ms));
        self.collected_below_ms = cutoff_ms;
        out
    }

    /// The fence: drops from `delta` every record below our horizon for a
    /// name we do not hold (see the module doc). Records we hold merge as
    /// usual.
    pub(crate) fn fence(&self, delta: &mut DesiredDelta) {
        let horizon = self.collected_below_ms;
        if horizon == 0 {
            return;
        }
        delta
            .rcs
            .retain(|name, r| self.rcs.contains_key(name) || !settled(r.max_stamp(), horizon));
        delta
            .services
            .retain(|name, r| self.services.contains_key(name) || !settled(r.max_stamp(), horizon));
        // Only what collection takes is fenced: a settled removal (its
        // binding's stamp included, as in `collect`). Every peer past the
        // horizon dropped it, so only a stale copy can carry one, and it
        // is dropped whether or not we hold the node: held or not would
        // make a stale binding arriving first let a stale removal in
        // after it, depending on delivery order. Any other decision —
        // a live node's binding or cordon, never collected — passes: a
        // peer that just took the horizon must still learn them.
        delta
            .nodes
            .retain(|_, d| !(d.is_removed() && settled(d.max_stamp(), horizon)));
    }
}

impl ClusterState {
    /// Catches up with the horizon of the peer whose full `digest` this
    /// is, when it is ahead of ours: drops our records below it that the
    /// peer does not hold (node decisions: removals, and those of nodes it
    /// forgot whole that are not `alive(node)`), and the node records of
    /// nodes it does not know unless `alive(node)`, then takes its horizon,
    /// at most `at_most_ms` (see [`horizon_cap`]). Empty when ours is not
    /// behind.
    pub fn adopt_horizon(
        &mut self,
        digest: &Digest,
        at_most_ms: u64,
        alive: impl Fn(NodeId) -> bool,
    ) -> Collected {
        let horizon = digest.collected_below_ms.min(at_most_ms);
        let mut out = Collected::default();
        if horizon <= self.desired.collected_below_ms {
            return out;
        }
        let desired = &mut self.desired;
        desired.rcs.retain(|name, record| {
            let gone =
                settled(record.get().max_stamp(), horizon) && !digest.desired.contains_key(name);
            if gone {
                out.rcs.push(name.clone());
            }
            !gone
        });
        desired.services.retain(|name, record| {
            let gone =
                settled(record.get().max_stamp(), horizon) && !digest.services.contains_key(name);
            if gone {
                out.services.push(name.clone());
            }
            !gone
        });
        // Removals, as in `collect`; and the decisions (a binding) of a node
        // the sender forgot whole (no decision, no record) and we do not see
        // alive: what a node away during its `node delete` still holds, and
        // would otherwise bind again everywhere. A live node's binding is
        // never dropped: the sender omitting it says nothing (a member can
        // send any digest), and dropping it would let the next binding of
        // the id in unopposed.
        out.nodes = desired.nodes.retain_unless(|node, d| {
            let forgotten_there = !alive(node) && !digest.observed.contains_key(&node);
            (d.is_removed() || forgotten_there)
                && settled(d.max_stamp(), horizon)
                && !digest.nodes.contains_key(&node)
        });
        let unknown: BTreeSet<NodeId> = self
            .observed
            .nodes()
            .map(|(node, _)| node)
            .filter(|node| !digest.observed.contains_key(node) && !alive(*node))
            .collect();
        for node in unknown {
            self.observed.forget(node);
            out.node_records.push(node);
        }
        desired.collected_below_ms = horizon;
        out
    }
}
