//! Placement and the reconcile plan for this node, and publishing what runs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_crdt_state::Delta;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodId, PodStatus};
use shoal_crdt_state::spec::{PodTemplate, TemplateHash};
use shoal_runtime::vocabulary::PodAction;

use super::events::{self, EventRecord, EventType};
use super::io::{Output, PeerEvent};
use super::{Peer, ms};
use crate::placement::{WantedPorts, assign, inputs, live_rcs};
use crate::reconcile::{ClusterPods, plan};

impl Peer {
    /// Brings placement up to date, then issues this node's container actions.
    pub(super) fn reconcile(&mut self, now: Duration) {
        if self.rcs_dirty {
            self.rcs = live_rcs(&self.state.desired);
            self.wanted_ports = WantedPorts::of(&self.rcs);
            self.rcs_dirty = false;
        }
        if self.placement_dirty {
            self.recompute_assignment(now);
            self.placement_dirty = false;
        }
        self.attach_adopted();
        let mut policy = self.config.reconcile;
        policy.sees_majority = self.sees_majority();
        policy.seen_by_all = self.seen_by_all(now);
        let stalled_before = self.local_stalls();
        let current = CurrentPods::new(&self.state.observed, &self.member_incarnations, |node| {
            self.counts_alive(node)
        });
        let planned = plan(
            self.config.node,
            ms(now),
            &self.assignment,
            &self.rcs,
            &current,
            &mut self.local,
            &policy,
        );
        for action in planned.actions {
            match &action {
                PodAction::Start { .. } => self.stats.pod_starts += 1,
                PodAction::Stop { .. } | PodAction::StopOrphan { .. } => self.stats.pod_stops += 1,
            }
            self.record_action(now, &action);
            self.outputs.push_back(Output::Pod(action));
        }
        for (pod, at) in planned.backoffs {
            self.record_backoff(now, &pod, at);
        }
        if let Some(wake_ms) = planned.wake_at {
            self.schedule_reconcile_at(Duration::from_millis(wake_ms));
        }
        self.follow_stalls(now, &stalled_before);
        self.follow_drains(now);
        self.request_publish(now);
    }

    fn recompute_assignment(&mut self, now: Duration) {
        let me = self.config.node;
        let candidates = inputs(
            &self.state.observed,
            self.state.desired.nodes(),
            &self.rcs,
            me,
            |node| self.counts_alive(node),
        );
        let before_unplaced: Vec<PodId> = self.assignment.unplaced.keys().cloned().collect();
        let before_mine: BTreeSet<PodId> = self.assignment.pods_for(me).cloned().collect();
        let before = std::mem::replace(&mut self.assignment, assign(&self.rcs, &candidates));
        let moved_in: Vec<PodId> = (self.assignment.pods_for(me))
            .chain(self.assignment.surge_for(me))
            .filter(|p| {
                before
                    .owner(p)
                    .is_some_and(|o| o != me && self.counts_alive(o))
            })
            .cloned()
            .collect();
        for pod in moved_in {
            self.local.moved_in(pod, ms(now));
        }
        self.stats.placements += 1;
        let mut unplaced = Vec::new();
        for (pod, why) in &self.assignment.unplaced {
            if before_unplaced.binary_search(pod).is_err() {
                unplaced.push((pod.clone(), why.to_string()));
            }
        }
        for (pod, reason) in unplaced {
            let record = EventRecord::new(
                ms(now),
                EventType::Warning,
                "FailedScheduling",
                events::pod(&pod),
                reason.clone(),
            );
            self.record(record.cluster_wide());
            self.outputs.push_back(Output::Event(PeerEvent::Unplaced {
                pod: pod.to_string(),
                reason,
            }));
        }
        let assigned: Vec<PodId> = self
            .assignment
            .pods_for(me)
            .filter(|p| !before_mine.contains(*p))
            .cloned()
            .collect();
        let my_name = self.config.info.name.clone();
        for pod in assigned {
            let message = format!("Successfully assigned {pod} to {my_name}");
            let record = EventRecord::new(
                ms(now),
                EventType::Normal,
                "Scheduled",
                events::pod(&pod),
                message,
            );
            self.record(record);
        }
    }

    /// Whether placement counts `node` as up: the nodes of our member view,
    /// and ourselves. The simulator times placement with the same rule.
    pub fn counts_alive(&self, node: NodeId) -> bool {
        // Members held for a grace count as alive: their replicas stay
        // theirs (see `resume.rs`).
        node == self.config.node || self.members.contains_key(&node) || self.held_for_grace(node)
    }

    /// True when we see a majority of the nodes the cluster state knows of:
    /// what `AtMostDeclared` RCs require before starting replacements.
    fn sees_majority(&self) -> bool {
        let known = self.state.observed.len().max(1);
        let seen = self.members.len() + 1;
        seen * 2 > known
    }

    /// Publishes our pod statuses as one record update.
    pub(super) fn publish_pods(&mut self, now: Duration) {
        self.publish_pending = false;
        let me = self.config.node;
        let statuses: Vec<PodStatus> = self
            .local
            .iter()
            .map(|(id, local)| {
                let image = self.image_of(&id.rc, local.template_hash);
                let claim =
                    (self.assignment.owner(id) == Some(me)).then(|| self.assignment.fingerprint());
                local.status(id, &image, claim)
            })
            .collect();
        let held_before = self.held_ports_fingerprint(me);
        let mut delta = Delta::default();
        let reported: Vec<PodId> = self
            .state
            .observed
            .get(me)
            .map(|r| r.pods.iter().map(|p| p.id.clone()).collect())
            .unwrap_or_default();
        for id in reported {
            if self.local.get(&id).is_none()
                && let Ok(d) = self.state.observed.remove_pod(me, &id)
            {
                delta.observed.merge(d);
            }
        }
        for status in statuses {
            if let Ok(d) = self.state.observed.set_pod_status(me, status) {
                delta.observed.merge(d);
            }
        }
        if !delta.is_empty() {
            delta.observed = self.signed_own(delta.observed);
            // Only this publication carries pod statuses: one of node info
            // or a GC acknowledgement between a drain's start and this one
            // still shows the pod ready, and must not end the drain.
            if let Some(record) = self.state.observed.get(me) {
                self.record_acks.published(record.version, ms(now));
            }
            if self.held_ports_fingerprint(me) != held_before {
                self.placement_dirty = true;
                self.request_reconcile(now);
            }
            self.spread(now, delta);
        }
    }

    /// Pods adopted at start-up run, but the runtime does not watch them yet
    /// (readiness probes, exits): a start of the same template makes it
    /// take them over without touching the containers.
    fn attach_adopted(&mut self) {
        let unattached: Vec<(PodId, TemplateHash)> = self.local.unattached().collect();
        for (pod, hash) in unattached {
            // An unknown template (RC deleted) is stopped by the plan instead.
            if let Some(template) = self.template_of(&pod.rc, hash) {
                self.local.mark_attached(&pod);
                self.outputs
                    .push_back(Output::Pod(PodAction::Start { pod, template }));
            }
        }
    }

    /// [`WantedPorts::held_fingerprint`] of what `node` reports: placement
    /// is recomputed when it changes, not on every pod status update.
    pub(super) fn held_ports_fingerprint(&self, node: NodeId) -> u64 {
        self.state
            .observed
            .get(node)
            .map_or(0, |r| self.wanted_ports.held_fingerprint(&r.pods))
    }

    /// The template with `hash` of RC `rc`, current or from the rollout
    /// history.
    fn template_of(&self, rc: &str, hash: TemplateHash) -> Option<PodTemplate> {
        let record = self.state.desired.record(rc)?;
        if let Some(body) = record.body.as_ref().map(|r| &r.val)
            && body.template.hash() == hash
        {
            return Some(body.template.clone());
        }
        record
            .history
            .iter()
            .find(|rev| rev.template.hash() == hash)
            .map(|rev| rev.template.clone())
    }

    /// The first container's image of the template a pod runs, current or
    /// from the rollout history; empty when unknown (adopted, RC deleted).
    fn image_of(&self, rc: &str, hash: TemplateHash) -> String {
        self.template_of(rc, hash)
            .map(|t| t.primary_image().to_owned())
            .unwrap_or_default()
    }
}

impl Peer {
    /// Tells why a pod stops here (a rollout step also on its RC).
    fn record_action(&mut self, now: Duration, action: &PodAction) {
        let at = ms(now);
        let (pod, template_hash) = match action {
            PodAction::Start { .. } => return,
            PodAction::StopOrphan { node, pod, .. } => {
                let message = format!(
                    "Stopping a pod the removed node {} left on this engine",
                    self.node_name(*node)
                );
                let killing =
                    EventRecord::new(at, EventType::Normal, "Killing", events::pod(pod), message);
                self.record(killing);
                return;
            }
            PodAction::Stop {
                pod, template_hash, ..
            } => (pod, *template_hash),
        };
        let rc = self.rcs.get(&pod.rc);
        let owner = self.assignment.owner(pod);
        let why = match rc {
            None => "its replicationcontroller was deleted".to_owned(),
            Some(rc) if pod.index >= rc.replicas => format!("scaled down to {}", rc.replicas),
            Some(_) if owner.is_some_and(|o| o != self.config.node) => {
                let to = self.node_name(owner.unwrap_or(self.config.node));
                format!("the replica moved to node {to}")
            }
            Some(rc) if rc.template.hash() != template_hash => {
                let image = rc.template.primary_image().to_owned();
                let step = EventRecord::new(
                    at,
                    EventType::Normal,
                    "RollingUpdate",
                    events::rc(&pod.rc),
                    format!("Replacing {pod} with the template of image {image}"),
                );
                self.record(step);
                format!("rolling update to image {image}")
            }
            Some(_) => "it is not wanted here".to_owned(),
        };
        let killing = EventRecord::new(
            at,
            EventType::Normal,
            "Killing",
            events::pod(pod),
            format!("Stopping the pod: {why}"),
        );
        self.record(killing);
    }

    /// An exited pod waits before its restart: say why, and until when.
    fn record_backoff(&mut self, now: Duration, pod: &PodId, at: u64) {
        let why = self
            .local
            .get(pod)
            .and_then(|l| l.last_error.as_deref())
            .map_or_else(
                || "it went down".to_owned(),
                |e| events::without_countdown(e).to_owned(),
            );
        let mut record = EventRecord::new(
            ms(now),
            EventType::Warning,
            "BackOff",
            events::pod(pod),
            format!("Back-off restarting the failed pod ({why})"),
        );
        record.next_retry_ms = Some(at);
        self.record(record);
    }
}

/// What every node reports, as far as it is known to be true now. Left
/// out:
///
/// - a node whose record was written by an incarnation older than the one
///   SWIM shows restarted since: its old record says nothing about what it
///   runs (its pods may have died with its engine);
/// - a node placement does not count as alive (declared down, not held for
///   a grace): its replicas already moved, and its pods serve nobody this
///   peer can reach (dead, or across a partition).
///
/// The plan must not hand a replica over to such a report, nor count it in
/// a rollout: its pods would hold up the ready count the rollout's budget
/// is taken from, and its outdated ones would keep the rollout (and its
/// surge pods) going after every reachable replica moved.
struct CurrentPods<'a> {
    observed: &'a ObservedState,
    stale: BTreeSet<NodeId>,
}

impl<'a> CurrentPods<'a> {
    fn new(
        observed: &'a ObservedState,
        incarnations: &BTreeMap<NodeId, u64>,
        counts_alive: impl Fn(NodeId) -> bool,
    ) -> Self {
        let restarted = incarnations.iter().filter(|(node, incarnation)| {
            observed
                .get(**node)
                .is_some_and(|r| r.info.incarnation < **incarnation)
        });
        let mut stale: BTreeSet<NodeId> = restarted.map(|(node, _)| *node).collect();
        stale.extend(
            observed
                .nodes()
                .map(|(node, _)| node)
                .filter(|node| !counts_alive(*node)),
        );
        CurrentPods { observed, stale }
    }
}

impl ClusterPods for CurrentPods<'_> {
    fn reported_by(&self, node: NodeId) -> &[PodStatus] {
        if self.stale.contains(&node) {
            return &[];
        }
        self.observed.reported_by(node)
    }

    fn each_node(&self) -> Box<dyn Iterator<Item = (NodeId, &[PodStatus])> + '_> {
        Box::new(
            self.observed
                .each_node()
                .filter(|(node, _)| !self.stale.contains(node)),
        )
    }
}
