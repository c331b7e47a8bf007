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
//! again (or is declared down by the cluster), and at the latest after
//! [`startup_grace`]: one full join-retry cycle at its cap (a member that
//! is up answers one of our announces within it, and announces to us as
//! soon as it starts) plus the suspicion window in which SWIM would have
//! declared an unresponsive member down. A member still missing then is
//! treated as down, and its replicas are placed elsewhere.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_crdt_state::ClusterState;
use shoal_crdt_state::node::NodeId;
use shoal_gossip::config::MAX_JOIN_RETRY;
use shoal_gossip::{PeerIdentity, Preset};

use super::io::{Output, PeerEvent, PeerTimer};
use super::{Peer, PeerConfig, ms};

/// What a peer writes to disk and resumes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persisted {
    pub state: ClusterState,
    /// Members active in this peer's view when it was written (ourselves
    /// excluded): tried at the next start, and waited for by the grace.
    pub members: Vec<PeerIdentity>,
}

/// The longest startup grace of a restarted peer in a cluster of
/// `cluster_size` (see the module docs).
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
        let me = peer.config.node;
        peer.remembered = persisted
            .members
            .into_iter()
            .filter(|m| m.node != me)
            .collect();
        peer
    }

    /// What to write to disk now: the state, and the members to try at the
    /// next start (the active ones, plus remembered ones not seen yet).
    pub fn persisted(&self) -> Persisted {
        let me = self.config.node;
        let mut members: Vec<PeerIdentity> = self
            .membership
            .active_identities()
            .into_iter()
            .filter(|m| m.node != me)
            .collect();
        if let Some(settling) = &self.settling {
            members.extend(
                self.remembered
                    .iter()
                    .filter(|m| settling.waiting.contains(&m.node)),
            );
        }
        members.sort_unstable();
        members.dedup();
        Persisted {
            state: self.state.clone(),
            members,
        }
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
        let grace = self
            .config
            .startup_grace
            .unwrap_or_else(|| startup_grace(self.config.preset, waiting.len() + 1));
        let until = now + grace;
        self.settling = Some(Settling {
            began: now,
            until,
            waiting,
        });
        self.schedule(until, PeerTimer::Settled);
    }

    /// A member became active, or was declared down: either way the grace
    /// no longer waits for it.
    pub(super) fn settle_member(&mut self, now: Duration, node: NodeId) {
        let Some(settling) = &mut self.settling else {
            return;
        };
        if settling.waiting.remove(&node) && settling.waiting.is_empty() {
            self.end_settling(now);
        }
    }

    /// The grace timer fired (stale if the grace already ended).
    pub(super) fn handle_settled_timer(&mut self, now: Duration) {
        if self.settling.as_ref().is_some_and(|s| now >= s.until) {
            self.end_settling(now);
        }
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
