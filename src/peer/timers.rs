//! The peer core's own timers, as data: kept here in deadline order (ties
//! in the order they were set), fired by `Peer::handle_timeout`. SWIM's
//! timers stay in `Membership`; the driver sees one deadline for both
//! (`Peer::poll_timeout`), as quinn-proto's connection does.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a pending timer does when it fires. A stale one (its work already
/// done, or superseded by an earlier one) does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PeerTimer {
    /// Exchange digests with one random member; check a new node's name;
    /// forget nodes down too long.
    AntiEntropy,
    /// Recompute placement if needed and plan container actions.
    Reconcile,
    /// Publish this node's pod statuses (coalesces bursts of observations).
    Publish,
    /// Push the records learned or changed since the last push.
    Push,
    /// Ask members that have not shown our record saying a pod drains for
    /// their digests (see `record_acks.rs`).
    AskHolders,
    /// A grace may be over: the startup grace of a restarted peer, or the
    /// one given to a member that left gracefully (see `resume.rs`).
    Grace,
    /// Ask the driver to write a snapshot if the state or the members to
    /// remember changed since the last one.
    Checkpoint,
}

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    pending: BTreeMap<(Duration, u64), PeerTimer>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn schedule(&mut self, at: Duration, timer: PeerTimer) {
        self.pending.insert((at, self.next_seq), timer);
        self.next_seq += 1;
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Duration> {
        self.pending.first_key_value().map(|((at, _), _)| *at)
    }

    /// A mark: timers set from now on are not [`Self::pop_due`] before it.
    pub(crate) fn mark(&self) -> u64 {
        self.next_seq
    }

    /// The deadline of the earliest timer due at `now` that was set before
    /// `mark`.
    pub(crate) fn next_due(&self, now: Duration, mark: u64) -> Option<Duration> {
        self.first_due(now, mark).map(|(at, _)| at)
    }

    /// Removes and returns the timer [`Self::next_due`] names, with its
    /// deadline.
    pub(crate) fn pop_due(&mut self, now: Duration, mark: u64) -> Option<(Duration, PeerTimer)> {
        let key = self.first_due(now, mark)?;
        self.pending.remove(&key).map(|timer| (key.0, timer))
    }

    fn first_due(&self, now: Duration, mark: u64) -> Option<(Duration, u64)> {
        self.pending
            .keys()
            .take_while(|(at, _)| *at <= now)
            .find(|(_, seq)| *seq < mark)
            .copied()
    }

    #[cfg(test)]
    pub(crate) fn pending(&self) -> impl Iterator<Item = (Duration, PeerTimer)> + '_ {
        self.pending.iter().map(|((at, _), timer)| (*at, *timer))
    }
}
