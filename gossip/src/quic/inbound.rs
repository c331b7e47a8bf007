//! Accepting peers and delivering what they send.
//!
//! One task accepts connections; one task per connection (dialled or
//! accepted) reads its datagrams and accepts its streams; one short task per
//! stream reads it (size-limited, time-limited) and hands it to the inbound
//! channels. Nothing here waits on the channels: a full channel means the
//! arrival is dropped and counted, so a slow core never stalls the network.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use quinn::{Connection, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;
use shoal_crdt_state::node::NodeId;

use super::Shared;
use super::error::TransportError;
use super::node_cert;
use super::peers::canonical;
use super::stats::{Counters, add};
use crate::repeat_log::RepeatLog;

/// Stream reset code: the request was refused or left unanswered.
pub(crate) const DECLINED: VarInt = VarInt::from_u32(1);

/// A request from a peer. Answer it with [`Responder::respond`]; dropping it
/// unanswered resets the stream, and the requester sees
/// [`TransportError::Declined`].
#[derive(Debug)]
pub struct InboundRequest {
    /// The requester's UDP address.
    pub remote: SocketAddr,
    /// The node id the requester's connection authenticated (`None`
    /// without a node key, see `QuicConfig::node_key`).
    pub node: Option<NodeId>,
    /// The request bytes (at most `QuicConfig::max_request_size`).
    pub body: Bytes,
    /// Sends the reply.
    pub responder: Responder,
}

/// The reply half of an [`InboundRequest`].
pub struct Responder {
    remote: SocketAddr,
    /// `None` once answered.
    send: Option<SendStream>,
    counters: Arc<Counters>,
}

impl Responder {
    /// Sends `reply` and ends the stream. The requester enforces its own size
    /// limit: a reply above it fails there with `ResponseTooLarge`.
    pub async fn respond(mut self, reply: Bytes) -> Result<(), TransportError> {
        let to = self.remote;
        let Some(mut send) = self.send.take() else {
            return Ok(());
        };
        let size = reply.len();
        send.write_chunk(reply)
            .await
            .map_err(|e| super::streams::write_error(to, e))?;
        send.finish().map_err(|e| TransportError::Stream {
            to,
            reason: e.to_string(),
        })?;
        add(&self.counters.stream_bytes_sent, size);
        Ok(())
    }
}

impl Responder {
    /// Sends one piece of a long reply; waits while the requester's flow
    /// control window is full, so a slow reader slows the sender instead of
    /// filling memory. End with [`Responder::finish`]; dropping the
    /// responder before that resets the stream, so the requester sees an
    /// incomplete reply as a failure, never as a shorter one.
    pub async fn send_chunk(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        let to = self.remote;
        let Some(send) = self.send.as_mut() else {
            return Err(TransportError::Stream {
                to,
                reason: "reply already finished".into(),
            });
        };
        let size = chunk.len();
        send.write_chunk(chunk)
            .await
            .map_err(|e| super::streams::write_error(to, e))?;
        add(&self.counters.stream_bytes_sent, size);
        Ok(())
    }

    /// Ends a reply sent with [`Responder::send_chunk`].
    pub fn finish(mut self) -> Result<(), TransportError> {
        let to = self.remote;
        match self.send.take() {
            Some(mut send) => send.finish().map_err(|e| TransportError::Stream {
                to,
                reason: e.to_string(),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(mut send) = self.send.take() {
            // Tell the requester now rather than let it wait for its timeout.
            let _ = send.reset(DECLINED);
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("remote", &self.remote)
            .field("answered", &self.send.is_none())
            .finish()
    }
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        if shared.is_closing() {
            incoming.refuse();
            continue;
        }
        let shared = shared.clone();
        shared.runtime.clone().spawn(async move {
            let remote = canonical(incoming.remote_address());
            let handshake = async { incoming.accept()?.await };
            match tokio::time::timeout(shared.config.connect_timeout, handshake).await {
                Ok(Ok(conn)) => {
                    add(&shared.counters.connections_accepted, 1);
                    tracing::debug!(%remote, "accepted");
                    shared.install(remote, conn);
                }
                Ok(Err(e)) => {
                    add(&shared.counters.handshake_failures, 1);
                    let text = e.to_string();
                    if shared.note_identity_refusal(remote, &text) {
                        return;
                    }
                    let mut refused = shared.refused.lock().unwrap_or_else(|e| e.into_inner());
                    match handshake_failure(&mut refused, Instant::now(), remote, &text) {
                        HandshakeFailure::RefusedWarn(refusals) => tracing::warn!(%remote, error = %text, refusals, "refused a peer: its certificate comes from no join token this node trusts (a wrong token, or one rotated out past its grace); more refusals of it are logged at most once a minute"),
                        HandshakeFailure::RefusedAgain => tracing::debug!(%remote, error = %text, "refused a peer again"),
                        HandshakeFailure::Other => tracing::debug!(%remote, error = %text, "inbound handshake failed"),
                    }
                }
                Err(_) => {
                    add(&shared.counters.handshake_failures, 1);
                    tracing::debug!(%remote, "inbound handshake timed out");
                }
            }
        });
    }
}

/// How to report one failed inbound handshake.
#[derive(Debug, PartialEq, Eq)]
enum HandshakeFailure {
    /// A certificate from no trusted token (what an operator looks for when
    /// a joiner with a wrong or rotated-out token knocks): warn, covering
    /// this many refusals of that address.
    RefusedWarn(u64),
    /// The same refusal within a minute of its warning (the joiner retries).
    RefusedAgain,
    /// Anything else (a timeout, a reset): not worth a warning.
    Other,
}

fn handshake_failure(
    refused: &mut RepeatLog<SocketAddr>,
    now: Instant,
    remote: SocketAddr,
    error: &str,
) -> HandshakeFailure {
    let lower = error.to_lowercase();
    let untrusted = ["unknownissuer", "unknownca", "unknown ca", "badsignature"]
        .iter()
        .any(|sign| lower.contains(sign));
    if !untrusted {
        return HandshakeFailure::Other;
    }
    match refused.note(now, remote) {
        Some(count) => HandshakeFailure::RefusedWarn(count),
        None => HandshakeFailure::RefusedAgain,
    }
}

impl Shared {
    /// Counts and reports a handshake with `remote` that failed because the
    /// node id its certificate names is bound to another key (once per
    /// address and id, then at most once a minute); `false` if `error` is
    /// not that.
    pub(crate) fn note_identity_refusal(&self, remote: SocketAddr, error: &str) -> bool {
        let Some(node) = node_cert::refused_bound_node(error) else {
            return false;
        };
        add(&self.counters.identity_refusals, 1);
        let mut refused = self.refused_ids.lock().unwrap_or_else(|e| e.into_inner());
        match refused.note(Instant::now(), (remote, node)) {
            Some(refusals) => tracing::warn!(
                %remote, %node, refusals,
                "refused a connection from {remote}: its certificate claims node id {node}, which is bound to another key (a member posing as another node, or a node whose node.key was replaced); more are logged at most once a minute"
            ),
            None => tracing::debug!(%remote, %node, "refused a node id bound to another key again"),
        }
        true
    }
}

/// Connection close code: the peer's node id is refused (see
/// [`authenticated_node`]).
pub(crate) const NODE_REFUSED: VarInt = VarInt::from_u32(2);

/// The node id `conn`'s peer certificate names, checked against the key
/// bindings as they are now (the handshake checked them as they were).
/// `Ok(None)` when this node runs without a node key: nothing is
/// attributed. With a node key, a connection that cannot show a node id
/// is refused rather than taken as anyone.
fn authenticated_node(shared: &Shared, conn: &Connection) -> Result<Option<NodeId>, String> {
    let Some(bindings) = shared.config.node_check() else {
        return Ok(None);
    };
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| "the peer presented no certificate".to_owned())?;
    let leaf = certs
        .first()
        .ok_or_else(|| "the peer presented an empty certificate chain".to_owned())?;
    node_cert::check_leaf(leaf, &bindings)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Closes `conn` because its peer's node id is refused, with the reason
/// (the peer reads it as its dial failure).
fn refuse_node(shared: &Shared, remote: SocketAddr, conn: &Connection, why: &str) {
    add(&shared.counters.identity_refusals, 1);
    tracing::warn!(%remote, reason = %why, "closing a connection: its node id is refused");
    conn.close(NODE_REFUSED, why.as_bytes());
}

/// Serves one connection until it closes, then forgets it from the cache.
pub(crate) async fn drive_connection(shared: Arc<Shared>, key: SocketAddr, conn: Connection) {
    let remote = canonical(conn.remote_address());
    let mut rebound = shared.rebound.subscribe();
    let node = match authenticated_node(&shared, &conn) {
        Ok(node) => node,
        Err(why) => {
            refuse_node(&shared, remote, &conn, &why);
            None
        }
    };
    // quinn's read/accept futures are cancel-safe: losing a select race
    // leaves the datagram or stream queued for the next iteration.
    let reason = loop {
        tokio::select! {
            Ok(()) = rebound.changed() => {
                if let Err(why) = authenticated_node(&shared, &conn) {
                    refuse_node(&shared, remote, &conn, &why);
                }
            }
            datagram = conn.read_datagram() => match datagram {
                Ok(bytes) => deliver_datagram(&shared, remote, node, bytes),
                Err(e) => break e,
            },
            bi = conn.accept_bi() => match bi {
                Ok((send, recv)) => {
                    shared.runtime.spawn(serve_request(shared.clone(), remote, node, send, recv));
                }
                Err(e) => break e,
            },
            uni = conn.accept_uni() => match uni {
                Ok(recv) => {
                    shared.runtime.spawn(serve_push(shared.clone(), remote, node, recv));
                }
                Err(e) => break e,
            },
        }
    };
    tracing::debug!(%remote, %reason, "connection closed");
    // A server checks our certificate after our side of the handshake is
    // done, so its refusal of our node id arrives as a close: keep it as
    // the reason dials to it fail, for the operator (see `dial_failure`).
    let reason = reason.to_string();
    if node_cert::refused_bound_node(&reason).is_some() {
        shared.record_dial(key, Some(reason));
    }
    shared.forget(key, conn.stable_id());
}

fn deliver_datagram(shared: &Shared, remote: SocketAddr, node: Option<NodeId>, bytes: Bytes) {
    let size = bytes.len();
    match shared.inbound.datagrams.try_send((remote, node, bytes)) {
        Ok(()) => {
            add(&shared.counters.datagrams_received, 1);
            add(&shared.counters.datagram_bytes_received, size);
        }
        Err(_) => add(&shared.counters.datagrams_dropped_recv, 1),
    }
}

/// Reads a whole incoming stream within the size and time limits.
async fn read_body(shared: &Shared, remote: SocketAddr, recv: &mut RecvStream) -> Option<Bytes> {
    let limit = shared.config.max_request_size;
    match tokio::time::timeout(shared.config.request_timeout, recv.read_to_end(limit)).await {
        Ok(Ok(body)) => {
            add(&shared.counters.stream_bytes_received, body.len());
            Some(Bytes::from(body))
        }
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, limit, "incoming stream dropped");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "incoming stream dropped: too slow");
            None
        }
    }
}

async fn serve_request(
    shared: Arc<Shared>,
    remote: SocketAddr,
    node: Option<NodeId>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let Some(body) = read_body(&shared, remote, &mut recv).await else {
        add(&shared.counters.streams_dropped_recv, 1);
        let _ = recv.stop(DECLINED);
        let _ = send.reset(DECLINED);
        return;
    };
    let request = InboundRequest {
        remote,
        node,
        body,
        responder: Responder {
            remote,
            send: Some(send),
            counters: shared.counters.clone(),
        },
    };
    // On failure the request is dropped here, and its responder resets.
    match shared.inbound.requests.try_send(request) {
        Ok(()) => add(&shared.counters.requests_received, 1),
        Err(_) => add(&shared.counters.streams_dropped_recv, 1),
    }
}

/// Reads a push stream frame by frame (see `streams::FRAME_HEADER`) and
/// delivers each frame as one push. A frame over the size limit, a stream
/// that ends inside a frame, or one that stalls stops the stream there
/// with a logged reason; the frames delivered before it stand (each is a
/// whole message). A full channel makes the stream wait (bounded by the
/// request timeout), which slows the sender through flow control rather
/// than losing the middle of a transfer.
async fn serve_push(
    shared: Arc<Shared>,
    remote: SocketAddr,
    node: Option<NodeId>,
    mut recv: RecvStream,
) {
    let limit = shared.config.max_request_size;
    let after = shared.config.request_timeout;
    loop {
        let frame = match tokio::time::timeout(after, read_frame(&mut recv, limit)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return,
            Ok(Err(why)) => {
                add(&shared.counters.streams_dropped_recv, 1);
                tracing::debug!(%remote, why, "push stream refused");
                let _ = recv.stop(DECLINED);
                return;
            }
            Err(_) => {
                add(&shared.counters.streams_dropped_recv, 1);
                tracing::debug!(%remote, "push stream dropped: too slow");
                let _ = recv.stop(DECLINED);
                return;
            }
        };
        add(
            &shared.counters.stream_bytes_received,
            frame.len() + super::streams::FRAME_HEADER,
        );
        match tokio::time::timeout(after, shared.inbound.pushes.send((remote, node, frame))).await {
            Ok(Ok(())) => add(&shared.counters.pushes_received, 1),
            _ => {
                add(&shared.counters.streams_dropped_recv, 1);
                let _ = recv.stop(DECLINED);
                return;
            }
        }
    }
}

/// How much a frame's buffer grows per step: it grows only as the bytes
/// arrive, so a peer that announces a frame of the limit's size and sends
/// ten bytes costs about this much, not the limit.
pub(crate) const FRAME_READ_STEP: usize = 64 * 1024;

/// The next frame of a push stream; `None` at a clean end (between frames).
/// Public as `quic::read_push_frame` so that Shoal's fuzz target reads a
/// push stream exactly as the transport does.
pub async fn read_frame<R>(recv: &mut R, limit: usize) -> Result<Option<Bytes>, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut body = Vec::new();
    Ok(read_frame_into(recv, limit, &mut body)
        .await?
        .then(|| Bytes::from(body)))
}

/// [`read_frame`] into `body` (cleared first); `false` at a clean end.
/// The buffer is the caller's so that a test can see what a stalled frame
/// holds.
async fn read_frame_into<R>(recv: &mut R, limit: usize, body: &mut Vec<u8>) -> Result<bool, String>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut header = [0u8; super::streams::FRAME_HEADER];
    let mut got = 0;
    while got < header.len() {
        match recv.read(&mut header[got..]).await {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(format!(
                    "stream ended inside a frame header ({got} of 4 bytes)"
                ));
            }
            Ok(n) => got += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > limit {
        return Err(format!(
            "frame of {len} bytes exceeds the limit of {limit} bytes"
        ));
    }
    body.clear();
    while body.len() < len {
        let have = body.len();
        let step = (len - have).min(FRAME_READ_STEP);
        // Exact: growth by doubling would hold up to twice what arrived.
        body.reserve_exact(step);
        body.resize(have + step, 0);
        let mut filled = have;
        while filled < have + step {
            match recv.read(&mut body[filled..have + step]).await {
                Ok(0) => {
                    body.truncate(filled);
                    return Err(format!(
                        "stream ended inside a frame: {filled} of {len} bytes"
                    ));
                }
                Ok(n) => filled += n,
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, ReadBuf};

    use super::*;
    use crate::repeat_log::REPEAT_EVERY;

    /// A peer's stream: `data`, then either the end or a stall (the peer
    /// keeps the stream open and sends nothing more).
    struct Peer {
        data: Vec<u8>,
        at: usize,
        stall: bool,
    }

    impl AsyncRead for Peer {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let rest = &self.data[self.at..];
            if rest.is_empty() && self.stall {
                return Poll::Pending;
            }
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn framed(announced: usize, sent: &[u8]) -> Vec<u8> {
        let mut out = (announced as u32).to_le_bytes().to_vec();
        out.extend_from_slice(sent);
        out
    }

    const LIMIT: usize = 8 << 20;

    #[tokio::test]
    async fn a_peer_announcing_8_mib_and_sending_10_bytes_costs_one_step_not_8_mib() {
        let mut peer = Peer {
            data: framed(LIMIT, &[7; 10]),
            at: 0,
            stall: true,
        };
        let mut body = Vec::new();
        let read = read_frame_into(&mut peer, LIMIT, &mut body);
        let stalled = tokio::time::timeout(Duration::from_millis(50), read).await;
        assert!(stalled.is_err(), "the frame cannot complete");
        assert!(
            body.capacity() <= FRAME_READ_STEP,
            "a stalled 10-byte frame holds {} bytes",
            body.capacity()
        );

        // The same peer ending the stream instead: refused, with the count.
        let mut peer = Peer {
            data: framed(LIMIT, &[7; 10]),
            at: 0,
            stall: false,
        };
        let err = read_frame(&mut peer, LIMIT).await.unwrap_err();
        assert_eq!(
            err,
            format!("stream ended inside a frame: 10 of {LIMIT} bytes")
        );
    }

    #[tokio::test]
    async fn frames_larger_than_a_step_arrive_whole_and_in_order() {
        let big: Vec<u8> = (0..3 * FRAME_READ_STEP + 5).map(|i| i as u8).collect();
        let mut data = framed(big.len(), &big);
        data.extend(framed(3, b"abc"));
        let mut peer = Peer {
            data,
            at: 0,
            stall: false,
        };
        assert_eq!(read_frame(&mut peer, LIMIT).await.unwrap().unwrap(), big);
        assert_eq!(
            read_frame(&mut peer, LIMIT).await.unwrap().unwrap(),
            &b"abc"[..]
        );
        assert_eq!(read_frame(&mut peer, LIMIT).await.unwrap(), None);
        let mut over = Peer {
            data: framed(LIMIT + 1, b""),
            at: 0,
            stall: false,
        };
        let err = read_frame(&mut over, LIMIT).await.unwrap_err();
        assert!(err.contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn a_refused_joiner_is_warned_about_once_then_once_a_minute() {
        let mut refused = RepeatLog::default();
        let start = Instant::now();
        let joiner: SocketAddr = "127.0.0.9:7000".parse().unwrap();
        let error =
            "the cryptographic handshake failed: error 48: invalid peer certificate: UnknownIssuer";
        assert_eq!(
            handshake_failure(&mut refused, start, joiner, error),
            HandshakeFailure::RefusedWarn(1)
        );
        // The joiner retries every second or so.
        for s in 1..60 {
            let now = start + Duration::from_secs(s);
            assert_eq!(
                handshake_failure(&mut refused, now, joiner, error),
                HandshakeFailure::RefusedAgain
            );
        }
        assert_eq!(
            handshake_failure(&mut refused, start + REPEAT_EVERY, joiner, error),
            HandshakeFailure::RefusedWarn(60)
        );
        let other: SocketAddr = "127.0.0.10:7000".parse().unwrap();
        assert_eq!(
            handshake_failure(&mut refused, start + REPEAT_EVERY, other, error),
            HandshakeFailure::RefusedWarn(1),
            "another joiner's first refusal is not hidden"
        );
        assert_eq!(
            handshake_failure(&mut refused, start, joiner, "timed out"),
            HandshakeFailure::Other
        );
    }
}
