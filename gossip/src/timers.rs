//! foca's timers, and Membership's own (join retries, anti-entropy), as
//! data: kept here in deadline order, fired in order. The driver sees only
//! the earliest deadline (`Membership::poll_timeout`).

use std::collections::BTreeMap;
use std::time::Duration;

use foca::Timer;

use crate::identity::PeerIdentity;

/// foca asks that, at equal deadlines, an indirect probe fires before the
/// next probe round; the rest of its order is free.
fn rank(timer: &Scheduled) -> u8 {
    match timer {
        Scheduled::Foca(Timer::SendIndirectProbe { .. }) => 0,
        Scheduled::Foca(Timer::ProbeRandomMember(_)) => 1,
        Scheduled::Foca(Timer::ChangeSuspectToDown { .. }) => 2,
        Scheduled::Foca(Timer::PeriodicAnnounce(_)) => 3,
        Scheduled::Foca(Timer::PeriodicGossip(_)) => 4,
        Scheduled::Foca(Timer::RemoveDown(_)) => 5,
        Scheduled::Foca(Timer::PeriodicAnnounceDown(_)) => 6,
        Scheduled::JoinRetry => 7,
        Scheduled::Sync => 8,
        Scheduled::SuspectNotice { .. } => 9,
        Scheduled::HeldDowns => 10,
    }
}

/// What a pending timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheduled {
    /// Handed back to foca.
    Foca(Timer<PeerIdentity>),
    /// Repeat the announce and roster request until joined.
    JoinRetry,
    /// One anti-entropy round (member digest to a random member).
    Sync,
    /// Tell `suspect` again, if it is still suspected at `incarnation`.
    SuspectNotice {
        suspect: PeerIdentity,
        incarnation: u16,
    },
    /// Apply the held down verdicts whose hold has ended.
    HeldDowns,
}

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    pending: BTreeMap<(Duration, u8, u64), Scheduled>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn schedule(&mut self, at: Duration, timer: Scheduled) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert((at, rank(&timer), seq), timer);
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.pending.first_key_value().map(|((at, _, _), _)| *at)
    }

    /// The earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Scheduled> {
        let entry = self.pending.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_with_indirect_probe_first_on_ties() {
        let mut q = TimerQueue::default();
        let ms = Duration::from_millis;
        q.schedule(ms(30), Scheduled::Foca(Timer::PeriodicGossip(0)));
        q.schedule(ms(10), Scheduled::Foca(Timer::ProbeRandomMember(0)));
        q.schedule(ms(10), Scheduled::Sync);
        let probed = PeerIdentity::seed("127.0.0.1:1".parse().unwrap());
        q.schedule(
            ms(10),
            Scheduled::Foca(Timer::SendIndirectProbe {
                probed_id: probed,
                token: 0,
            }),
        );
        assert_eq!(q.pop_due(ms(5)), None);
        assert!(matches!(
            q.pop_due(ms(40)),
            Some(Scheduled::Foca(Timer::SendIndirectProbe { .. }))
        ));
        assert_eq!(
            q.pop_due(ms(40)),
            Some(Scheduled::Foca(Timer::ProbeRandomMember(0)))
        );
        assert_eq!(q.pop_due(ms(40)), Some(Scheduled::Sync));
        assert_eq!(
            q.pop_due(ms(40)),
            Some(Scheduled::Foca(Timer::PeriodicGossip(0)))
        );
        assert_eq!(q.pop_due(ms(40)), None);
    }
}
