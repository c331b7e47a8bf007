//! Peer timers in both trees this benchmark is built in: here the core
//! keeps them (`Peer::poll_timeout` / `handle_timeout`); in a baseline
//! from before that (`--cfg shoal_baseline`) the driver kept them in a
//! heap of its own, fed by `Output::Timer`.

use std::time::Duration;

use shoal::peer::{Output, Peer};

#[cfg(not(shoal_baseline))]
#[derive(Debug, Default)]
pub struct Timers {}

#[cfg(not(shoal_baseline))]
impl Timers {
    /// An output the driver does not otherwise handle (none is a timer here).
    pub fn absorb(&mut self, _output: Output) {}

    pub fn next_deadline(&self, peer: &Peer) -> Option<Duration> {
        peer.poll_timeout()
    }

    /// Fires what is due at `now`; returns the deadlines it served.
    pub fn fire(&mut self, peer: &mut Peer, now: Duration) -> Vec<Duration> {
        match peer.poll_timeout() {
            Some(at) if at <= now => {
                peer.handle_timeout(now);
                vec![at]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(shoal_baseline)]
#[derive(Debug, Default)]
pub struct Timers {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Duration, u64, shoal::peer::PeerTimer)>>,
    seq: u64,
}

#[cfg(shoal_baseline)]
impl Timers {
    pub fn absorb(&mut self, output: Output) {
        if let Output::Timer { at, timer } = output {
            self.seq += 1;
            self.heap.push(std::cmp::Reverse((at, self.seq, timer)));
        }
    }

    pub fn next_deadline(&self, _peer: &Peer) -> Option<Duration> {
        self.heap.peek().map(|t| (t.0).0)
    }

    pub fn fire(&mut self, peer: &mut Peer, now: Duration) -> Vec<Duration> {
        let mut fired = Vec::new();
        while let Some(std::cmp::Reverse((at, _, timer))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            peer.handle_timer(now, timer);
            fired.push(at);
        }
        fired
    }
}
