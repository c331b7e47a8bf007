//! Trust in several join tokens at once, so the token can be rotated
//! without splitting the cluster.
//!
//! Each trusted token brings its CA (derived from it, see [`super::tls`])
//! and this node's leaf certificate signed by that CA. A token is trusted
//! either as the *current* one (no end) or as a rotated-out one until its
//! deadline; after it, new handshakes with its certificates are refused
//! (connections opened before are not touched: TLS checks only at the
//! handshake).
//!
//! Which certificate a node presents, so that a peer that knows only one of
//! the tokens still gets one it can check:
//! - as a server, the leaf of the token whose name the dialer asked for
//!   (SNI: a dialer asks with its own current token's name), else the
//!   current one;
//! - as a client, the leaf of a CA the server named in its hints
//!   (rustls lists the subjects of the roots it accepts), preferring the
//!   current token, else the current one.
//!
//! The token's name carries no trust (peers are dialled by IP, every leaf
//! of a token carries it): the server check accepts a chain to any trusted
//! CA whose leaf names any trusted token. Then, on both sides, a node
//! running with its node key checks the peer leaf's node id against the key
//! bindings ([`super::node_cert`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio::runtime::Handle;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::certs::{CertSlot, ClusterIssuer};
use super::error::TransportError;
use super::node_cert::{KeyBindings, check_leaf};
use super::tls::{ALPN, ClusterTls, provider};
use super::token::JoinToken;
use super::{QuicConfig, Shared};

/// One trusted token and this node's certificate under it.
pub(crate) struct TrustedEntry {
    pub(crate) token: JoinToken,
    /// `None`: the current token; otherwise refused from this time on.
    pub(crate) until: Option<SystemTime>,
    pub(crate) issuer: Arc<ClusterIssuer>,
    pub(crate) slot: Arc<CertSlot>,
    /// Keeps `slot` fresh ([`super::certs::renew_forever`]); aborted when
    /// the entry is dropped.
    pub(crate) renewal: tokio::task::AbortHandle,
}

impl Drop for TrustedEntry {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl std::fmt::Debug for TrustedEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedEntry")
            .field("cluster_id", &self.token.cluster_id())
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Replaces the trusted tokens with `wanted` (or, with `None`, drops
    /// those past their deadline), and the TLS configs with ones built
    /// from them. Does nothing when nothing changes.
    pub(super) fn retrust(
        &self,
        wanted: Option<Vec<(JoinToken, Option<SystemTime>)>>,
        now: SystemTime,
    ) -> Result<(), TransportError> {
        let mut trust = self.lock_trust();
        let old: Vec<(String, Option<SystemTime>)> = trust
            .iter()
            .map(|e| (e.token.cluster_id(), e.until))
            .collect();
        let wanted =
            wanted.unwrap_or_else(|| trust.iter().map(|e| (e.token.clone(), e.until)).collect());
        let kept = std::mem::take(&mut *trust);
        let entries =
            trusted_entries(&self.runtime, &self.config, self.cert_ip, kept, wanted, now)?;
        let new: Vec<(String, Option<SystemTime>)> = entries
            .iter()
            .map(|e| (e.token.cluster_id(), e.until))
            .collect();
        *trust = entries;
        if new == old {
            return Ok(());
        }
        let tls = trust_tls(&trust, now, self.config.node_check())?;
        let server_crypto = QuicServerConfig::try_from(tls.server)
            .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(self.transport_params.clone());
        let client_crypto = QuicClientConfig::try_from(tls.client)
            .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(self.transport_params.clone());
        self.endpoint.set_server_config(Some(server));
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = client;
        if let Some(current) = trust.first() {
            *self.server_name.lock().unwrap_or_else(|e| e.into_inner()) =
                current.token.server_name();
        }
        for (id, until) in &old {
            if !new.iter().any(|(n, _)| n == id) {
                tracing::info!(
                    cluster = %id, deadline = ?until,
                    "join token no longer trusted: peers presenting its certificates are refused from now on"
                );
            }
        }
        tracing::info!(trusted = ?new.iter().map(|(id, _)| id).collect::<Vec<_>>(), "trusted join tokens changed");
        Ok(())
    }
}

/// The entries for `wanted` ((token, deadline), the current one first):
/// those in `kept` are reused with their certificates, others get a fresh
/// certificate and renewal task, and deadlines passed at `now` are left out
/// (their renewal tasks stop when dropped here).
pub(super) fn trusted_entries(
    runtime: &Handle,
    config: &QuicConfig,
    cert_ip: IpAddr,
    mut kept: Vec<TrustedEntry>,
    wanted: Vec<(JoinToken, Option<SystemTime>)>,
    now: SystemTime,
) -> Result<Vec<TrustedEntry>, TransportError> {
    let mut out: Vec<TrustedEntry> = Vec::with_capacity(wanted.len());
    for (token, until) in wanted {
        if until.is_some_and(|until| until <= now) || out.iter().any(|e| e.token == token) {
            continue;
        }
        if let Some(at) = kept.iter().position(|e| e.token == token) {
            let mut entry = kept.swap_remove(at);
            entry.until = until;
            out.push(entry);
            continue;
        }
        let issuer = Arc::new(ClusterIssuer::from_token(&token)?);
        let leaf = super::tls::peer_leaf_request(
            &token,
            cert_ip,
            config.cert_validity.max(super::certs::MIN_LEAF_VALIDITY),
            config.node_key.as_ref(),
        );
        let slot = CertSlot::new(issuer.issue(&leaf, now)?)?;
        let renewal = runtime
            .spawn(super::certs::renew_forever(
                issuer.clone(),
                leaf,
                slot.clone(),
            ))
            .abort_handle();
        out.push(TrustedEntry {
            token,
            until,
            issuer,
            slot,
            renewal,
        });
    }
    Ok(out)
}

/// Drops rotated-out tokens when their deadline passes, so new handshakes
/// with their certificates fail. Ends when the transport is dropped.
pub(super) async fn trust_deadline_loop(shared: std::sync::Weak<Shared>) {
    const MAX_SLEEP: Duration = Duration::from_secs(1);
    loop {
        let wait = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let now = SystemTime::now();
            let next = shared.lock_trust().iter().filter_map(|e| e.until).min();
            if next.is_some_and(|at| at <= now)
                && let Err(e) = shared.retrust(None, now)
            {
                tracing::warn!(error = %e, "cannot drop an expired join token");
            }
            next.and_then(|at| at.duration_since(now).ok())
                .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP))
        };
        tokio::time::sleep(wait).await;
    }
}

/// The rustls configurations for `entries` (the current token first).
/// Entries past their deadline at `now` are left out. With `nodes`, both
/// sides also require the peer's leaf to name a node id not bound to
/// another key.
pub(crate) fn trust_tls(
    entries: &[TrustedEntry],
    now: SystemTime,
    nodes: Option<KeyBindings>,
) -> Result<ClusterTls, TransportError> {
    let live: Vec<&TrustedEntry> = entries
        .iter()
        .filter(|e| e.until.is_none_or(|until| until > now))
        .collect();
    let Some(current) = live.first() else {
        return Err(TransportError::Config("no trusted join token left".into()));
    };
    let mut roots = RootCertStore::empty();
    for entry in &live {
        roots.add(entry.issuer.ca_der().clone())?;
    }
    let roots = Arc::new(roots);
    let provider = provider();
    let leaves = Arc::new(Leaves {
        by_token: live
            .iter()
            .map(|e| (e.token.cluster_id(), e.token.server_name(), e.slot.clone()))
            .collect(),
        current: current.slot.clone(),
    });

    let chain_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
    let client_verifier: Arc<dyn ClientCertVerifier> = match &nodes {
        Some(bindings) => Arc::new(NodeClientVerifier {
            inner: chain_verifier,
            bindings: bindings.clone(),
        }),
        None => chain_verifier,
    };
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(leaves.clone());
    server.alpn_protocols = vec![ALPN.to_vec()];
    // A resumed session skips the certificate verifiers (rustls restores
    // the peer's chain from the ticket), so the node check would run once
    // per peer and never again after its key binding changed: no tickets,
    // no session cache, on either side.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
    let names = live
        .iter()
        .map(|e| {
            ServerName::try_from(e.token.server_name())
                .map_err(|e| TransportError::TlsSetup(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verifier = Arc::new(AnyTrustedName {
        inner,
        names,
        nodes,
    });
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(leaves);
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.resumption = rustls::client::Resumption::disabled();
    Ok(ClusterTls {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// This node's leaves, one per trusted token; picks the one a peer can check.
#[derive(Debug)]
struct Leaves {
    /// (cluster id, server name, slot), the current token first.
    by_token: Vec<(String, String, Arc<CertSlot>)>,
    current: Arc<CertSlot>,
}

impl ResolvesServerCert for Leaves {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let asked = hello.server_name();
        let slot = self
            .by_token
            .iter()
            .find(|(_, name, _)| Some(name.as_str()) == asked)
            .map_or(&self.current, |(_, _, slot)| slot);
        slot.resolve_key()
    }
}

impl ResolvesClientCert for Leaves {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // A CA's subject holds "shoal cluster <cluster id> CA" in clear.
        let named = |id: &str| {
            root_hint_subjects
                .iter()
                .any(|hint| hint.windows(id.len()).any(|w| w == id.as_bytes()))
        };
        let slot = self
            .by_token
            .iter()
            .find(|(id, _, _)| named(id))
            .map_or(&self.current, |(_, _, slot)| slot);
        slot.resolve_key()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Accepts a server chain to any trusted CA whose leaf names any trusted
/// token: a dialer asks with its own token's name, which a peer that was
/// given another token cannot have put in its certificate. With `nodes`,
/// the leaf must also pass the node check.
#[derive(Debug)]
struct AnyTrustedName {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
    nodes: Option<KeyBindings>,
}

impl AnyTrustedName {
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let first = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if first.is_ok() {
            return first;
        }
        for name in &self.names {
            let verified =
                self.inner
                    .verify_server_cert(end_entity, intermediates, name, ocsp_response, now);
            if verified.is_ok() {
                return verified;
            }
        }
        first
    }
}

impl ServerCertVerifier for AnyTrustedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.verify_chain(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Some(bindings) = &self.nodes {
            check_leaf(end_entity, bindings)?;
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The chain check of a client's certificate, then the node check.
#[derive(Debug)]
struct NodeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    bindings: KeyBindings,
}

impl ClientCertVerifier for NodeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_leaf(end_entity, &self.bindings)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, RwLock};
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    use shoal_crdt_state::identity::PublicKey;
    use shoal_crdt_state::node::NodeId;

    use super::super::{Inbound, JoinToken, KeyBindings, NodeKey, QuicConfig, QuicTransport};
    use super::{trust_tls, trusted_entries};

    /// A transport on 127.0.97.x (this crate's rotation tests' subnet),
    /// port picked by the OS.
    fn bind(host: u8, token: &JoinToken) -> (QuicTransport, Inbound) {
        let mut config =
            QuicConfig::new(format!("127.0.97.{host}:0").parse().unwrap(), token.clone());
        config.connect_timeout = Duration::from_secs(2);
        QuicTransport::bind(config).unwrap()
    }

    /// Whether a datagram from `from` reaches `to` within a second.
    async fn reaches(from: &QuicTransport, to: &QuicTransport, inbound: &mut Inbound) -> bool {
        while inbound.datagrams.try_recv().is_ok() {}
        let _ = from.send_datagram(to.local_addr(), Bytes::from_static(b"ping"));
        tokio::time::timeout(Duration::from_secs(3), inbound.datagrams.recv())
            .await
            .is_ok_and(|got| got.is_some_and(|(_, _, bytes)| bytes == "ping"))
    }

    /// A raw QUIC endpoint on 127.0.111.`host` running as `node` with key
    /// `seed`, checking peers against `bound`.
    fn node_endpoint(
        host: u8,
        node: u64,
        seed: [u8; 32],
        bound: &Arc<RwLock<HashMap<NodeId, PublicKey>>>,
    ) -> quinn::Endpoint {
        let token = JoinToken::from_seed([5; 32]);
        let addr: SocketAddr = format!("127.0.111.{host}:0").parse().unwrap();
        let mut config = QuicConfig::new(addr, token.clone());
        config.node_key = Some(NodeKey {
            node: NodeId(node),
            seed,
        });
        let entries = trusted_entries(
            &tokio::runtime::Handle::current(),
            &config,
            addr.ip(),
            Vec::new(),
            vec![(token, None)],
            SystemTime::now(),
        )
        .unwrap();
        let bound = bound.clone();
        let bindings = KeyBindings(Arc::new(move |id| bound.read().unwrap().get(&id).copied()));
        let tls = trust_tls(&entries, SystemTime::now(), Some(bindings)).unwrap();
        // The entries' renewal tasks would stop when dropped; the test is short.
        std::mem::forget(entries);
        let server = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(tls.server).unwrap(),
        ));
        let client =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls.client).unwrap()));
        let mut endpoint = quinn::Endpoint::server(server, addr).unwrap();
        endpoint.set_default_client_config(client);
        endpoint
    }

    #[tokio::test]
    async fn a_second_connection_is_checked_again_not_resumed() {
        let token = JoinToken::from_seed([5; 32]);
        let bound: Arc<RwLock<HashMap<NodeId, PublicKey>>> = Arc::default();
        let server = node_endpoint(5, 1, [1; 32], &bound);
        let client = node_endpoint(6, 2, [2; 32], &bound);
        let server_addr = server.local_addr().unwrap();
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        conn.closed().await;
                    }
                });
            }
        });
        let dial = || async {
            client
                .connect(server_addr, &token.server_name())
                .unwrap()
                .await
        };
        // Node 2 is not bound yet: accepted. Several connections, so that
        // any session ticket would have reached the client.
        for _ in 0..2 {
            let conn = dial().await.expect("an unbound node id connects");
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.close(quinn::VarInt::from_u32(0), b"again");
        }
        // Node 2's id is now bound to another key: the next handshake
        // must run the check again and fail, whatever the client kept.
        bound.write().unwrap().insert(NodeId(2), PublicKey([9; 32]));
        let refused = dial().await;
        let closed = match refused {
            Err(e) => e.to_string(),
            Ok(conn) => tokio::time::timeout(Duration::from_secs(3), conn.closed())
                .await
                .map_or("accepted (a resumed session)".into(), |e| e.to_string()),
        };
        assert!(closed.contains("is bound to another key"), "{closed}");
        client.close(quinn::VarInt::from_u32(0), b"done");
        server.close(quinn::VarInt::from_u32(0), b"done");
    }

    #[tokio::test]
    async fn a_rotated_member_talks_to_both_tokens_until_the_deadline() {
        let old = JoinToken::from_seed([1; 32]);
        let new = JoinToken::from_seed([2; 32]);
        let (member, mut member_in) = bind(1, &old);
        let (old_only, mut old_in) = bind(2, &old);
        let (new_only, mut new_in) = bind(3, &new);
        assert!(
            !reaches(&new_only, &member, &mut member_in).await,
            "before the rotation the new token is a stranger"
        );

        let deadline = SystemTime::now() + Duration::from_secs(2);
        member
            .set_trusted_tokens(new.clone(), &[(old.clone(), deadline)])
            .unwrap();
        let ids: Vec<String> = member
            .trusted_tokens()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![new.cluster_id(), old.cluster_id()]);
        // Both directions, with a peer that knows only one of the tokens.
        assert!(reaches(&old_only, &member, &mut member_in).await);
        assert!(reaches(&member, &old_only, &mut old_in).await);
        assert!(reaches(&new_only, &member, &mut member_in).await);
        assert!(reaches(&member, &new_only, &mut new_in).await);

        // After the deadline, a new holder of the old token is refused;
        // the connection the old-only peer opened before is left alone.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(member.trusted_tokens().len(), 1);
        let (late, _late_in) = bind(4, &old);
        assert!(!reaches(&late, &member, &mut member_in).await);
        assert!(reaches(&old_only, &member, &mut member_in).await);
        for t in [member, old_only, new_only, late] {
            t.shutdown().await;
        }
    }
}
