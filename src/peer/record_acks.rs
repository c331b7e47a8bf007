//! Which members are known to hold this node's own record, and since when
//! every member does: a draining pod stops once every member's load
//! balancer has had the time to drop it ([`ReconcilePolicy::drain_ends_at`]),
//! rather than always after the drain's full bound.
//!
//! No message acknowledges a record. What a member holds shows in its
//! digest (a `Pull`, or a `Push` that asks back) and in a `Hello` whose
//! hash equals ours (it holds exactly what we hold). While a pod drains in
//! a cluster of at most [`ASK_MEMBERS_MAX`] other members, the peer asks each
//! member that has not shown the record saying so for its digest (a
//! `Hello` with [`ASK_DIGEST_HASH`], which no digest hashes to), every
//! [`ASK_EVERY`] until it has. Larger clusters rely on anti-entropy, and on
//! the bound: asking hundreds of members for their digest per drain would
//! cost more than the seconds it saves.
//!
//! A member that claims to hold what it does not can only shorten a drain
//! to `drain_after_seen_ms`, which costs requests its own load balancer
//! still sends to the draining pod.
//!
//! [`ReconcilePolicy::drain_ends_at`]: crate::reconcile::ReconcilePolicy::drain_ends_at

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use shoal_crdt_state::Digest;
use shoal_crdt_state::digest::NodeVersion;
use shoal_crdt_state::node::NodeId;

use super::sync_message::SyncMessage;
use super::timers::PeerTimer;
use super::{Peer, ms};
use crate::reconcile::{LocalState, SeenByAll};

/// Clusters with up to this many other members are asked for their digests
/// while a pod drains.
pub(super) const ASK_MEMBERS_MAX: usize = 8;

/// How often a member that has not shown the draining record is asked again.
pub(super) const ASK_EVERY: Duration = Duration::from_millis(200);

/// The digest hash of an ask: never equal to a real one (xxh3 of an
/// encoding; a collision would only make that member not answer once).
pub(crate) const ASK_DIGEST_HASH: u64 = 0;

/// Publications remembered: a few seconds of a busy node's changes, more
/// than a drain lasts. A member known only to hold an older one counts as
/// holding nothing we can date.
const PUBLICATIONS_KEPT: usize = 256;

#[derive(Debug, Default)]
pub(super) struct RecordAcks {
    /// Our record's versions as published, with when (ms), oldest first.
    published: VecDeque<(u64, u64)>,
    /// Per member: the newest version of our record it is known to hold.
    held: BTreeMap<NodeId, u64>,
    /// The version every member held at the last refresh, a hash of who
    /// the members were, and since when.
    seen: Option<(u64, u64, SeenByAll)>,
}

impl RecordAcks {
    /// We published `version` of our record, with our pods' statuses as
    /// of `at_ms`. Only publications of pod statuses are noted: a version
    /// published for another reason (node info, a GC acknowledgement)
    /// carries the statuses of the last one, and dating it later would let
    /// it stand for a drain it does not show.
    pub(super) fn published(&mut self, version: u64, at_ms: u64) {
        if self.published.back().is_some_and(|(v, _)| *v >= version) {
            return;
        }
        if self.published.len() == PUBLICATIONS_KEPT {
            self.published.pop_front();
        }
        self.published.push_back((version, at_ms));
    }

    /// `member` holds `version` of our record (or a newer one). True when
    /// that is news.
    pub(super) fn held(&mut self, member: NodeId, version: u64) -> bool {
        let known = self.held.entry(member).or_insert(0);
        if version > *known {
            *known = version;
            true
        } else {
            false
        }
    }

    /// The newest publication every one of `members` is known to hold, as
    /// of `now_ms`; forgets what non-members held. With no members, our
    /// newest publication: only our own load balancer reads it.
    pub(super) fn refresh(
        &mut self,
        members: impl Iterator<Item = NodeId>,
        now_ms: u64,
    ) -> Option<SeenByAll> {
        let mut held = BTreeMap::new();
        let mut min: Option<u64> = None;
        for member in members {
            let v = self.held.get(&member).copied().unwrap_or(0);
            held.insert(member, v);
            min = Some(min.map_or(v, |m| m.min(v)));
        }
        self.held = held;
        let newest = self.published.back().map(|(v, _)| *v)?;
        let version = min.unwrap_or(newest);
        // The publication that version is: the newest one not above it.
        let Some(&(version, published_ms)) =
            self.published.iter().rev().find(|(v, _)| *v <= version)
        else {
            self.seen = None;
            return None;
        };
        // Dated anew when the version or the members change: a member that
        // joined since must have its own time to drop the pod.
        let members_hash = self.held.keys().fold(0u64, |h, n| {
            h.rotate_left(5) ^ n.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        });
        let seen = match self.seen {
            Some((v, m, seen)) if v == version && m == members_hash => seen,
            _ => SeenByAll {
                published_ms,
                known_ms: now_ms,
            },
        };
        self.seen = Some((version, members_hash, seen));
        Some(seen)
    }

    /// The first version we published after `since_ms`, if any yet.
    pub(super) fn first_published_after(&self, since_ms: u64) -> Option<u64> {
        self.published
            .iter()
            .find(|(_, at)| *at > since_ms)
            .map(|(v, _)| *v)
    }

    /// Whether every one of `members` is known to hold `version`.
    pub(super) fn all_hold(&self, mut members: impl Iterator<Item = NodeId>, version: u64) -> bool {
        members.all(|m| self.held.get(&m).is_some_and(|v| *v >= version))
    }

    /// Which of `members` are not known to hold `version`.
    pub(super) fn lacking(
        &self,
        members: impl Iterator<Item = NodeId>,
        version: u64,
    ) -> Vec<NodeId> {
        members
            .filter(|m| self.held.get(m).is_none_or(|v| *v < version))
            .collect()
    }
}

impl Peer {
    /// `member`'s digest (`None`: a hash equal to ours) shows what it holds
    /// of our record.
    ///
    /// Noted only while a pod drains: only records published since matter,
    /// and hashing our record per message would cost every sync otherwise.
    pub(super) fn note_held(&mut self, now: Duration, member: NodeId, digest: Option<&Digest>) {
        if self.draining_since().is_none() {
            return;
        }
        let me = self.config.node;
        let Some(ours) = self.state.observed.get(me) else {
            return;
        };
        let version = match digest {
            None => ours.version,
            Some(digest) => match digest.observed.get(&me) {
                // An older version of ours: ours were the only writes.
                Some(theirs) if theirs.version < ours.version => theirs.version,
                Some(theirs) if *theirs == NodeVersion::of(ours) => ours.version,
                _ => return,
            },
        };
        if self.record_acks.held(member, version) {
            self.request_reconcile(now);
        }
    }

    /// What the reconcile policy needs while a pod drains: when every
    /// member holds what.
    pub(super) fn seen_by_all(&mut self, now: Duration) -> Option<SeenByAll> {
        self.draining_since()?;
        self.record_acks
            .refresh(self.members.keys().copied(), ms(now))
    }

    /// The latest start of a drain among our running pods, if any drains.
    fn draining_since(&self) -> Option<u64> {
        self.local
            .iter()
            .filter(|(_, l)| l.state == LocalState::Running)
            .filter_map(|(_, l)| l.draining_since)
            .max()
    }

    /// Whether every member is known to hold the record saying our pods
    /// drain.
    fn drains_known_to_all(&self, since: u64) -> bool {
        self.record_acks
            .first_published_after(since)
            .is_some_and(|v| self.record_acks.all_hold(self.members.keys().copied(), v))
    }

    /// After a reconcile: while a pod drains in a small cluster, ask the
    /// members for their digests until each shows it holds the record
    /// that says so.
    pub(super) fn follow_drains(&mut self, now: Duration) {
        let Some(since) = self.draining_since() else {
            return;
        };
        if !self.asking_holders
            && self.members.len() <= ASK_MEMBERS_MAX
            && !self.drains_known_to_all(since)
        {
            self.asking_holders = true;
            // After the publish and push that carry the drain.
            let after = self.config.publish_delay + self.config.push_delay + ASK_EVERY / 2;
            self.schedule(now + after, PeerTimer::AskHolders);
        }
    }

    /// The [`PeerTimer::AskHolders`] timer.
    pub(super) fn ask_holders(&mut self, now: Duration) {
        self.asking_holders = false;
        let Some(since) = self.draining_since() else {
            return;
        };
        if self.members.len() > ASK_MEMBERS_MAX {
            return;
        }
        let Some(version) = self.record_acks.first_published_after(since) else {
            // Not published yet: ask after the publish.
            self.asking_holders = true;
            self.schedule(now + ASK_EVERY, PeerTimer::AskHolders);
            return;
        };
        let lacking = self
            .record_acks
            .lacking(self.members.keys().copied(), version);
        if lacking.is_empty() {
            // Every member holds it (or there is none): the drain may end.
            self.request_reconcile(now);
            return;
        }
        for member in &lacking {
            if let Some(&to) = self.members.get(member) {
                self.stats.holder_asks += 1;
                self.send_sync(
                    to,
                    SyncMessage::Hello {
                        digest_hash: ASK_DIGEST_HASH,
                    },
                );
            }
        }
        self.asking_holders = true;
        self.schedule(now + ASK_EVERY, PeerTimer::AskHolders);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    #[test]
    fn every_member_must_hold_a_publication_before_it_is_seen_by_all() {
        let mut acks = RecordAcks::default();
        assert_eq!(
            acks.refresh([A, B].into_iter(), 0),
            None,
            "nothing published"
        );
        acks.published(3, 1_000);
        acks.published(4, 1_100);
        acks.held(A, 4);
        assert_eq!(
            acks.refresh([A, B].into_iter(), 1_200),
            None,
            "B holds nothing"
        );
        acks.held(B, 3);
        let seen = acks.refresh([A, B].into_iter(), 1_300);
        assert_eq!(
            seen,
            Some(SeenByAll {
                published_ms: 1_000,
                known_ms: 1_300
            })
        );
        // Unchanged: the moment it became known stays.
        assert_eq!(acks.refresh([A, B].into_iter(), 1_400), seen);
        acks.held(B, 4);
        assert_eq!(
            acks.refresh([A, B].into_iter(), 1_500),
            Some(SeenByAll {
                published_ms: 1_100,
                known_ms: 1_500
            })
        );
    }

    #[test]
    fn a_member_that_left_no_longer_counts_and_one_that_joins_must_show_it() {
        let mut acks = RecordAcks::default();
        acks.published(7, 500);
        acks.held(A, 7);
        assert_eq!(acks.refresh([A, B].into_iter(), 600), None);
        let alone = acks.refresh([A].into_iter(), 700).expect("A holds 7");
        assert_eq!(alone.published_ms, 500);
        assert_eq!(acks.refresh([A, B].into_iter(), 800), None, "B joined");
        assert_eq!(
            acks.refresh(std::iter::empty(), 900)
                .map(|s| s.published_ms),
            Some(500),
            "no members: our own publication"
        );
    }

    #[test]
    fn a_change_of_members_dates_the_same_version_anew() {
        let mut acks = RecordAcks::default();
        acks.published(4, 100);
        acks.held(A, 4);
        let first = acks.refresh([A].into_iter(), 200).expect("A holds 4");
        assert_eq!(first.known_ms, 200);
        assert_eq!(acks.refresh([A].into_iter(), 300), Some(first));
        // B joins and shows it holds 4 too.
        acks.held(B, 4);
        let joined = acks.refresh([A, B].into_iter(), 400).expect("both hold 4");
        assert_eq!(
            joined.known_ms, 400,
            "B joined: its own time to drop the pod"
        );
    }

    #[test]
    fn a_version_between_publications_dates_from_the_one_below_it() {
        let mut acks = RecordAcks::default();
        acks.published(2, 100);
        acks.published(5, 200);
        acks.held(A, 4);
        assert_eq!(
            acks.refresh([A].into_iter(), 300).map(|s| s.published_ms),
            Some(100)
        );
        assert!(!acks.held(A, 3), "older news is no news");
        assert_eq!(acks.first_published_after(100), Some(5));
        assert_eq!(acks.first_published_after(200), None);
        assert_eq!(acks.lacking([A, B].into_iter(), 5), vec![A, B]);
        acks.held(A, 5);
        assert_eq!(acks.lacking([A, B].into_iter(), 5), vec![B]);
        assert!(!acks.all_hold([A, B].into_iter(), 5));
        assert!(acks.all_hold([A].into_iter(), 5));
        assert!(acks.all_hold(std::iter::empty(), 5), "no member lacks it");
    }

    #[test]
    fn only_the_newest_publications_are_remembered() {
        let mut acks = RecordAcks::default();
        for v in 1..=(PUBLICATIONS_KEPT as u64 + 10) {
            acks.published(v, v * 10);
        }
        acks.published(3, 5);
        assert_eq!(acks.published.len(), PUBLICATIONS_KEPT);
        acks.held(A, 5);
        assert_eq!(
            acks.refresh([A].into_iter(), 10_000),
            None,
            "version 5 is older than any remembered publication"
        );
    }

    /// Three peers on a virtual clock with a 1 ms network: a scaled-down
    /// pod stops `drain_after_seen_ms` (plus the publish, push and ask
    /// that show every member holds the news) after its drain began,
    /// instead of the drain's full bound; alone, right after its
    /// publication; with a member that answers nothing, not early.
    #[test]
    fn a_scaled_down_pod_stops_once_every_member_shows_it_holds_the_drain() {
        use crate::peer::Command;
        use crate::peer::testing::Cluster;
        use crate::peer::tests::{START, addr, config, hello};
        use std::net::SocketAddr;

        fn drain_took(peers: usize, crash_last: bool) -> (Duration, u64) {
            let mut cluster = Cluster::new(START, Duration::from_millis(1));
            for i in 0..peers {
                let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
                cluster.add(Peer::new(config(i)), &seeds);
            }
            cluster.run_for(Duration::from_secs(3));
            cluster.command(0, Command::Apply(hello(6))).unwrap();
            cluster.run_for(Duration::from_secs(5));
            let live = peers - usize::from(crash_last);
            let stops = |c: &Cluster| {
                c.peers[..live]
                    .iter()
                    .map(|p| p.stats().pod_stops)
                    .sum::<u64>()
            };
            assert_eq!(stops(&cluster), 0);
            let scaled = Command::Scale {
                name: "hello".into(),
                replicas: 3,
            };
            if crash_last {
                cluster.crash(peers - 1);
            }
            cluster.command(0, scaled).unwrap();
            let began = cluster.now;
            while stops(&cluster) == 0 && cluster.now < began + Duration::from_secs(5) {
                cluster.run_for(Duration::from_millis(5));
            }
            let asks = cluster.peers.iter().map(|p| p.stats().holder_asks).sum();
            (cluster.now - began, asks)
        }

        let policy = crate::reconcile::ReconcilePolicy::default();
        let bound = Duration::from_millis(policy.handover_drain_ms);
        let after = Duration::from_millis(policy.drain_after_seen_ms);
        let (took, asks) = drain_took(3, false);
        assert!(asks > 0, "the members were asked");
        assert!(
            took >= after && took < after + Duration::from_millis(400),
            "3 peers: the drain took {took:?} (early end {after:?}, bound {bound:?})"
        );
        let (alone, asks) = drain_took(1, false);
        assert_eq!(asks, 0, "nobody to ask");
        assert!(
            alone >= after && alone < after + Duration::from_millis(300),
            "alone: the drain took {alone:?}"
        );
        // A member that answers nothing (crashed, not yet declared down)
        // holds the drain until SWIM drops it or the bound ends it.
        let (held, _) = drain_took(3, true);
        assert!(
            held > after + Duration::from_millis(500) && held <= bound + Duration::from_millis(50),
            "a silent member: the drain took {held:?}"
        );
        println!(
            "drain: 3 peers {took:?}, alone {alone:?}, a silent member {held:?}, bound {bound:?}"
        );
    }
}
