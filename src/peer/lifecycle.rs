//! Node lifecycle: what follows a node's cordon or removal, forgetting
//! nodes down for too long, and pods left on our engine by a node that is
//! gone.
//!
//! - **Removal** (`shoal node delete`, or down longer than
//!   [`PeerConfig::forget_down_after`]): the node's record leaves the state
//!   (see `shoal_crdt_state::node_decisions`), and we stop trying to reach
//!   it. A node that finds itself removed while it runs registers again.
//! - **Previous identities.** A machine whose `node.json` was lost comes
//!   back under a new node id, on the same address. The old id can never
//!   return, so it is forgotten as soon as the new one sees it down.
//! - **Orphans.** Pods on our engine labelled with a removed node's id have
//!   no owner any more. We stop them, make-before-break: once their replica
//!   runs elsewhere (or is no longer declared), or after the handover bound.
//!
//! [`PeerConfig::forget_down_after`]: super::PeerConfig::forget_down_after

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::{PodId, PodPhase};
use shoal_crdt_state::spec::TemplateHash;
use shoal_runtime::vocabulary::{ForeignPod, PodAction};

use super::io::{Output, PeerEvent};
use super::{Peer, ms};

/// An orphan pod is stopped again if it is still listed this long after.
const ORPHAN_STOP_RETRY: Duration = Duration::from_secs(60);

/// One pod another node id left on our engine.
type OrphanKey = (NodeId, PodId, TemplateHash);

/// What we track about pods left on our engine by removed nodes.
#[derive(Debug, Clone, Default)]
pub(super) struct Orphans {
    /// When each was first listed.
    seen: BTreeMap<OrphanKey, Duration>,
    /// When a stop was last issued for it.
    stopped: BTreeMap<OrphanKey, Duration>,
}

impl Peer {
    /// Brings the rest of the peer in line with the node decisions after
    /// they changed (a local command or a merge).
    pub(super) fn follow_node_decisions(&mut self, now: Duration) {
        let me = self.config.node;
        let decisions = self.state.desired.nodes();
        // A removal in force, or one that forgot our record although a
        // take-back won the register (a removal stamped before it naming a
        // version we had written): either way we register again.
        let forgotten = self.state.observed.get(me).is_none()
            && decisions
                .get(me)
                .is_some_and(|d| d.forgets_through.is_some());
        if decisions.is_removed(me) || forgotten {
            // Someone forgot us while we run (a long partition, or a
            // mistaken delete): take it back with a newer stamp.
            let stamp = self.clock.tick(ms(now));
            let decision = self.state.remove_node(me, false, stamp);
            self.outputs
                .push_back(Output::Persist(decision.clone().into()));
            // Our record went with the removal: write it again (our pods
            // follow with the next publish).
            let mut delta: shoal_crdt_state::Delta = decision.into();
            delta.observed.merge(self.publish_info());
            self.spread(now, delta);
            self.request_publish(now);
            self.outputs
                .push_back(Output::Event(PeerEvent::Reregistered));
        }
        // Our id released (`node delete`) or its binding collected: bind it
        // again, or learn that another key holds it.
        let bound = self.bind_key(now);
        if !bound.is_empty() {
            self.spread(now, bound.into());
        }
        let removed = self.state.desired.nodes().removed();
        for node in &removed {
            self.absent_since.remove(node);
            self.departed.remove(node);
            self.departing.remove(node);
            if let Some(id) = self.remembered.iter().find(|m| m.node == *node) {
                self.membership.forget_contact(id.addr);
            }
            if self.settling.is_some() {
                self.settle_member(now, *node);
            }
        }
        self.placement_dirty = true;
        self.request_reconcile(now);
    }

    /// Forgets nodes absent from our view for longer than
    /// `forget_down_after`. Called about once a second.
    pub(super) fn forget_long_gone(&mut self, now: Duration) {
        let me = self.config.node;
        let present: BTreeSet<NodeId> = self.state.observed.nodes().map(|(n, _)| n).collect();
        self.absent_since.retain(|n, _| present.contains(n));
        let mut due = Vec::new();
        for node in present {
            if node == me || self.counts_alive(node) {
                self.absent_since.remove(&node);
                continue;
            }
            let since = *self.absent_since.entry(node).or_insert(now);
            if now.saturating_sub(since) >= self.config.forget_down_after {
                due.push(node);
            }
        }
        for node in due {
            self.forget(now, node, "down longer than --forget-down-after");
        }
    }

    /// Writes the removal of `node` and spreads it.
    fn forget(&mut self, now: Duration, node: NodeId, why: &'static str) {
        let name = self
            .state
            .observed
            .get(node)
            .map(|r| r.info.name.clone())
            .unwrap_or_default();
        let stamp = self.clock.tick(ms(now));
        let delta = self.state.remove_node(node, true, stamp);
        if delta.is_empty() {
            return;
        }
        self.outputs
            .push_back(Output::Persist(delta.clone().into()));
        self.spread(now, delta.into());
        let record = super::events::EventRecord::new(
            ms(now),
            super::events::EventType::Normal,
            "NodeForgotten",
            super::events::node(&name),
            format!("Node {name} was forgotten: {why}"),
        );
        self.record(record.cluster_wide());
        self.outputs
            .push_back(Output::Event(PeerEvent::NodeForgotten { node, name, why }));
        self.follow_node_decisions(now);
    }

    /// The pods of this cluster on our engine that other node ids started
    /// (listed by the shell every few seconds). Forgets previous
    /// identities of this machine, and stops pods of removed nodes once
    /// that loses nothing.
    pub fn handle_foreign_pods(&mut self, now: Duration, pods: &[ForeignPod]) {
        let me = self.config.node;
        let my_addr = self.config.info.peer_addr.clone();
        let predecessors: Vec<NodeId> = self
            .state
            .observed
            .nodes()
            .filter(|(n, r)| *n != me && r.info.peer_addr == my_addr && !self.counts_alive(*n))
            .map(|(n, _)| n)
            .collect();
        for node in predecessors {
            self.forget(
                now,
                node,
                "a previous identity of this machine (same address)",
            );
        }
        let removed = self.state.desired.nodes().removed();
        let listed: BTreeSet<OrphanKey> = pods
            .iter()
            .filter(|p| removed.contains(&p.node))
            .map(|p| (p.node, p.pod.pod.clone(), p.pod.template_hash))
            .collect();
        self.orphans.seen.retain(|k, _| listed.contains(k));
        self.orphans.stopped.retain(|k, _| listed.contains(k));
        let bound = Duration::from_millis(self.config.reconcile.handover_bound_ms);
        let grace = Duration::from_secs(u64::from(self.config.reconcile.default_grace_secs));
        for key in listed {
            let first = *self.orphans.seen.entry(key.clone()).or_insert(now);
            let recently = self
                .orphans
                .stopped
                .get(&key)
                .is_some_and(|at| now.saturating_sub(*at) < ORPHAN_STOP_RETRY);
            if recently {
                continue;
            }
            let (node, pod, template_hash) = key.clone();
            if self.replica_served_elsewhere(&pod) || now.saturating_sub(first) >= bound {
                self.orphans.stopped.insert(key, now);
                self.stats.pod_stops += 1;
                self.outputs.push_back(Output::Pod(PodAction::StopOrphan {
                    node,
                    pod,
                    template_hash,
                    grace,
                }));
            }
        }
    }

    /// The replica is no longer declared, or some live node runs it ready.
    fn replica_served_elsewhere(&self, pod: &PodId) -> bool {
        let declared = self
            .rcs
            .get(&pod.rc)
            .is_some_and(|rc| pod.index < rc.replicas);
        if !declared {
            return true;
        }
        if self.local.get(pod).is_some_and(|l| l.available()) {
            return true;
        }
        self.state.observed.nodes().any(|(node, record)| {
            self.counts_alive(node)
                && record
                    .pod(pod)
                    .is_some_and(|s| s.phase == PodPhase::Running && s.ready)
        })
    }
}
