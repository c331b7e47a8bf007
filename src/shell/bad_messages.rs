//! Reporting the messages a peer rejects. A member whose datagrams or sync
//! messages are all rejected (another build, a bug, a tampered peer) looks
//! from outside like a peer that never joins; its first rejection is worth a
//! warning, every one is not: one line per sender, then at most one per
//! [`REPEAT_EVERY`] with the count since.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Least time between two warnings about one sender.
const REPEAT_EVERY: Duration = Duration::from_secs(60);
/// Senders remembered; beyond it the oldest record is dropped (then its
/// next rejection warns again, which is harmless).
const MAX_SENDERS: usize = 256;

#[derive(Debug, Default)]
pub struct BadMessageLog {
    senders: HashMap<SocketAddr, Sender>,
}

#[derive(Debug)]
struct Sender {
    warned_at: Instant,
    /// Rejections since the last warning.
    since: u64,
}

impl BadMessageLog {
    /// Notes one rejected message from `from`; returns how many rejections
    /// the warning to log now covers, or `None` when it is not due.
    pub fn note(&mut self, now: Instant, from: SocketAddr) -> Option<u64> {
        if let Some(sender) = self.senders.get_mut(&from) {
            sender.since += 1;
            if now.duration_since(sender.warned_at) < REPEAT_EVERY {
                return None;
            }
            let count = sender.since;
            sender.warned_at = now;
            sender.since = 0;
            return Some(count);
        }
        if self.senders.len() >= MAX_SENDERS
            && let Some(oldest) = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.warned_at)
                .map(|(addr, _)| *addr)
        {
            self.senders.remove(&oldest);
        }
        self.senders.insert(
            from,
            Sender {
                warned_at: now,
                since: 0,
            },
        );
        Some(1)
    }

    /// Logs a rejection of a message from `from` when a warning is due.
    pub fn report(&mut self, from: SocketAddr, error: &str) {
        match self.note(Instant::now(), from) {
            Some(count) => tracing::warn!(
                %from,
                %error,
                rejected = count,
                "rejected a message from a member (more from it are logged at most once a minute)"
            ),
            None => tracing::debug!(%from, %error, "rejected message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_sender_then_once_a_minute_with_the_count() {
        let mut log = BadMessageLog::default();
        let start = Instant::now();
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(log.note(start, a), Some(1));
        assert_eq!(log.note(start, b), Some(1));
        for s in 1..=9 {
            assert_eq!(log.note(start + Duration::from_secs(s), a), None);
        }
        assert_eq!(log.note(start + REPEAT_EVERY, a), Some(10));
        assert_eq!(log.note(start + REPEAT_EVERY, a), None);
    }

    #[test]
    fn remembers_a_bounded_number_of_senders() {
        let mut log = BadMessageLog::default();
        let now = Instant::now();
        for port in 0..(MAX_SENDERS as u16 * 2) {
            log.note(now, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        assert_eq!(log.senders.len(), MAX_SENDERS);
    }
}
