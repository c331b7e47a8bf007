//! The per-peer connection cache and datagram sending.
//!
//! One slot per peer address. A slot is either a live connection or a dial in
//! progress holding a bounded queue of datagrams and the requests waiting for
//! it. Connections are made on demand by the first send, reused by every later
//! one, and forgotten when they close (loss, idle timeout, peer shutdown), so
//! the next send dials again. An inbound connection from a peer fills its slot
//! too, so replies travel on the connection the peer opened.
//!
//! The lock is never held across an await; everything under it is a quick
//! in-memory operation (quinn's `send_datagram` only queues).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use quinn::{Connection, SendDatagramError};
use tokio::sync::oneshot;

use super::Shared;
use super::error::TransportError;
use super::inbound::drive_connection;
use super::stats::add;

/// What a waiting request gets when the dial ends: the connection, or why not.
type Waiter = oneshot::Sender<Result<Connection, String>>;

/// The cache entry for one peer address.
pub(crate) enum Slot {
    /// An established connection (possibly closed since; checked on use).
    Connected(Connection),
    /// A dial in progress.
    Connecting(Pending),
}

/// What accumulates while a dial is in progress.
pub(crate) struct Pending {
    /// Datagrams to flush once connected, oldest first, bounded.
    queued: VecDeque<Bytes>,
    /// Requests and pushes waiting for the connection.
    waiters: Vec<Waiter>,
}

/// One spelling per peer: an IPv4 peer seen through a dual-stack socket
/// (`::ffff:a.b.c.d`) is keyed and reported as plain IPv4, so the address a
/// datagram came from matches the address the core sends to.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Slot {
    /// A connection that has not closed.
    pub(crate) fn is_live(&self) -> bool {
        matches!(self, Slot::Connected(c) if c.close_reason().is_none())
    }
}

impl Shared {
    /// The live cached connection to `to`, if any.
    pub(crate) fn live_connection(&self, to: SocketAddr) -> Option<Connection> {
        match self.lock_peers().get(&to) {
            Some(Slot::Connected(c)) if c.close_reason().is_none() => Some(c.clone()),
            _ => None,
        }
    }

    /// See [`super::QuicTransport::send_datagram`].
    pub(crate) fn send_datagram(
        self: &Arc<Self>,
        to: SocketAddr,
        bytes: Bytes,
    ) -> Result<(), TransportError> {
        if self.is_closing() {
            return Err(TransportError::ShutDown);
        }
        let size = bytes.len();
        let mut peers = self.lock_peers();
        if let Some(Slot::Connected(conn)) = peers.get(&to) {
            if conn.close_reason().is_none() {
                match conn.send_datagram(bytes.clone()) {
                    Ok(()) => {
                        add(&self.counters.datagrams_sent, 1);
                        add(&self.counters.datagram_bytes_sent, size);
                        return Ok(());
                    }
                    Err(SendDatagramError::TooLarge) => {
                        return Err(TransportError::DatagramTooLarge {
                            to,
                            size,
                            max: conn.max_datagram_size().unwrap_or(0),
                        });
                    }
                    Err(SendDatagramError::UnsupportedByPeer | SendDatagramError::Disabled) => {
                        return Err(TransportError::DatagramsUnsupported { to });
                    }
                    // Lost between the check and the send: dial again below.
                    Err(SendDatagramError::ConnectionLost(_)) => {}
                }
            }
            peers.remove(&to);
        }
        match peers.get_mut(&to) {
            Some(Slot::Connecting(pending)) => {
                pending.queued.push_back(bytes);
                if pending.queued.len() > self.config.connect_queue.max(1) {
                    pending.queued.pop_front();
                    add(&self.counters.datagrams_dropped_send, 1);
                }
            }
            _ => {
                let pending = Pending {
                    queued: VecDeque::from([bytes]),
                    waiters: Vec::new(),
                };
                peers.insert(to, Slot::Connecting(pending));
                drop(peers);
                self.spawn_dial(to);
            }
        }
        Ok(())
    }

    /// The live connection to `to`, dialling (or joining a dial in progress)
    /// if there is none.
    pub(crate) async fn connection(
        self: &Arc<Self>,
        to: SocketAddr,
    ) -> Result<Connection, TransportError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut peers = self.lock_peers();
            if self.is_closing() {
                return Err(TransportError::ShutDown);
            }
            match peers.get_mut(&to) {
                Some(Slot::Connected(c)) if c.close_reason().is_none() => return Ok(c.clone()),
                Some(Slot::Connecting(pending)) => pending.waiters.push(tx),
                _ => {
                    let pending = Pending {
                        queued: VecDeque::new(),
                        waiters: vec![tx],
                    };
                    peers.insert(to, Slot::Connecting(pending));
                    drop(peers);
                    self.spawn_dial(to);
                }
            }
        }
        match rx.await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(reason)) => Err(TransportError::Connect { to, reason }),
            // The slot was dropped without an answer: only shutdown does that.
            Err(_) => Err(TransportError::ShutDown),
        }
    }

    /// Starts the dial task for the slot just set to `Connecting`.
    fn spawn_dial(self: &Arc<Self>, to: SocketAddr) {
        let shared = self.clone();
        self.runtime.spawn(async move {
            match shared.dial(to).await {
                Ok(conn) => {
                    add(&shared.counters.connections_opened, 1);
                    tracing::debug!(%to, "connected");
                    shared.record_dial(to, None);
                    shared.install(to, conn);
                }
                Err(reason) => {
                    add(&shared.counters.handshake_failures, 1);
                    shared.note_identity_refusal(to, &reason);
                    tracing::debug!(%to, %reason, "connect failed");
                    shared.record_dial(to, Some(reason.clone()));
                    shared.fail_pending(to, reason);
                }
            }
        });
    }

    /// Remembers why a dial failed (bounded: the oldest reasons give way),
    /// or forgets it once one succeeded.
    pub(crate) fn record_dial(&self, to: SocketAddr, failure: Option<String>) {
        /// More distinct failing addresses than this are not worth keeping.
        const MAX_REMEMBERED: usize = 1024;
        let mut failures = self.dial_failures.lock().unwrap_or_else(|e| e.into_inner());
        match failure {
            None => {
                failures.remove(&to);
            }
            Some(reason) => {
                if failures.len() >= MAX_REMEMBERED && !failures.contains_key(&to) {
                    failures.clear();
                }
                failures.insert(to, reason);
            }
        }
    }

    async fn dial(&self, to: SocketAddr) -> Result<Connection, String> {
        let (client, server_name) = self.client_config();
        let connecting = self
            .endpoint
            .connect_with(client, to, &server_name)
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.config.connect_timeout, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no handshake within {:?}",
                self.config.connect_timeout
            )),
        }
    }

    /// Puts an established connection (dialled or accepted) in the slot for
    /// `key`, flushes what waited for it, and starts reading from it.
    ///
    /// If the slot already holds another live connection (both peers dialled
    /// at once), that one stays the cached one; the new connection is still
    /// served until it idles out, so nothing sent on it is lost.
    pub(crate) fn install(self: &Arc<Self>, key: SocketAddr, conn: Connection) {
        if self.is_closing() {
            conn.close(quinn::VarInt::from_u32(0), b"shutdown");
            return;
        }
        let mut waiters = Vec::new();
        {
            let mut peers = self.lock_peers();
            let keep_existing = matches!(
                peers.get(&key),
                Some(Slot::Connected(existing))
                    if existing.close_reason().is_none() && existing.stable_id() != conn.stable_id()
            );
            if !keep_existing
                && let Some(Slot::Connecting(pending)) =
                    peers.insert(key, Slot::Connected(conn.clone()))
            {
                // Flushed under the lock so that datagrams sent meanwhile
                // cannot overtake the queued ones.
                for bytes in pending.queued {
                    let size = bytes.len();
                    match conn.send_datagram(bytes) {
                        Ok(()) => {
                            add(&self.counters.datagrams_sent, 1);
                            add(&self.counters.datagram_bytes_sent, size);
                        }
                        Err(e) => {
                            add(&self.counters.datagrams_dropped_send, 1);
                            tracing::debug!(to = %key, error = %e, size, "queued datagram dropped");
                        }
                    }
                }
                waiters = pending.waiters;
            }
        }
        for waiter in waiters {
            // A waiter that gave up (timed out) is fine to skip.
            let _ = waiter.send(Ok(conn.clone()));
        }
        self.runtime
            .spawn(drive_connection(self.clone(), key, conn));
    }

    /// Ends a failed dial: drops its queue (counted) and fails its waiters.
    fn fail_pending(&self, to: SocketAddr, reason: String) {
        let pending = {
            let mut peers = self.lock_peers();
            match peers.get(&to) {
                Some(Slot::Connecting(_)) => match peers.remove(&to) {
                    Some(Slot::Connecting(pending)) => Some(pending),
                    _ => None,
                },
                _ => None,
            }
        };
        if let Some(pending) = pending {
            add(&self.counters.datagrams_dropped_send, pending.queued.len());
            for waiter in pending.waiters {
                let _ = waiter.send(Err(reason.clone()));
            }
        }
    }

    /// Forgets the connection `stable_id` at `key` once it has closed, unless
    /// the slot already moved on to another connection or dial.
    pub(crate) fn forget(&self, key: SocketAddr, stable_id: usize) {
        let mut peers = self.lock_peers();
        if matches!(peers.get(&key), Some(Slot::Connected(c)) if c.stable_id() == stable_id) {
            peers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn ipv4_mapped_addresses_are_keyed_as_ipv4() {
        let mapped = "[::ffff:10.0.0.5]:7000".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.5:7000".parse().unwrap());
        let v6 = "[2001:db8::1]:7000".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
