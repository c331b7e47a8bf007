//! Reporting the messages a peer rejects. A member whose datagrams or sync
//! messages are all rejected (another build, a bug, a tampered peer) looks
//! from outside like a peer that never joins; its first rejection is worth a
//! warning, every one is not: one line per sender, then at most one a
//! minute with the count since ([`RepeatLog`]).

use std::net::SocketAddr;
use std::time::Instant;

use shoal_gossip::repeat_log::RepeatLog;

#[derive(Debug, Default)]
pub struct BadMessageLog {
    senders: RepeatLog<SocketAddr>,
}

impl BadMessageLog {
    /// Logs a rejection of a message from `from` when a warning is due.
    pub fn report(&mut self, from: SocketAddr, error: &str) {
        match self.senders.note(Instant::now(), from) {
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
