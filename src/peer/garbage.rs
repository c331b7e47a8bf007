//! Garbage collection at the peer: publishing our acknowledgement,
//! collecting once every known node agrees, and catching up with a peer's
//! horizon. The rule and why it is safe: `shoal_crdt_state::gc`.
//!
//! Called from the anti-entropy timer (about once a second) and on every
//! digest that arrives. The settled hash is computed once per cutoff (an
//! epoch, a minute by default) and once per horizon move: hashing 20,000
//! records costs the driver milliseconds. A hash gone stale in between
//! only delays collection: before collecting, the peer hashes its state
//! again and collects only if it still matches what it published.

use std::collections::BTreeSet;
use std::time::Duration;

use shoal_crdt_state::gc::{self, Collected, GcAck};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::{Delta, Digest};

use super::io::{Output, PeerEvent};
use super::{Peer, ms};

/// Our last computed acknowledgement.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AckCache {
    ack: GcAck,
}

impl Peer {
    /// Collects when every known node acknowledges what we published
    /// last, then publishes our acknowledgement for the current cutoff.
    ///
    /// The check uses the acknowledgement we published a tick ago, not
    /// the one we are about to publish: the others publish theirs at
    /// their own ticks, so by ours they have had a period to answer the
    /// same cutoff (peers that tick in step would otherwise always see
    /// each other one cutoff behind). Our hash is checked again against
    /// the state we collect from.
    pub(super) fn collect_garbage(&mut self, now: Duration) {
        let me = self.config.node;
        if let Some(published) = self.state.observed.get(me).map(|r| r.gc)
            && self.may_collect(now)
        {
            let known = self.state.observed.nodes().map(|(_, r)| Some(&r.gc));
            if gc::ready(&published, known)
                && self.state.desired.settled_hash(published.cutoff_ms) == published.settled
            {
                let collected = self.state.desired.collect(published.cutoff_ms);
                self.after_collection(
                    now,
                    collected,
                    published.cutoff_ms,
                    "every known node acknowledged",
                );
            }
        }
        let ack = self.current_ack(now);
        self.publish_ack(now, ack);
    }

    /// Whether what we hold is the cluster's, so that "every known node
    /// acknowledged" means every node: we synced with a peer since start
    /// (or formed the cluster alone), no transfer is arriving, and every
    /// member SWIM shows has a record here. A joiner whose seeds did not
    /// answer, or whose transfer is still arriving, knows only itself: it
    /// collected alone, then fenced the older records on their way, and a
    /// peer behind that horizon caught up from its nearly empty digest.
    fn may_collect(&self, now: Duration) -> bool {
        self.synced_with_a_peer
            && !self.receiving_transfer(now)
            && self
                .members
                .keys()
                .all(|node| self.state.observed.get(*node).is_some())
    }

    /// Catches up with the horizon of the peer whose full digest this is,
    /// when it is ahead of ours (see `gc::ClusterState::adopt_horizon`).
    /// The horizon taken is capped at `gc::horizon_cap` of our own cutoff.
    pub(super) fn catch_up_horizon(&mut self, now: Duration, digest: &shoal_crdt_state::Digest) {
        let epoch = ms(self.config.gc_epoch);
        let cutoff = gc::cutoff(ms(now), ms(self.config.gc_grace), epoch);
        let horizon = digest
            .collected_below_ms
            .min(gc::horizon_cap(cutoff, epoch));
        if horizon <= self.state.desired.collected_below_ms() {
            return;
        }
        // Only once we hold all the sender holds. A peer that takes a
        // horizon first (a joiner whose transfer is still arriving) fences
        // every older record still on its way, and its digests, omitting
        // them, would make a peer behind it drop them too. Anti-entropy
        // brings what we lack; the next exchange catches up.
        if !self.state.digest().holds_all_of(digest) {
            self.stats.horizon_catch_ups_deferred += 1;
            return;
        }
        let seen: BTreeSet<NodeId> = self
            .state
            .desired
            .nodes()
            .iter()
            .map(|(node, _)| node)
            .chain(self.state.observed.nodes().map(|(node, _)| node))
            .filter(|&node| self.is_seen_live(node, now))
            .collect();
        let collected = self
            .state
            .adopt_horizon(digest, horizon, |node| seen.contains(&node));
        self.after_collection(now, collected, horizon, "a peer's horizon was ahead");
        let ack = self.current_ack(now);
        self.publish_ack(now, ack);
    }

    /// Leaves out of our answer to `digest` the nodes its sender
    /// collected: when its horizon is ahead of ours, the decisions and
    /// records of a node its digest omits whole, settled below that
    /// horizon, that SWIM does not show alive here. A peer back after an
    /// absence catches up only once it holds all the sender holds, and
    /// until then would hand back a node deleted while it was away, which
    /// would then be known again everywhere (and hold collection until
    /// forgotten again).
    pub(super) fn without_collected_nodes(
        &self,
        now: Duration,
        mut delta: Delta,
        digest: &Digest,
    ) -> Delta {
        let horizon = digest.collected_below_ms;
        if horizon <= self.state.desired.collected_below_ms() {
            return delta;
        }
        let nodes = self.state.desired.nodes();
        let collected_there = |node: NodeId| {
            !self.is_seen_live(node, now)
                && !digest.nodes.contains_key(&node)
                && !digest.observed.contains_key(&node)
                && nodes
                    .get(node)
                    .is_none_or(|d| gc::settled(d.max_stamp(), horizon))
        };
        delta
            .desired
            .nodes
            .retain(|node, _| !collected_there(*node));
        delta
            .observed
            .nodes
            .retain(|node, _| !collected_there(*node));
        delta
    }

    fn after_collection(
        &mut self,
        now: Duration,
        collected: Collected,
        horizon_ms: u64,
        why: &'static str,
    ) {
        self.state_changes += 1;
        if !collected.nodes.is_empty() {
            self.node_decision_changes += 1;
        }
        self.stats.collected += collected.len() as u64;
        if collected.is_empty() {
            return;
        }
        tracing::info!(
            horizon_ms,
            rcs = collected.rcs.len(),
            services = collected.services.len(),
            nodes = collected.nodes.len() + collected.node_records.len(),
            why,
            "garbage collected"
        );
        if !collected.rcs.is_empty() || !collected.node_records.is_empty() {
            self.rcs_dirty = true;
            self.placement_dirty = true;
            self.request_reconcile(now);
        }
        self.outputs.push_back(Output::Event(PeerEvent::Collected {
            rcs: collected.rcs.len(),
            services: collected.services.len(),
            nodes: collected.nodes.len() + collected.node_records.len(),
            horizon_ms,
        }));
    }

    /// Our acknowledgement for the cutoff at `now`, recomputed only when
    /// the cutoff or the horizon moved.
    fn current_ack(&mut self, now: Duration) -> GcAck {
        let cutoff = gc::cutoff(ms(now), ms(self.config.gc_grace), ms(self.config.gc_epoch));
        let horizon = self.state.desired.collected_below_ms();
        let cached = self.ack_cache;
        if cached.ack.cutoff_ms == cutoff && cached.ack.collected_below_ms == horizon {
            return cached.ack;
        }
        let ack = GcAck {
            cutoff_ms: cutoff,
            settled: self.state.desired.settled_hash(cutoff),
            collected_below_ms: horizon,
        };
        self.ack_cache = AckCache { ack };
        ack
    }

    /// Writes `ack` into our node record and spreads it, if it changed.
    fn publish_ack(&mut self, now: Duration, ack: GcAck) {
        let delta = self.state.observed.set_gc_ack(self.config.node, ack);
        let delta = self.signed_own(delta);
        if !delta.is_empty() {
            self.spread(now, delta.into());
        }
    }
}
