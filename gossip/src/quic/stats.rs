//! Transport counters: plain atomics, read as a [`TransportStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the transport's counters since `bind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Datagrams handed to a connection.
    pub datagrams_sent: u64,
    /// Their payload bytes.
    pub datagram_bytes_sent: u64,
    /// Datagrams received and delivered to the inbound channel.
    pub datagrams_received: u64,
    /// Their payload bytes.
    pub datagram_bytes_received: u64,
    /// Outgoing datagrams dropped: queue full while connecting, the connect
    /// failed, or too large when flushed.
    pub datagrams_dropped_send: u64,
    /// Incoming datagrams dropped because the inbound channel was full.
    pub datagrams_dropped_recv: u64,
    /// Requests answered successfully (as the requester).
    pub requests_completed: u64,
    /// Requests that failed (as the requester).
    pub requests_failed: u64,
    /// Requests delivered to the inbound channel.
    pub requests_received: u64,
    /// Incoming requests and pushes dropped: channel full, too large, or
    /// unreadable.
    pub streams_dropped_recv: u64,
    /// One-way pushes sent.
    pub pushes_sent: u64,
    /// One-way pushes delivered to the inbound channel.
    pub pushes_received: u64,
    /// Stream payload bytes sent (requests, responses, pushes).
    pub stream_bytes_sent: u64,
    /// Stream payload bytes received (requests, responses, pushes).
    pub stream_bytes_received: u64,
    /// Connections this node opened successfully.
    pub connections_opened: u64,
    /// Connections this node accepted.
    pub connections_accepted: u64,
    /// Failed handshakes in either direction: wrong token, timeout, refused.
    pub handshake_failures: u64,
    /// Handshakes refused because the peer's certificate names a node id
    /// bound to another key (also counted in `handshake_failures`).
    pub identity_refusals: u64,
}

/// The live counters, one atomic per field of [`TransportStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) datagrams_sent: AtomicU64,
    pub(crate) datagram_bytes_sent: AtomicU64,
    pub(crate) datagrams_received: AtomicU64,
    pub(crate) datagram_bytes_received: AtomicU64,
    pub(crate) datagrams_dropped_send: AtomicU64,
    pub(crate) datagrams_dropped_recv: AtomicU64,
    pub(crate) requests_completed: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) requests_received: AtomicU64,
    pub(crate) streams_dropped_recv: AtomicU64,
    pub(crate) pushes_sent: AtomicU64,
    pub(crate) pushes_received: AtomicU64,
    pub(crate) stream_bytes_sent: AtomicU64,
    pub(crate) stream_bytes_received: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) identity_refusals: AtomicU64,
}

/// Adds `n` to a counter. Relaxed: counters order nothing.
pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            datagrams_sent: get(&self.datagrams_sent),
            datagram_bytes_sent: get(&self.datagram_bytes_sent),
            datagrams_received: get(&self.datagrams_received),
            datagram_bytes_received: get(&self.datagram_bytes_received),
            datagrams_dropped_send: get(&self.datagrams_dropped_send),
            datagrams_dropped_recv: get(&self.datagrams_dropped_recv),
            requests_completed: get(&self.requests_completed),
            requests_failed: get(&self.requests_failed),
            requests_received: get(&self.requests_received),
            streams_dropped_recv: get(&self.streams_dropped_recv),
            pushes_sent: get(&self.pushes_sent),
            pushes_received: get(&self.pushes_received),
            stream_bytes_sent: get(&self.stream_bytes_sent),
            stream_bytes_received: get(&self.stream_bytes_received),
            connections_opened: get(&self.connections_opened),
            connections_accepted: get(&self.connections_accepted),
            handshake_failures: get(&self.handshake_failures),
            identity_refusals: get(&self.identity_refusals),
        }
    }
}
