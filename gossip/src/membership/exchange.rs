//! Membership's exchanges beyond foca: roster transfer on join, the
//! anti-entropy rounds (`sync.rs`) and suspect notices. Split from
//! `membership.rs` to keep each file concept-sized.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt;
use rand::seq::SliceRandom;

use super::{
    HELD_DOWN_FOR, HELD_DOWNS_MAX, Membership, MembershipError, Output, ROSTER_REPLY_INTERVAL,
    ROSTER_REPLY_MEMORY, SYNC_CHUNKS_PER_SECOND, SYNC_MAX_CHUNKS, SYNC_WINDOW,
};
use crate::codec::WireMember;
use crate::envelope::{
    KIND_DIGEST, decode_roster, decode_suspect_notice, roster_chunks, suspect_notice,
};
use crate::identity::PeerIdentity;
use crate::sync::{Digest, bucket_of};
use crate::timers::Scheduled;

impl Membership {
    /// Rate limit shared by roster requests and digests: one answer per
    /// requester per [`ROSTER_REPLY_INTERVAL`].
    pub(super) fn may_answer(&mut self, now: Duration, from: SocketAddr) -> bool {
        if self
            .roster_sent
            .get(&from)
            .is_some_and(|at| now < *at + ROSTER_REPLY_INTERVAL)
        {
            return false;
        }
        if self.roster_sent.len() >= ROSTER_REPLY_MEMORY {
            self.roster_sent
                .retain(|_, at| now < *at + ROSTER_REPLY_INTERVAL);
        }
        if self.roster_sent.len() < ROSTER_REPLY_MEMORY {
            self.roster_sent.insert(from, now);
        }
        true
    }

    pub(super) fn answer_roster_request(
        &mut self,
        now: Duration,
        from: SocketAddr,
    ) -> Result<(), MembershipError> {
        if !self.may_answer(now, from) {
            return Ok(());
        }
        let members: Vec<WireMember> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.id().addr != from)
            .map(WireMember::from_member)
            .collect();
        for bytes in roster_chunks(&members)? {
            self.outputs.push_back(Output::Send { to: from, bytes });
        }
        Ok(())
    }

    pub(super) fn apply_roster(
        &mut self,
        now: Duration,
        from: SocketAddr,
        body: &[u8],
    ) -> Result<(), MembershipError> {
        match self.roster_expected.get(&from) {
            Some(until) if now <= *until => {}
            _ => {
                self.roster_expected.retain(|_, until| now <= *until);
                return Err(MembershipError::UnsolicitedRoster(from));
            }
        }
        let members = decode_roster(body)?
            .into_iter()
            .map(WireMember::into_member)
            .collect::<Result<Vec<_>, _>>()?;
        // A join roster is what the cluster already knows: no need to
        // gossip it. Anti-entropy finds what someone missed: spread it.
        let spread = !self.contacts.awaiting_roster();
        self.contacts.roster_received();
        // A join roster is applied whole: a restarted peer's remembered
        // members that died meanwhile must not count as up for longer.
        let members = if spread {
            self.hold_stale_downs(now, members)
        } else {
            members
        };
        // Entries about us are applied too: a roster listing us as down is
        // how a peer learns it must renew its identity.
        Ok(self
            .foca
            .apply_many(members.into_iter(), spread, &mut self.outbox)?)
    }

    /// Takes out of `members` the down verdicts about other members that
    /// are alive here under the same identity, and holds them for
    /// [`HELD_DOWN_FOR`]. Why: after a partition heals, each side's
    /// rosters list the other side as down (verdicts reached while split).
    /// Applied at once, and spread, they make every peer see its own
    /// side's members go down until each learns it and renews: in the
    /// simulator (20 peers, 200 replicas) views fell from 9 members to 0-2
    /// for a few hundred ms and the peers started 950 containers, several
    /// per replica, handed back right after. A member declared down that is
    /// alive learns it from the other side's roster and renews within a
    /// few rounds; the old identity's verdict is then moot. A member really
    /// down reaches us by SWIM's own gossip (not held), or here once the
    /// hold ends: a peer that missed that gossip learns it up to
    /// `HELD_DOWN_FOR` later. Suspects are not held: a failed probe
    /// stands behind the verdict.
    fn hold_stale_downs(
        &mut self,
        now: Duration,
        members: Vec<foca::Member<PeerIdentity>>,
    ) -> Vec<foca::Member<PeerIdentity>> {
        if !members
            .iter()
            .any(|m| m.state() == foca::State::Down && *m.id() != self.identity())
        {
            return members;
        }
        let alive = self.alive_identities();
        let mut held_any = false;
        let mut kept = Vec::with_capacity(members.len());
        for m in members {
            if m.state() != foca::State::Down || !alive.contains(m.id()) {
                kept.push(m);
            } else if self.held_downs.contains_key(m.id()) {
                // Already held: the first deadline stands (the digests keep
                // differing meanwhile, and each round resends the verdict).
            } else if self.held_downs.len() >= HELD_DOWNS_MAX {
                kept.push(m);
            } else {
                self.held_downs
                    .insert(*m.id(), (m.incarnation(), now + HELD_DOWN_FOR));
                self.stats.downs_held += 1;
                held_any = true;
            }
        }
        if held_any {
            self.schedule(now + HELD_DOWN_FOR, Scheduled::HeldDowns);
        }
        kept
    }

    /// The identities foca holds alive (not suspect, not down).
    fn alive_identities(&self) -> std::collections::BTreeSet<PeerIdentity> {
        self.foca
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Alive)
            .map(|m| *m.id())
            .collect()
    }

    /// Applies the held down verdicts whose hold has ended, for members
    /// still alive here under the same identity; drops the others (the
    /// member renewed, or is already down).
    pub(super) fn apply_held_downs(&mut self, now: Duration) -> Result<(), MembershipError> {
        let due: Vec<(PeerIdentity, u16)> = self
            .held_downs
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, (incarnation, _))| (*id, *incarnation))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for (id, _) in &due {
            self.held_downs.remove(id);
        }
        let alive = self.alive_identities();
        let verdicts: Vec<_> = due
            .into_iter()
            .filter(|(id, _)| alive.contains(id))
            .map(|(id, incarnation)| foca::Member::new(id, incarnation, foca::State::Down))
            .collect();
        self.stats.held_downs_applied += verdicts.len() as u64;
        Ok(self
            .foca
            .apply_many(verdicts.into_iter(), true, &mut self.outbox)?)
    }

    /// Tells `suspect` that our probe failed, so a live one refutes at
    /// once; repeated at a third and two thirds of the suspicion window
    /// while it is still suspected (a notice or its answer may be lost).
    pub(super) fn notify_suspect(
        &mut self,
        now: Duration,
        suspect: PeerIdentity,
        incarnation: u16,
        first: bool,
    ) -> Result<(), MembershipError> {
        let still_suspect = self.foca.iter_membership_state().any(|m| {
            *m.id() == suspect
                && m.state() == foca::State::Suspect
                && m.incarnation() == incarnation
        });
        if !still_suspect {
            return Ok(());
        }
        if first {
            let third = self.preset.config(self.config_bucket).suspect_to_down_after / 3;
            for at in [now + third, now + 2 * third] {
                self.schedule(
                    at,
                    Scheduled::SuspectNotice {
                        suspect,
                        incarnation,
                    },
                );
            }
        }
        let bytes = suspect_notice(&WireMember {
            id: suspect,
            incarnation,
            state: 1,
        })?;
        self.outputs.push_back(Output::Send {
            to: suspect.addr,
            bytes,
        });
        Ok(())
    }

    /// A prober tells us we are suspected: refute (foca bumps our SWIM
    /// incarnation) and answer the prober directly with an announce, whose
    /// header carries the new incarnation and clears the suspicion there.
    pub(super) fn refute(&mut self, from: SocketAddr, body: &[u8]) -> Result<(), MembershipError> {
        let notice = decode_suspect_notice(body)?;
        if notice.id != self.identity() || notice.state != 1 {
            // About an identity we no longer have: the cluster will learn
            // the renewed one by itself.
            return Ok(());
        }
        let member = notice.into_member()?;
        self.stats.refutations += 1;
        self.foca
            .apply_many(std::iter::once(member), true, &mut self.outbox)?;
        Ok(self
            .foca
            .announce(PeerIdentity::seed(from), &mut self.outbox)?)
    }

    /// Next anti-entropy round in 0.75–1.25 periods (jitter keeps peers
    /// from syncing in lockstep).
    pub(super) fn schedule_sync(&mut self, now: Duration) {
        let at = now
            + self
                .preset
                .sync_period()
                .mul_f64(self.rng.random_range(0.75..1.25));
        self.schedule(at, Scheduled::Sync);
        self.sync_scheduled = true;
    }

    /// The address of a random member we know of, down ones included: a
    /// down member's address may run a renewed identity by now, or sit on
    /// the other side of a partition that healed.
    pub(super) fn random_member_addr(&mut self) -> Option<SocketAddr> {
        let len = self.foca.iter_membership_state().len();
        if len == 0 {
            return None;
        }
        let pick = self.rng.random_range(0..len);
        let addr = self.foca.iter_membership_state().nth(pick)?.id().addr;
        (addr != self.identity().addr).then_some(addr)
    }

    /// Our digest: the active identities, ourselves included.
    /// Cached per view version: every change of the active set (up,
    /// down, rename, our own renewal) bumps the version.
    pub(super) fn digest(&self, reply: bool) -> Digest {
        if let Some((version, mut digest)) = self.digest_cache.get()
            && version == self.version
        {
            digest.reply = reply;
            return digest;
        }
        let me = self.identity();
        let mut digest = Digest::of(
            self.foca
                .iter_members()
                .map(|m| m.id())
                .chain(std::iter::once(&me)),
            reply,
        );
        self.digest_cache.set(Some((self.version, digest)));
        digest.reply = reply;
        digest
    }

    pub(super) fn sync_round(&mut self, now: Duration) -> Result<(), MembershipError> {
        self.sync_scheduled = false;
        if self.foca.iter_membership_state().len() == 0 {
            // `flush` restarts the rounds once we know someone.
            return Ok(());
        }
        self.schedule_sync(now);
        self.roster_expected.retain(|_, until| now <= *until);
        let Some(to) = self.random_member_addr() else {
            return Ok(());
        };
        self.roster_expected.insert(to, now + SYNC_WINDOW);
        let bytes = self.digest(false).encode(KIND_DIGEST);
        self.outputs.push_back(Output::Send { to, bytes });
        Ok(())
    }

    /// Answers a digest with our members of the buckets that differ and,
    /// unless it was itself an answer, with our digest.
    pub(super) fn answer_digest(
        &mut self,
        now: Duration,
        from: SocketAddr,
        body: &[u8],
    ) -> Result<(), MembershipError> {
        let theirs = Digest::decode(body).ok_or(MembershipError::Digest(body.len() + 1))?;
        if theirs.reply {
            if self
                .roster_expected
                .get(&from)
                .is_none_or(|until| now > *until)
            {
                return Err(MembershipError::UnsolicitedDigest(from));
            }
        } else if !self.may_answer(now, from) {
            return Ok(());
        }
        let mine = self.digest(true);
        let mut differing = mine.differing(&theirs);
        if differing.is_empty() {
            return Ok(());
        }
        differing.shuffle(&mut self.rng);
        let mut by_bucket: BTreeMap<usize, Vec<WireMember>> =
            differing.iter().map(|b| (*b, Vec::new())).collect();
        let me = self.identity();
        let own = WireMember {
            id: me,
            incarnation: 0,
            state: 0,
        };
        for member in self
            .foca
            .iter_membership_state()
            .map(WireMember::from_member)
            .chain(std::iter::once(own))
        {
            if let Some(list) = by_bucket.get_mut(&bucket_of(&member.id.addr)) {
                list.push(member);
            }
        }
        let members: Vec<WireMember> = differing
            .iter()
            .filter_map(|b| by_bucket.remove(b))
            .flatten()
            .collect();
        let (tokens, at) = self.sync_budget;
        let tokens = (tokens + now.saturating_sub(at).as_secs_f64() * SYNC_CHUNKS_PER_SECOND)
            .min(SYNC_MAX_CHUNKS as f64);
        let allowed = tokens.floor() as usize;
        let mut sent = 0;
        for bytes in roster_chunks(&members)?.into_iter().take(allowed) {
            sent += 1;
            self.outputs.push_back(Output::Send { to: from, bytes });
        }
        self.sync_budget = (tokens - sent as f64, now);
        if !theirs.reply {
            self.roster_expected.insert(from, now + SYNC_WINDOW);
            let bytes = mine.encode(KIND_DIGEST);
            self.outputs.push_back(Output::Send { to: from, bytes });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_crdt_state::node::NodeId;

    use crate::config::Preset;
    use crate::identity::PeerIdentity;
    use crate::membership::Membership;

    fn identity(i: u64, incarnation: u64) -> PeerIdentity {
        let addr = format!("10.0.0.{i}:7946").parse().unwrap();
        PeerIdentity::new(NodeId(i), addr, incarnation)
    }

    fn down(id: PeerIdentity) -> foca::Member<PeerIdentity> {
        foca::Member::new(id, 0, foca::State::Down)
    }

    /// A peer that sees member 2 alive (and nobody else).
    fn peer_seeing_2() -> Membership {
        let mut m = Membership::new(identity(1, 1), Preset::Lan, 1);
        m.restore_members(Duration::ZERO, [identity(2, 1)]).unwrap();
        m
    }

    #[test]
    fn a_roster_verdict_about_a_live_member_applies_only_once_the_hold_ends() {
        let mut m = peer_seeing_2();
        let t = Duration::from_secs(1);
        let kept = m.hold_stale_downs(t, vec![down(identity(2, 1))]);
        assert!(kept.is_empty());
        // Resent by the next rounds: still one hold, with its first deadline.
        m.hold_stale_downs(t + Duration::from_secs(3), vec![down(identity(2, 1))]);
        assert_eq!(m.stats().downs_held, 1);
        m.apply_held_downs(t + super::HELD_DOWN_FOR - Duration::from_millis(1))
            .unwrap();
        assert_eq!(m.view().active_nodes(), vec![NodeId(1), NodeId(2)]);
        m.apply_held_downs(t + super::HELD_DOWN_FOR).unwrap();
        assert_eq!(m.view().active_nodes(), vec![NodeId(1)]);
        assert_eq!(m.stats().held_downs_applied, 1);
    }

    #[test]
    fn a_held_verdict_is_dropped_once_the_member_renewed() {
        let mut m = peer_seeing_2();
        let t = Duration::from_secs(1);
        m.hold_stale_downs(t, vec![down(identity(2, 1))]);
        m.restore_members(t, [identity(2, 2)]).unwrap();
        m.apply_held_downs(t + super::HELD_DOWN_FOR).unwrap();
        assert_eq!(m.view().active_nodes(), vec![NodeId(1), NodeId(2)]);
        assert_eq!(m.stats().held_downs_applied, 0);
    }

    #[test]
    fn verdicts_about_members_not_alive_here_are_applied_at_once() {
        let mut m = peer_seeing_2();
        let unknown = down(identity(3, 1));
        let kept = m.hold_stale_downs(Duration::ZERO, vec![unknown.clone()]);
        assert_eq!(kept, vec![unknown]);
        assert_eq!(m.stats().downs_held, 0);
    }
}
