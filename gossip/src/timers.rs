//! foca's timers as data: kept here in deadline order, handed to the
//! driver as opaque tokens, fired in order, stale tokens ignored.

use std::collections::BTreeMap;
use std::time::Duration;

use foca::Timer;

use crate::identity::PeerIdentity;

/// Opaque handle the driver gives back to `Membership::handle_timer` at or
/// after its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerToken(pub u64);

/// foca asks that, at equal deadlines, an indirect probe fires before the
/// next probe round; the rest of its order is free.
fn rank(timer: &Timer<PeerIdentity>) -> u8 {
    match timer {
        Timer::SendIndirectProbe { .. } => 0,
        Timer::ProbeRandomMember(_) => 1,
        Timer::ChangeSuspectToDown { .. } => 2,
        Timer::PeriodicAnnounce(_) => 3,
        Timer::PeriodicGossip(_) => 4,
        Timer::RemoveDown(_) => 5,
        Timer::PeriodicAnnounceDown(_) => 6,
    }
}

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    pending: BTreeMap<(Duration, u8, u64), Timer<PeerIdentity>>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn schedule(&mut self, at: Duration, timer: Timer<PeerIdentity>) -> TimerToken {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert((at, rank(&timer), seq), timer);
        TimerToken(seq)
    }

    /// The earliest timer due at `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Timer<PeerIdentity>> {
        let entry = self.pending.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_deadline_order_with_indirect_probe_first_on_ties() {
        let mut q = TimerQueue::default();
        let ms = Duration::from_millis;
        q.schedule(ms(30), Timer::PeriodicGossip(0));
        q.schedule(ms(10), Timer::ProbeRandomMember(0));
        let probed = PeerIdentity::seed("127.0.0.1:1".parse().unwrap());
        q.schedule(
            ms(10),
            Timer::SendIndirectProbe {
                probed_id: probed,
                token: 0,
            },
        );
        assert_eq!(q.pop_due(ms(5)), None);
        assert!(matches!(
            q.pop_due(ms(40)),
            Some(Timer::SendIndirectProbe { .. })
        ));
        assert_eq!(q.pop_due(ms(40)), Some(Timer::ProbeRandomMember(0)));
        assert_eq!(q.pop_due(ms(40)), Some(Timer::PeriodicGossip(0)));
        assert_eq!(q.pop_due(ms(40)), None);
    }
}
