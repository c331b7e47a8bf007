//! Outgoing streams: request/response (replicated acknowledgements,
//! image transfers) and one-way pushes of framed messages (state sync).
//!
//! Each call opens a fresh stream on the cached connection (streams are
//! cheap in QUIC and independent, so a slow reply never blocks gossip
//! datagrams or another request). The whole call is bounded by the request
//! timeout, and replies are read with the caller's size limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::{ReadError, ReadToEndError, WriteError};

use super::Shared;
use super::error::TransportError;
use super::stats::{Counters, add};

/// A reply read piece by piece, with no size limit: each piece must arrive
/// within the idle bound instead. See [`super::QuicTransport::request_stream`].
#[derive(Debug)]
pub struct ReplyStream {
    to: SocketAddr,
    recv: quinn::RecvStream,
    idle: Duration,
    counters: Arc<Counters>,
}

impl ReplyStream {
    /// The next piece of the reply, `None` at its end. A reply the peer
    /// reset (it failed, or refused) is an error, never a shorter reply.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, TransportError> {
        let (to, after) = (self.to, self.idle);
        let chunk = tokio::time::timeout(after, self.recv.read_chunk(64 * 1024, true))
            .await
            .map_err(|_| TransportError::Timeout { to, after })?
            .map_err(|e| chunk_error(to, e))?;
        Ok(chunk.map(|c| {
            add(&self.counters.stream_bytes_received, c.bytes.len());
            c.bytes
        }))
    }
}

impl Shared {
    /// See [`super::QuicTransport::request`].
    pub(crate) async fn request(
        self: &Arc<Self>,
        to: SocketAddr,
        body: Bytes,
        limit: usize,
    ) -> Result<Bytes, TransportError> {
        let after = self.config.request_timeout;
        let result = tokio::time::timeout(after, self.exchange(to, body, limit))
            .await
            .unwrap_or(Err(TransportError::Timeout { to, after }));
        match &result {
            Ok(_) => add(&self.counters.requests_completed, 1),
            Err(e) => {
                add(&self.counters.requests_failed, 1);
                tracing::debug!(%to, error = %e, "request failed");
            }
        }
        result
    }

    async fn exchange(
        self: &Arc<Self>,
        to: SocketAddr,
        body: Bytes,
        limit: usize,
    ) -> Result<Bytes, TransportError> {
        let conn = self.connection(to).await?;
        let (mut send, mut recv) =
            conn.open_bi()
                .await
                .map_err(|e| TransportError::ConnectionLost {
                    to,
                    reason: e.to_string(),
                })?;
        self.send_all(to, &mut send, body).await?;
        // Dropping `recv` on error tells the peer to stop sending.
        let reply = recv
            .read_to_end(limit)
            .await
            .map_err(|e| read_error(to, limit, e))?;
        add(&self.counters.stream_bytes_received, reply.len());
        Ok(Bytes::from(reply))
    }

    /// Writes `body` as the whole of `send`'s stream, then counts it.
    async fn send_all(
        &self,
        to: SocketAddr,
        send: &mut quinn::SendStream,
        body: Bytes,
    ) -> Result<(), TransportError> {
        let size = body.len();
        send.write_chunk(body)
            .await
            .map_err(|e| write_error(to, e))?;
        send.finish().map_err(|e| TransportError::Stream {
            to,
            reason: e.to_string(),
        })?;
        add(&self.counters.stream_bytes_sent, size);
        Ok(())
    }

    /// See [`super::QuicTransport::request_stream`].
    pub(crate) async fn request_stream(
        self: &Arc<Self>,
        to: SocketAddr,
        body: Bytes,
        idle: Duration,
    ) -> Result<ReplyStream, TransportError> {
        let after = self.config.request_timeout;
        let open = async {
            let conn = self.connection(to).await?;
            let (mut send, recv) =
                conn.open_bi()
                    .await
                    .map_err(|e| TransportError::ConnectionLost {
                        to,
                        reason: e.to_string(),
                    })?;
            self.send_all(to, &mut send, body).await?;
            Ok(ReplyStream {
                to,
                recv,
                idle,
                counters: self.counters.clone(),
            })
        };
        tokio::time::timeout(after, open)
            .await
            .unwrap_or(Err(TransportError::Timeout { to, after }))
    }

    /// See [`super::QuicTransport::push_frames`].
    pub(crate) async fn push_frames(
        self: &Arc<Self>,
        to: SocketAddr,
        frames: Vec<Bytes>,
    ) -> Result<(), TransportError> {
        let after = self.config.request_timeout;
        let open = async {
            let conn = self.connection(to).await?;
            conn.open_uni()
                .await
                .map_err(|e| TransportError::ConnectionLost {
                    to,
                    reason: e.to_string(),
                })
        };
        let mut send = tokio::time::timeout(after, open)
            .await
            .unwrap_or(Err(TransportError::Timeout { to, after }))?;
        // Each frame within the timeout, not the whole stream: a long
        // transfer moves at the pace of the receiver's flow control.
        let count = frames.len();
        for frame in frames {
            let size = frame.len();
            let len = u32::try_from(size).map_err(|_| TransportError::Stream {
                to,
                reason: format!("a frame of {size} bytes cannot be sent"),
            })?;
            let write = async {
                send.write_all(&len.to_le_bytes())
                    .await
                    .map_err(|e| write_error(to, e))?;
                send.write_chunk(frame)
                    .await
                    .map_err(|e| write_error(to, e))
            };
            tokio::time::timeout(after, write)
                .await
                .unwrap_or(Err(TransportError::Timeout { to, after }))?;
            add(&self.counters.stream_bytes_sent, size + FRAME_HEADER);
        }
        send.finish().map_err(|e| TransportError::Stream {
            to,
            reason: e.to_string(),
        })?;
        add(&self.counters.pushes_sent, count);
        Ok(())
    }
}

/// Bytes before each frame of a push: its length, u32 little-endian.
pub(crate) const FRAME_HEADER: usize = 4;

/// Maps a stream write failure to what it means for the caller.
pub(crate) fn write_error(to: SocketAddr, e: WriteError) -> TransportError {
    match e {
        WriteError::Stopped(_) => TransportError::Declined { to },
        WriteError::ConnectionLost(e) => TransportError::ConnectionLost {
            to,
            reason: e.to_string(),
        },
        other => TransportError::Stream {
            to,
            reason: other.to_string(),
        },
    }
}

/// Maps a reply read failure to what it means for the caller.
fn read_error(to: SocketAddr, limit: usize, e: ReadToEndError) -> TransportError {
    match e {
        ReadToEndError::TooLong => TransportError::ResponseTooLarge { to, limit },
        ReadToEndError::Read(e) => chunk_error(to, e),
    }
}

/// Maps a failure to read part of a reply: a reset means the peer declined.
fn chunk_error(to: SocketAddr, e: ReadError) -> TransportError {
    match e {
        ReadError::Reset(_) => TransportError::Declined { to },
        ReadError::ConnectionLost(e) => TransportError::ConnectionLost {
            to,
            reason: e.to_string(),
        },
        other => TransportError::Stream {
            to,
            reason: other.to_string(),
        },
    }
}
