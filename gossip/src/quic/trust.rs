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
//! Names carry no trust here (peers are dialled by IP, every leaf of a token
//! carries the same name): the server check accepts a chain to any trusted
//! CA whose leaf names any trusted token.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::certs::{CertSlot, ClusterIssuer};
use super::error::TransportError;
use super::tls::{ALPN, ClusterTls, provider};
use super::token::JoinToken;

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

/// The rustls configurations for `entries` (the current token first).
/// Entries past their deadline at `now` are left out.
pub(crate) fn trust_tls(
    entries: &[TrustedEntry],
    now: SystemTime,
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

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(leaves.clone());
    server.alpn_protocols = vec![ALPN.to_vec()];

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
    let verifier = Arc::new(AnyTrustedName { inner, names });
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(leaves);
    client.alpn_protocols = vec![ALPN.to_vec()];
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
/// given another token cannot have put in its certificate.
#[derive(Debug)]
struct AnyTrustedName {
    inner: Arc<WebPkiServerVerifier>,
    names: Vec<ServerName<'static>>,
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
