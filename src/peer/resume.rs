//! Restarting from disk: what a peer persists, and its startup grace.
//!
//! A peer writes [`Persisted`] — its replica of the cluster state and the
//! members it saw active — and resumes from it after a restart. It then
//! announces itself to every remembered member (not only to its `--join`
//! seeds), so any subset of a cluster that restarts finds itself again.
//!
//! **Startup grace.** Right after a restart a peer sees nobody, and
//! placement over "only me" would give it every replica: after a power cut
//! every peer would start every replica. So until its view has settled, a
//! restarted peer keeps counting the members it remembers as alive for
//! placement. It runs what it ran before and does not take over the others'
//! replicas. The grace ends early once every remembered member is seen
//! again (or is declared down by the cluster), and otherwise once no
//! remembered member came back for [`startup_grace`]: one full join-retry
//! cycle at its cap (a member that is up answers one of our announces
//! within it, and announces to us as soon as it starts) plus the suspicion
//! window in which SWIM would have declared an unresponsive member down.
//! While members keep coming back (a site whose machines boot one after
//! another) the view has not settled and the grace runs on, at most
//! [`MAX_SETTLING`] after the start. A member still missing then is treated
//! as down, and its replicas are placed elsewhere.
//!
//! **Graceful leave.** A peer that stops gracefully (SIGTERM: a restart,
//! an upgrade, a site powering down) leaves its pods running. It first
//! publishes `leaving` in its node record; a member that sees it go down
//! then keeps its replicas placed on it for the same grace, so a peer that
//! comes back adopts its pods and nobody started copies meanwhile. A peer
//! killed outright (no `leaving`) is replaced at once, as before.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::ClusterState;
use shoal_crdt_state::identity::{self, RecordRejection};
use shoal_crdt_state::node::NodeId;
use shoal_gossip::config::MAX_JOIN_RETRY;
use shoal_gossip::{PeerIdentity, Preset};

use super::io::{Output, PeerEvent};
use super::timers::PeerTimer;
use super::{Peer, PeerConfig, ms};

/// Members that went down this recently are still remembered: a site
/// being shut down machine by machine (or all at once, each peer seeing the
/// others leave first) should find all of them again when it comes back.
pub const REMEMBER_DEPARTED_FOR: Duration = Duration::from_secs(10 * 60);

/// What a peer writes to disk and resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub state: ClusterState,
    /// Members active in this peer's view when it was written (ourselves
    /// excluded): tried at the next start, and waited for by the grace.
    pub members: Vec<PeerIdentity>,
}

/// However many members keep coming back, a restarted peer stops waiting
/// for the rest this long after its start.
pub const MAX_SETTLING: Duration = Duration::from_secs(60);

/// The startup grace of a restarted peer in a cluster of `cluster_size`
/// (see the module docs): how long it waits for the next remembered
/// member to come back.
pub fn startup_grace(preset: Preset, cluster_size: usize) -> Duration {
    MAX_JOIN_RETRY + preset.config(cluster_size).suspect_to_down_after
}

/// A restarted peer's grace: remembered members still count as alive.
#[derive(Debug, Clone)]
pub(super) struct Settling {
    began: Duration,
    until: Duration,
    /// Remembered members not seen active (nor declared down) since start.
    pub(super) waiting: BTreeSet<NodeId>,
}

impl Peer {
    /// A peer that resumes from what it persisted before a restart. Call
    /// [`Peer::start`] next, as for a new one.
    pub fn resume(config: PeerConfig, persisted: Persisted) -> Peer {
        let mut peer = Peer::new(config);
        if let Some(stamp) = persisted
            .state
            .desired
            .records()
            .filter_map(|(_, r)| r.max_stamp())
            .max()
        {
            peer.clock.observe(&stamp, stamp.physical_ms);
        }
        peer.state = persisted.state;
        peer.drop_unverified_records();
        let me = peer.config.node;
        peer.remembered = persisted
            .members
            .into_iter()
            .filter(|m| m.node != me)
            .collect();
        peer
    }

    /// Drops the node records of a resumed state that are not signed by
    /// their node's bound key (a data dir edited, or restored from another
    /// machine): the genuine ones come back from the others, and a copy
    /// no peer would take is not spread from here either.
    fn drop_unverified_records(&mut self) {
        let nodes = self.state.desired.nodes();
        let bad: Vec<(NodeId, RecordRejection)> = self
            .state
            .observed
            .nodes()
            .filter_map(|(node, record)| {
                identity::check_record(nodes.bound_key(node), node, record, &self.config.verifier)
                    .err()
                    .map(|e| (node, e))
            })
            .collect();
        for (node, error) in bad {
            self.stats.records_forged += 1;
            tracing::warn!(%node, %error, "dropped a node record of the data dir");
            self.state.observed.forget(node);
        }
    }

    /// What to write to disk now: the state, and the members to try at the
    /// next start (the active ones, those that went down in the last
    /// [`REMEMBER_DEPARTED_FOR`], and remembered ones not seen yet).
    pub fn persisted(&self, now: Duration) -> Persisted {
        let me = self.config.node;
        let mut members: Vec<PeerIdentity> = self
            .membership
            .active_identities()
            .into_iter()
            .filter(|m| m.node != me)
            .collect();
        members.extend(
            self.departed
                .values()
                .filter(|(_, at)| now.saturating_sub(*at) < REMEMBER_DEPARTED_FOR)
                .map(|(id, _)| *id),
        );
        if let Some(settling) = &self.settling {
            members.extend(
                self.remembered
                    .iter()
                    .filter(|m| settling.waiting.contains(&m.node)),
            );
        }
        members.sort_unstable();
        // One identity per node: the newest.
        members.reverse();
        members.dedup_by_key(|m| m.node);
        Persisted {
            state: self.state.clone(),
            members,
        }
    }

    /// True when the peer resumed with members to try (it keeps trying them).
    pub fn remembers_members(&self) -> bool {
        !self.remembered.is_empty()
    }

    /// True during the startup grace of a restarted peer.
    pub fn is_settling(&self) -> bool {
        self.settling.is_some()
    }

    /// Announces to the remembered members and starts the grace. Called by
    /// `start`; does nothing for a peer without remembered members.
    pub(super) fn begin_settling(&mut self, now: Duration) {
        let addrs: Vec<SocketAddr> = self.remembered.iter().map(|m| m.addr).collect();
        if addrs.is_empty() {
            return;
        }
        if let Err(e) = self.membership.remember(now, &addrs) {
            tracing::debug!(error = %e, "announce to remembered members");
        }
        let waiting: BTreeSet<NodeId> = self
            .remembered
            .iter()
            .map(|m| m.node)
            .filter(|n| self.state.observed.get(*n).is_some())
            .collect();
        if waiting.is_empty() {
            return;
        }
        let until = now
            + self
                .config
                .startup_grace
                .unwrap_or_else(|| startup_grace(self.config.preset, waiting.len() + 1));
        self.settling = Some(Settling {
            began: now,
            until,
            waiting,
        });
        self.schedule(until, PeerTimer::Grace);
    }

    /// A member became active, or was declared down: either way the grace
    /// no longer waits for it. While members keep coming back the view is
    /// not settled yet: the grace runs on for a full grace after the last
    /// arrival, at most [`MAX_SETTLING`] after the start.
    pub(super) fn settle_member(&mut self, now: Duration, node: NodeId) {
        let grace = self.grace();
        let Some(settling) = &mut self.settling else {
            return;
        };
        if !settling.waiting.remove(&node) {
            return;
        }
        if settling.waiting.is_empty() {
            self.end_settling(now);
            return;
        }
        let until = (now + grace).min(settling.began + MAX_SETTLING);
        if until > settling.until {
            settling.until = until;
            self.schedule(until, PeerTimer::Grace);
        }
    }

    /// A member went down: if it said it was leaving with its pods
    /// running, placement holds its replicas for the grace.
    pub(super) fn member_left(&mut self, now: Duration, node: NodeId) {
        let leaving = self
            .state
            .observed
            .get(node)
            .is_some_and(|r| r.info.leaving);
        if !leaving {
            return;
        }
        let until = now + self.grace();
        self.departing.insert(node, until);
        self.schedule(until, PeerTimer::Grace);
    }

    /// True when placement counts `node` as alive although SWIM does not:
    /// a remembered member during our startup grace, or a member that left
    /// gracefully, during its grace.
    pub(super) fn held_for_grace(&self, node: NodeId) -> bool {
        self.awaited_after_restart(node) || self.departing.contains_key(&node)
    }

    /// True for a remembered member our startup grace still waits for.
    pub(super) fn awaited_after_restart(&self, node: NodeId) -> bool {
        self.settling
            .as_ref()
            .is_some_and(|s| s.waiting.contains(&node))
    }

    /// A grace timer fired: end what is due (stale timers change nothing).
    pub(super) fn handle_grace_timer(&mut self, now: Duration) {
        if self.settling.as_ref().is_some_and(|s| now >= s.until) {
            self.end_settling(now);
        }
        let before = self.departing.len();
        self.departing.retain(|_, until| *until > now);
        if self.departing.len() != before {
            self.placement_dirty = true;
            self.request_reconcile(now);
        }
    }

    fn grace(&self) -> Duration {
        self.config
            .startup_grace
            .unwrap_or_else(|| startup_grace(self.config.preset, self.members.len() + 1))
    }

    fn end_settling(&mut self, now: Duration) {
        let Some(settling) = self.settling.take() else {
            return;
        };
        let missing: Vec<NodeId> = settling.waiting.into_iter().collect();
        self.outputs.push_back(Output::Event(PeerEvent::Settled {
            after_ms: ms(now).saturating_sub(ms(settling.began)),
            missing,
        }));
        self.placement_dirty = true;
        self.request_reconcile(now);
    }
}
