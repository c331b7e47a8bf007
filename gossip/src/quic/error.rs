//! What can go wrong in the QUIC transport, with messages an operator can act on.

use std::net::SocketAddr;
use std::time::Duration;

/// A transport failure. Each variant says which peer and what to check.
///
/// None of these affect other peers' connections: a failed send or request
/// leaves the transport usable, and the next call to the same peer reconnects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// `bind` was called outside a tokio runtime.
    #[error("the QUIC transport must be started from inside a tokio runtime")]
    NoRuntime,
    /// The UDP socket could not be bound.
    #[error(
        "cannot bind UDP {addr}: {source} (is another process using the port, or is the address not local?)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificate generation failed (a bug or an unusable address).
    #[error("cannot build the cluster certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A setting in `QuicConfig` is out of range.
    #[error("invalid transport configuration: {0}")]
    Config(String),
    /// The TLS configuration could not be adapted to QUIC.
    #[error("cannot set up TLS for QUIC: {0}")]
    TlsSetup(String),
    /// No connection could be established (unreachable, timed out, or the
    /// handshake failed: a peer with another join token ends up here).
    #[error(
        "cannot connect to {to}: {reason} (is the peer up, reachable over UDP, and using the same join token?)"
    )]
    Connect {
        /// The peer dialled.
        to: SocketAddr,
        /// What quinn or TLS reported.
        reason: String,
    },
    /// An established connection broke during a call.
    #[error("connection to {to} lost: {reason}")]
    ConnectionLost {
        /// The peer.
        to: SocketAddr,
        /// Why the connection closed.
        reason: String,
    },
    /// The datagram does not fit the connection's current datagram limit.
    #[error(
        "datagram of {size} bytes to {to} exceeds the connection's limit of {max} bytes; keep gossip packets below `max_datagram_size()`"
    )]
    DatagramTooLarge {
        /// The peer.
        to: SocketAddr,
        /// The datagram's size.
        size: usize,
        /// The limit at the time of sending (0 if unknown).
        max: usize,
    },
    /// The peer negotiated no datagram support.
    #[error("{to} does not accept QUIC datagrams")]
    DatagramsUnsupported {
        /// The peer.
        to: SocketAddr,
    },
    /// The whole request (connect, send, reply) took too long.
    #[error("request to {to} timed out after {after:?}")]
    Timeout {
        /// The peer.
        to: SocketAddr,
        /// The configured timeout.
        after: Duration,
    },
    /// The reply is longer than the caller's limit; it was abandoned unread.
    #[error("response from {to} exceeds the limit of {limit} bytes and was discarded")]
    ResponseTooLarge {
        /// The peer.
        to: SocketAddr,
        /// The caller's limit.
        limit: usize,
    },
    /// The peer reset the stream: it was overloaded, the request was larger
    /// than it accepts, or its handler dropped the request unanswered.
    #[error("{to} declined the request (overloaded, request too large, or no handler answered)")]
    Declined {
        /// The peer.
        to: SocketAddr,
    },
    /// A stream failed for another reason.
    #[error("stream to {to} failed: {reason}")]
    Stream {
        /// The peer.
        to: SocketAddr,
        /// What quinn reported.
        reason: String,
    },
    /// The transport was shut down.
    #[error("the QUIC transport is shut down")]
    ShutDown,
}
