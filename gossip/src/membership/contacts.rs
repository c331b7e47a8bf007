//! Reaching the cluster: `--join` seeds and remembered members.
//!
//! A peer announces itself (SWIM `Announce` plus a roster request) to every
//! contact, repeating with back-off until it is connected and holds a
//! roster; then the seeds are dropped (they were only a way in). Remembered
//! members — the member list a restarted peer persisted — are announced to
//! until each is seen active once, forever with a back-off capped at
//! [`REMEMBERED_RETRY_MAX`]: any subset of a cluster that restarts finds
//! itself again without a seed, and a member that comes back later is
//! found too. After that foca's periodic announce to down members covers
//! members that go down again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Membership, MembershipError, Output, ROSTER_WINDOW};
use crate::config::MAX_JOIN_RETRY;
use crate::envelope::KIND_ROSTER_REQUEST;
use crate::identity::PeerIdentity;
use crate::timers::Scheduled;

/// Longest wait between two announces to a remembered member that has not
/// answered, once we are part of a cluster.
pub const REMEMBERED_RETRY_MAX: Duration = Duration::from_secs(30);

/// Most contacts announced to per round: a restarted peer of a large
/// cluster remembers every member, and each announce to a dead address
/// costs a connection attempt. Rounds rotate through the rest.
const CONTACTS_PER_ROUND: usize = 32;

/// Who we try to reach, and the retry clock.
#[derive(Debug, Default)]
pub(super) struct Contacts {
    /// `--join` addresses, until the join completes.
    seeds: BTreeSet<SocketAddr>,
    /// Persisted members, until each is seen active.
    remembered: BTreeSet<SocketAddr>,
    /// A roster arrived since the last join began.
    roster_received: bool,
    /// Wait before the next round.
    retry: Duration,
    /// When the next round is due; an earlier-scheduled timer is stale.
    due: Option<Duration>,
    /// Rotation through contacts beyond [`CONTACTS_PER_ROUND`].
    cursor: usize,
}

impl Contacts {
    /// A join is in progress: rosters answer our requests.
    pub(super) fn awaiting_roster(&self) -> bool {
        let no_contacts = self.seeds.is_empty() && self.remembered.is_empty();
        !self.roster_received && !no_contacts
    }

    pub(super) fn roster_received(&mut self) {
        self.roster_received = true;
    }
}

impl Membership {
    /// Joins the cluster `seed` belongs to. See [`Membership::join_any`].
    pub fn join(&mut self, now: Duration, seed: SocketAddr) -> Result<(), MembershipError> {
        self.join_any(now, &[seed])
    }

    /// Joins the cluster any of `seeds` belongs to: a SWIM announce plus a
    /// roster request to each, so we learn every member at once rather
    /// than over minutes. Repeated (1 s, 2 s, 4 s, then every 8 s on LAN)
    /// until we are connected and a roster arrived, so a lost datagram or
    /// seeds that are not up yet only delay the join.
    pub fn join_any(&mut self, now: Duration, seeds: &[SocketAddr]) -> Result<(), MembershipError> {
        let me = self.identity().addr;
        self.contacts
            .seeds
            .extend(seeds.iter().filter(|&&s| s != me));
        self.restart_contacts(now)
    }

    /// Remembers `addrs` (a persisted member list): they are announced to
    /// until each answers, forever with back-off (see the module docs).
    pub fn remember(&mut self, now: Duration, addrs: &[SocketAddr]) -> Result<(), MembershipError> {
        let me = self.identity().addr;
        self.contacts
            .remembered
            .extend(addrs.iter().filter(|&&a| a != me));
        self.restart_contacts(now)
    }

    /// Stops trying to reach `addr` (a member forgotten for good).
    pub fn forget_contact(&mut self, addr: SocketAddr) {
        self.contacts.seeds.remove(&addr);
        self.contacts.remembered.remove(&addr);
    }

    /// True once SWIM counts at least one other member in.
    pub fn is_connected(&self) -> bool {
        self.foca.num_members() > 0
    }

    /// Seeds and remembered members not heard from yet, sorted.
    pub fn unreached_contacts(&self) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = self
            .contacts
            .seeds
            .union(&self.contacts.remembered)
            .copied()
            .collect();
        all.sort_unstable();
        all
    }

    fn restart_contacts(&mut self, now: Duration) -> Result<(), MembershipError> {
        self.contacts.roster_received = false;
        self.contacts.retry = self.preset.join_retry();
        self.contacts.due = None;
        let result = self.send_contact_round(now);
        self.flush(now);
        result
    }

    /// One round: announce to the contacts not seen yet, then reschedule.
    /// A timer from before the last restart of the rounds is stale.
    pub(super) fn contact_round(&mut self, now: Duration) -> Result<(), MembershipError> {
        if self.contacts.due.is_none_or(|due| now < due) {
            return Ok(());
        }
        self.contacts.due = None;
        self.contacts.retry *= 2;
        self.send_contact_round(now)
    }

    fn send_contact_round(&mut self, now: Duration) -> Result<(), MembershipError> {
        let active: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        self.contacts.remembered.retain(|a| !active.contains(a));
        let joined = self.contacts.roster_received && self.is_connected();
        if joined {
            self.contacts.seeds.clear();
        }
        let pool: Vec<SocketAddr> = if joined {
            self.contacts.remembered.iter().copied().collect()
        } else {
            self.contacts
                .seeds
                .union(&self.contacts.remembered)
                .copied()
                .collect()
        };
        if pool.is_empty() {
            return Ok(());
        }
        let cap = if joined {
            REMEMBERED_RETRY_MAX
        } else {
            MAX_JOIN_RETRY
        };
        self.contacts.retry = self.contacts.retry.clamp(self.preset.join_retry(), cap);
        let due = now + self.contacts.retry;
        self.contacts.due = Some(due);
        self.schedule(due, Scheduled::JoinRetry);
        let mut targets = rotate(&pool, self.contacts.cursor, CONTACTS_PER_ROUND);
        self.contacts.cursor = self.contacts.cursor.wrapping_add(targets.len());
        // Once connected, any member can send the roster: the contacts
        // may be the ones that died.
        if !joined
            && self.is_connected()
            && let Some(member) = self.random_member_addr()
        {
            targets.push(member);
        }
        let mut first_error = None;
        for to in targets {
            if !joined {
                self.roster_expected.insert(to, now + ROSTER_WINDOW);
                self.outputs.push_back(Output::Send {
                    to,
                    bytes: vec![KIND_ROSTER_REQUEST],
                });
            }
            if let Err(e) = self.foca.announce(PeerIdentity::seed(to), &mut self.outbox) {
                first_error.get_or_insert(MembershipError::from(e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Up to `n` items of `pool` starting at `cursor`, wrapping around.
fn rotate(pool: &[SocketAddr], cursor: usize, n: usize) -> Vec<SocketAddr> {
    if pool.len() <= n {
        return pool.to_vec();
    }
    (0..n).map(|i| pool[(cursor + i) % pool.len()]).collect()
}

#[cfg(test)]
mod tests {
    use super::rotate;
    use std::net::SocketAddr;

    #[test]
    fn rounds_rotate_through_large_contact_lists() {
        let pool: Vec<SocketAddr> = (1..=5)
            .map(|i| format!("10.0.0.{i}:1").parse().unwrap())
            .collect();
        assert_eq!(rotate(&pool, 0, 10), pool);
        assert_eq!(rotate(&pool, 3, 3), vec![pool[3], pool[4], pool[0]]);
    }
}
