//! The QUIC transport of the shell: one UDP port, mutual TLS, datagrams for
//! SWIM and streams for state sync.
//!
//! Module map:
//! - [`token`]: the join token, its string form and the keys derived from it.
//! - `tls`: the cluster CA and the rustls configurations.
//! - [`certs`]: the issuer, short-lived leaf certificates and their renewal.
//! - `trust`: several trusted join tokens at once (rotation), and which
//!   certificate to present to whom.
//! - [`node_cert`]: the node id a peer certificate names, checked against
//!   the key bindings, so a member cannot connect as another node.
//! - `peers`: the per-peer connection cache (connect on demand, queue while
//!   connecting, forget on loss) and datagram sending.
//! - `inbound`: accepting connections and delivering what peers send.
//! - `streams`: outgoing request/response and one-way pushes of frames.
//! - `stats`, `error`: counters and failures.
//!
//! How the shell uses it: [`QuicTransport::bind`] once, keep the
//! [`QuicTransport`] handle (cheap to clone) for sending, and drain the three
//! channels of [`Inbound`] in the task that owns the peer core. Call
//! [`QuicTransport::shutdown`] before exit; dropping the handle alone leaves
//! the background tasks (and the port) alive until the runtime stops.
//!
//! The transport decides nothing about membership: it moves bytes, bounds
//! every queue, and counts what it drops.
//!
//! ```no_run
//! # async fn shell() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use shoal_gossip::quic::{JoinToken, QuicConfig, QuicTransport};
//!
//! // The first peer: a token from 32 bytes of OS randomness, printed once.
//! let token = JoinToken::from_seed([0u8; 32]); // use real randomness
//! println!("join token: {token}");
//! // Any other peer: `let token: JoinToken = text.parse()?;`
//!
//! let config = QuicConfig::new("0.0.0.0:7946".parse()?, token);
//! let (transport, mut inbound) = QuicTransport::bind(config)?;
//! let seed = "10.0.0.2:7946".parse()?;
//! transport.send_datagram(seed, Bytes::from_static(b"swim packet"))?;
//! // Sync messages: one frame each, several on one stream, in order.
//! transport
//!     .push_frames(seed, vec![Bytes::from_static(b"piece 1"), Bytes::from_static(b"piece 2")])
//!     .await?;
//! // Request/response (replicated acknowledgements, image fetches).
//! let reply = transport.request(seed, Bytes::from_static(b"store this"), 1024).await?;
//! # let _ = reply;
//! loop {
//!     tokio::select! {
//!         Some((_from, _node, _packet)) = inbound.datagrams.recv() => { /* core.handle_datagram */ }
//!         Some(request) = inbound.requests.recv() => {
//!             // Answer from another task if building the reply takes time.
//!             request.responder.respond(Bytes::from_static(b"missing records")).await?;
//!         }
//!         Some((_from, _node, _delta)) = inbound.pushes.recv() => { /* core.handle_push */ }
//!         else => break,
//!     }
//! }
//! transport.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod certs;
mod error;
pub mod identity;
mod inbound;
pub mod node_cert;
mod peers;
mod stats;
mod streams;
mod tls;
pub mod token;
mod trust;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, EndpointConfig, IdleTimeout, TokioRuntime, VarInt};
use shoal_crdt_state::node::NodeId;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

pub use certs::{CertSlot, ClusterIssuer, IssuedCert, LeafRequest, LeafUsage};
pub use error::TransportError;
pub use identity::{ClusterIdentity, IdentityError};
pub use inbound::{InboundRequest, Responder, read_frame as read_push_frame};
pub use node_cert::{KeyBindings, NodeKey};
pub use stats::TransportStats;
pub use streams::ReplyStream;
pub use tls::{ALPN, cluster_ca_certificate};
pub use token::{JoinToken, TokenError};

use peers::{Slot, canonical};
use stats::Counters;

use crate::repeat_log::RepeatLog;

/// A datagram payload that fits every connection between Shoal peers from
/// its first packet on: QUIC's minimum path MTU of 1,200 bytes, minus the
/// short header (1 byte, an 8-byte connection id, a 4-byte packet number),
/// the 16-byte AEAD tag and the datagram frame header (at most 9 bytes),
/// leaves 1,162. Path MTU discovery usually raises the live limit (see
/// [`QuicTransport::max_datagram_size`]), never below this. SWIM packets
/// (`codec::MAX_PACKET_SIZE`) must stay at or under it.
pub const GUARANTEED_DATAGRAM_SIZE: usize = 1162;

/// Largest UDP payload path MTU discovery probes for: a jumbo frame's
/// (9,000-byte MTU, less IPv6 and UDP headers). On a 1,500-byte LAN
/// discovery settles at 1,452 as with quinn's default bound; where the path
/// carries more (jumbo frames, loopback) a bulk stream such as an image
/// transfer takes a sixth of the packets, and of their per-packet CPU.
const MTU_UPPER_BOUND: u16 = 8952;

/// UDP socket buffers asked of the kernel (which caps them at
/// `net.core.rmem_max`/`wmem_max`). The default ~200 KB overflows when a
/// busy peer is descheduled in the middle of a transfer; every loss halves
/// the sender's congestion window.
const SOCKET_BUFFER: usize = 4 << 20;

/// Longest wait in `shutdown` for connections to finish closing. The close
/// frames go out at once; the wait only covers their retransmission.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Settings of one transport. [`QuicConfig::new`] gives working defaults.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// The UDP address to bind (`--listen`); port 0 picks a free one.
    pub listen: SocketAddr,
    /// The IP other peers know this node by, written into its certificate.
    /// `None`: the bound IP.
    pub advertise: Option<IpAddr>,
    /// The cluster secret: both sides of every connection must hold it.
    pub token: JoinToken,
    /// Longest wait for a handshake before queued datagrams are dropped.
    pub connect_timeout: Duration,
    /// Longest wait for a whole request (connect, send, reply) or push.
    pub request_timeout: Duration,
    /// A connection with no traffic for this long closes, which keeps the
    /// cache to the peers this node actually talks to.
    pub idle_timeout: Duration,
    /// Largest incoming request, or frame of a push, accepted; larger ones
    /// are refused. Default: the one network limit,
    /// `shoal_crdt_state::wire::MAX_MESSAGE_BYTES`.
    pub max_request_size: usize,
    /// Datagrams kept per peer while its connection is being set up; beyond
    /// that the oldest are dropped (SWIM tolerates loss, fresh data matters).
    pub connect_queue: usize,
    /// Capacity of each inbound channel; when full, new arrivals are dropped
    /// and counted rather than stalling connections.
    pub inbound_capacity: usize,
    /// Lifetime of this node's certificate; it is renewed at half of it.
    pub cert_validity: Duration,
    /// The join token this node's certificates come from, if not `token`
    /// (after a rotation `token` stays the one the cluster started with: it
    /// names the cluster and keys the stateless resets).
    pub current_token: Option<JoinToken>,
    /// Rotated-out tokens still trusted, each until its deadline.
    pub rotated_tokens: Vec<(JoinToken, SystemTime)>,
    /// This node's id and signing key. Set: its certificates are made for
    /// that key and name the id, every peer's certificate must name a node
    /// id not bound to another key (per `key_bindings`), and what arrives is
    /// attributed to the id its connection authenticated. `None` (tests,
    /// tools): fresh keys, no node ids, nothing attributed.
    pub node_key: Option<NodeKey>,
    /// The key each node id is bound to (read at every handshake); `None`:
    /// no id is bound.
    pub key_bindings: Option<KeyBindings>,
}

impl QuicConfig {
    /// Defaults sized for SWIM plus state sync on a LAN.
    pub fn new(listen: SocketAddr, token: JoinToken) -> Self {
        QuicConfig {
            listen,
            advertise: None,
            token,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_request_size: shoal_crdt_state::wire::MAX_MESSAGE_BYTES,
            connect_queue: 64,
            inbound_capacity: 1024,
            cert_validity: certs::DEFAULT_LEAF_VALIDITY,
            current_token: None,
            rotated_tokens: Vec::new(),
            node_key: None,
            key_bindings: None,
        }
    }

    /// The bindings both TLS sides check peers' node ids against, when this
    /// node runs with a node key.
    pub(crate) fn node_check(&self) -> Option<KeyBindings> {
        self.node_key.as_ref().map(|_| {
            self.key_bindings
                .clone()
                .unwrap_or_else(|| KeyBindings(Arc::new(|_| None)))
        })
    }

    /// The token this node's certificates come from.
    pub fn current_token(&self) -> &JoinToken {
        self.current_token.as_ref().unwrap_or(&self.token)
    }
}

/// One datagram or push: the sender's UDP address, the node id its
/// connection authenticated (`None` when this node runs without a node
/// key, see [`QuicConfig::node_key`]), and the bytes.
pub type Arrival = (SocketAddr, Option<NodeId>, Bytes);

/// What peers send to this node: drain all three, or arrivals are dropped.
#[derive(Debug)]
pub struct Inbound {
    /// Datagrams (SWIM packets).
    pub datagrams: mpsc::Receiver<Arrival>,
    /// Requests awaiting an answer through their [`Responder`].
    pub requests: mpsc::Receiver<InboundRequest>,
    /// One-way pushes.
    pub pushes: mpsc::Receiver<Arrival>,
}

/// The sending side of [`Inbound`], held by the connection tasks.
#[derive(Debug)]
struct InboundSenders {
    datagrams: mpsc::Sender<Arrival>,
    requests: mpsc::Sender<InboundRequest>,
    pushes: mpsc::Sender<Arrival>,
}

/// Handle to a running transport. Clones share the same endpoint.
#[derive(Clone)]
pub struct QuicTransport {
    shared: Arc<Shared>,
}

/// State shared by the handle and the background tasks.
struct Shared {
    /// The one endpoint: server for inbound, client for outbound dials.
    endpoint: Endpoint,
    /// Client side of mutual TLS, used for every dial; replaced when the
    /// trusted tokens change.
    client: Mutex<quinn::ClientConfig>,
    /// The name every dial asks for: the current token's.
    server_name: Mutex<String>,
    /// QUIC parameters, kept to rebuild the configs.
    transport_params: Arc<quinn::TransportConfig>,
    /// Bound address, for logs and for callers that bound port 0.
    local_addr: SocketAddr,
    config: QuicConfig,
    /// One slot per peer address; see [`peers`].
    peers: Mutex<HashMap<SocketAddr, Slot>>,
    inbound: InboundSenders,
    counters: Arc<Counters>,
    /// Where background tasks are spawned (captured at bind).
    runtime: Handle,
    /// Set by `shutdown`: new sends fail and new connections are refused.
    closing: AtomicBool,
    /// Why the last dial to each address failed, until one succeeds: what
    /// a peer that cannot join reports to its operator.
    dial_failures: Mutex<HashMap<SocketAddr, String>>,
    /// The trusted join tokens, the current one first, each with this
    /// node's certificate under it (renewed by its own task).
    trust: Mutex<Vec<trust::TrustedEntry>>,
    /// The IP written into this node's certificates.
    cert_ip: IpAddr,
    /// Which refused handshakes to warn about: a joiner with a wrong token
    /// retries every second or so.
    refused: Mutex<RepeatLog<SocketAddr>>,
    /// The same for peers refused because their node id is bound to
    /// another key, per (address, node id).
    refused_ids: Mutex<RepeatLog<(SocketAddr, NodeId)>>,
    /// Bumped by [`QuicTransport::recheck_peers`]: every connection task
    /// then checks its peer's certificate against the bindings again.
    rebound: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// The cache lock, recovering from a panic elsewhere: the cache holds
    /// only handles, so a poisoned map is still consistent enough to use.
    fn lock_peers(&self) -> MutexGuard<'_, HashMap<SocketAddr, Slot>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn lock_trust(&self) -> MutexGuard<'_, Vec<trust::TrustedEntry>> {
        self.trust.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client config of the next dial.
    fn client_config(&self) -> (quinn::ClientConfig, String) {
        let client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let name = self.server_name.lock().unwrap_or_else(|e| e.into_inner());
        (client.clone(), name.clone())
    }
}

impl QuicTransport {
    /// Binds the UDP port, builds this node's certificate and starts
    /// accepting peers. Must be called inside a tokio runtime.
    pub fn bind(config: QuicConfig) -> Result<(QuicTransport, Inbound), TransportError> {
        let runtime = Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let addr = config.listen;
        let socket = std::net::UdpSocket::bind(addr)
            .map_err(|source| TransportError::Bind { addr, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| TransportError::Bind { addr, source })?;
        let sock = socket2::SockRef::from(&socket);
        for (which, set) in [
            ("receive", sock.set_recv_buffer_size(SOCKET_BUFFER)),
            ("send", sock.set_send_buffer_size(SOCKET_BUFFER)),
        ] {
            if let Err(e) = set {
                tracing::debug!(error = %e, "cannot enlarge the UDP {which} buffer");
            }
        }

        // This node's certificates expire after `cert_validity` and are
        // renewed at half of it; open connections are not affected.
        let cert_ip = config.advertise.unwrap_or(local_addr.ip());
        let now = SystemTime::now();
        let mut wanted = vec![(config.current_token().clone(), None)];
        wanted.extend(
            config
                .rotated_tokens
                .iter()
                .map(|(token, until)| (token.clone(), Some(*until))),
        );
        let entries = trust::trusted_entries(&runtime, &config, cert_ip, Vec::new(), wanted, now)?;
        let tls = trust::trust_tls(&entries, now, config.node_check())?;
        let transport = Arc::new(transport_config(&config)?);
        let server_crypto = QuicServerConfig::try_from(tls.server)
            .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        let client_crypto = QuicClientConfig::try_from(tls.client)
            .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport.clone());

        // The stateless-reset key is derived from the token and the bound
        // address, so a peer restarted on the same port can reset the stale
        // connections others still hold to its previous run: they notice at
        // their next packet instead of after the idle timeout. (Any token
        // holder could compute it and reset our connections; token holders
        // are trusted members anyway, and resets only cost a reconnect.)
        let mut reset_key = [0u8; 32];
        config.token.derive_key(
            format!("stateless-reset/{local_addr}").as_bytes(),
            &mut reset_key,
        );
        // Connection ids are validated with a key derived the same way, so the
        // restarted peer recognises ids its previous run issued and answers
        // them with that reset (others are dropped without an answer).
        let mut cid_key = [0u8; 8];
        config.token.derive_key(
            format!("connection-id/{local_addr}").as_bytes(),
            &mut cid_key,
        );
        let cid_key = u64::from_le_bytes(cid_key);
        let mut endpoint_config = EndpointConfig::new(Arc::new(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &reset_key,
        )));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = {
            let _guard = runtime.enter();
            Endpoint::new(
                endpoint_config,
                Some(server),
                socket,
                Arc::new(TokioRuntime),
            )
            .map_err(|source| TransportError::Bind { addr, source })?
        };

        let capacity = config.inbound_capacity.max(1);
        let (datagrams_tx, datagrams) = mpsc::channel(capacity);
        let (requests_tx, requests) = mpsc::channel(capacity);
        let (pushes_tx, pushes) = mpsc::channel(capacity);
        let shared = Arc::new(Shared {
            endpoint,
            client: Mutex::new(client),
            server_name: Mutex::new(config.current_token().server_name()),
            transport_params: transport,
            local_addr,
            config,
            peers: Mutex::new(HashMap::new()),
            inbound: InboundSenders {
                datagrams: datagrams_tx,
                requests: requests_tx,
                pushes: pushes_tx,
            },
            counters: Arc::default(),
            runtime: runtime.clone(),
            closing: AtomicBool::new(false),
            dial_failures: Mutex::new(HashMap::new()),
            trust: Mutex::new(entries),
            cert_ip,
            refused: Mutex::default(),
            refused_ids: Mutex::default(),
            rebound: tokio::sync::watch::Sender::new(0),
        });
        runtime.spawn(inbound::accept_loop(shared.clone()));
        runtime.spawn(trust::trust_deadline_loop(Arc::downgrade(&shared)));
        tracing::info!(%local_addr, cluster = %shared.config.token.cluster_id(), "QUIC transport bound");
        Ok((
            QuicTransport { shared },
            Inbound {
                datagrams,
                requests,
                pushes,
            },
        ))
    }

    /// The bound UDP address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Why the last attempt to connect to `to` failed, if it did and no
    /// attempt succeeded since (a wrong join token shows up here as a TLS
    /// certificate error, a dead address as a handshake timeout).
    pub fn dial_failure(&self, to: SocketAddr) -> Option<String> {
        self.shared
            .dial_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&canonical(to))
            .cloned()
    }

    /// When this node's current QUIC certificate expires (it is renewed
    /// when half its validity is left).
    pub fn certificate_not_after(&self) -> SystemTime {
        let trust = self.shared.lock_trust();
        trust
            .first()
            .map_or(SystemTime::UNIX_EPOCH, |e| e.slot.not_after())
    }

    /// Trusts `current` (and presents certificates from its CA by default)
    /// plus each of `rotated` until its deadline; every other token is
    /// refused from the next handshake on. Connections already open stay.
    /// Tokens trusted before keep their certificates (no re-issue).
    pub fn set_trusted_tokens(
        &self,
        current: JoinToken,
        rotated: &[(JoinToken, SystemTime)],
    ) -> Result<(), TransportError> {
        let mut wanted = vec![(current, None)];
        wanted.extend(rotated.iter().map(|(t, until)| (t.clone(), Some(*until))));
        self.shared.retrust(Some(wanted), SystemTime::now())
    }

    /// The cluster ids of the trusted tokens, the current one first, with
    /// the deadline of each rotated-out one.
    pub fn trusted_tokens(&self) -> Vec<(String, Option<SystemTime>)> {
        self.shared
            .lock_trust()
            .iter()
            .map(|e| (e.token.cluster_id(), e.until))
            .collect()
    }

    /// Checks the certificate of every open connection against the key
    /// bindings again, and closes (with the refusal as reason) those whose
    /// node id is now bound to another key. TLS checks only at the
    /// handshake; call this when the bindings changed. Returns at once
    /// (each connection's task does its own check).
    pub fn recheck_peers(&self) {
        if self.shared.config.node_key.is_some() {
            self.shared.rebound.send_modify(|n| *n += 1);
        }
    }

    /// The public cluster id of the token this transport runs with.
    pub fn cluster_id(&self) -> String {
        self.shared.config.token.cluster_id()
    }

    /// Sends one datagram to `to`, connecting first if needed. Never waits:
    /// while the connection is being set up the datagram is queued (bounded,
    /// oldest dropped). `Ok` means accepted for sending, not delivered.
    ///
    /// Fails at once only for a datagram larger than the live connection's
    /// [`max_datagram_size`](Self::max_datagram_size) or after shutdown.
    pub fn send_datagram(&self, to: SocketAddr, bytes: Bytes) -> Result<(), TransportError> {
        self.shared.send_datagram(canonical(to), bytes)
    }

    /// The largest datagram the live connection to `to` carries now, or
    /// `None` if there is none yet. Never below [`GUARANTEED_DATAGRAM_SIZE`].
    pub fn max_datagram_size(&self, to: SocketAddr) -> Option<usize> {
        self.shared
            .live_connection(canonical(to))?
            .max_datagram_size()
    }

    /// Sends `body` on a new bi-directional stream and returns the reply,
    /// refusing replies longer than `limit` bytes. The whole exchange,
    /// connecting included, is bounded by the configured request timeout.
    pub async fn request(
        &self,
        to: SocketAddr,
        body: Bytes,
        limit: usize,
    ) -> Result<Bytes, TransportError> {
        self.shared.request(canonical(to), body, limit).await
    }

    /// Sends `body` on a new bi-directional stream and returns the reply as
    /// it arrives, with no size limit (for large transfers: images); each
    /// piece must arrive within `idle`. Opening and sending are bounded by
    /// the request timeout. The peer answers with
    /// [`Responder::send_chunk`] and [`Responder::finish`].
    pub async fn request_stream(
        &self,
        to: SocketAddr,
        body: Bytes,
        idle: Duration,
    ) -> Result<ReplyStream, TransportError> {
        self.shared.request_stream(canonical(to), body, idle).await
    }

    /// Sends `body` one way on a new uni-directional stream. `Ok` means
    /// written and finished locally, not processed by the peer.
    pub async fn push(&self, to: SocketAddr, body: Bytes) -> Result<(), TransportError> {
        self.shared.push_frames(canonical(to), vec![body]).await
    }

    /// Sends `frames` one way, in order, on one new uni-directional stream;
    /// the receiver gets each as one push. Each frame must be at most the
    /// receiver's `max_request_size`; a larger one ends the stream there
    /// (the frames before it are delivered). Each frame, not the whole
    /// stream, must go out within the request timeout, so a long transfer
    /// runs at the receiver's pace (flow control) instead of filling memory.
    pub async fn push_frames(
        &self,
        to: SocketAddr,
        frames: Vec<Bytes>,
    ) -> Result<(), TransportError> {
        self.shared.push_frames(canonical(to), frames).await
    }

    /// Peers with a live cached connection, sorted.
    pub fn connected_peers(&self) -> Vec<SocketAddr> {
        let mut peers: Vec<SocketAddr> = self
            .shared
            .lock_peers()
            .iter()
            .filter(|(_, slot)| slot.is_live())
            .map(|(addr, _)| *addr)
            .collect();
        peers.sort();
        peers
    }

    /// The counters since bind.
    pub fn stats(&self) -> TransportStats {
        self.shared.counters.snapshot()
    }

    /// Closes every connection (peers see an application close, not a
    /// timeout), refuses new ones, and waits (at most 1 s) until the
    /// connections have finished closing. The UDP port is released once the
    /// handle and its clones are dropped too.
    /// Later sends fail with [`TransportError::ShutDown`].
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Release);
        // Dropping the slots fails pending waiters with `ShutDown`.
        let slots: Vec<Slot> = self.shared.lock_peers().drain().map(|(_, s)| s).collect();
        drop(slots);
        self.shared.endpoint.close(VarInt::from_u32(0), b"shutdown");
        // Usually a few milliseconds; a handshake still in flight to a silent
        // address would hold its draining state for about 3 s, so bound it.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.shared.endpoint.wait_idle()).await;
        tracing::info!(local_addr = %self.shared.local_addr, "QUIC transport shut down");
    }
}

impl fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicTransport")
            .field("local_addr", &self.shared.local_addr)
            .field("cluster_id", &self.shared.config.token.cluster_id())
            .field("closing", &self.shared.is_closing())
            .finish()
    }
}

/// QUIC transport parameters shared by both sides.
fn transport_config(config: &QuicConfig) -> Result<quinn::TransportConfig, TransportError> {
    let mut t = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(config.idle_timeout).map_err(|_| {
        TransportError::Config(format!(
            "idle timeout {:?} is too large",
            config.idle_timeout
        ))
    })?;
    t.max_idle_timeout(Some(idle));
    // Bounds the stream handlers a single peer can keep busy at once.
    t.max_concurrent_bidi_streams(VarInt::from_u32(32));
    t.max_concurrent_uni_streams(VarInt::from_u32(32));
    t.datagram_receive_buffer_size(Some(1 << 20));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MTU_UPPER_BOUND);
    t.mtu_discovery_config(Some(mtu));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor is a computation; check it against quinn on the smallest
    /// path QUIC allows (1,200 bytes, no MTU discovery).
    #[tokio::test]
    async fn guaranteed_datagram_size_holds_on_a_minimum_mtu_path() {
        let token = JoinToken::from_seed([8; 32]);
        let config = QuicConfig::new("127.0.0.1:0".parse().unwrap(), token.clone());
        let mut transport = transport_config(&config).unwrap();
        transport.initial_mtu(1200).mtu_discovery_config(None);
        let transport = Arc::new(transport);
        let endpoint = |tls: tls::ClusterTls| {
            let server_crypto = QuicServerConfig::try_from(tls.server).unwrap();
            let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
            server.transport_config(transport.clone());
            let mut client =
                quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls.client).unwrap()));
            client.transport_config(transport.clone());
            let mut endpoint = Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
            endpoint.set_default_client_config(client);
            endpoint
        };
        let ip = "127.0.0.1".parse().unwrap();
        let a = endpoint(tls::fresh_cluster_tls(&token, ip).unwrap());
        let b = endpoint(tls::fresh_cluster_tls(&token, ip).unwrap());
        let b_addr = b.local_addr().unwrap();
        let accept = tokio::spawn(async move { b.accept().await.unwrap().await.unwrap() });
        let conn = a
            .connect(b_addr, &token.server_name())
            .unwrap()
            .await
            .unwrap();
        let _server_side = accept.await.unwrap();
        let max = conn.max_datagram_size().unwrap();
        assert_eq!(
            max, GUARANTEED_DATAGRAM_SIZE,
            "update the constant's doc too"
        );
        conn.send_datagram(Bytes::from(vec![0u8; max])).unwrap();
        a.close(VarInt::from_u32(0), b"done");
    }
}
