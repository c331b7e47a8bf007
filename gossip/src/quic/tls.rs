//! Cluster TLS: a CA derived from the join token, node certificates it signs,
//! and the mutual-TLS rustls configurations quinn runs on.
//!
//! The CA's Ed25519 key comes from HKDF(token secret, "cluster-ca-key"), and
//! its certificate has fixed content (fixed names, validity and a serial
//! derived from the key), and Ed25519 signatures are deterministic, so every
//! token holder builds byte-for-byte the same CA without ever sending it. Each
//! node signs its own short-lived certificate with the CA, for its node key
//! and naming its node id (see [`super::node_cert`]), renewed before it
//! expires ([`super::certs`]). Both TLS sides require a chain to that CA:
//! without the token a machine can neither accept nor open a connection, so
//! it can neither read nor inject.

use std::net::IpAddr;
use std::sync::Arc;

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;

#[cfg(test)]
use super::certs::{CertSlot, ClusterIssuer};
use super::certs::{LeafRequest, LeafUsage};
use super::error::TransportError;
use super::identity::ClusterIdentity;
use super::node_cert::{NodeKey, ed25519_key_pair};
use super::token::JoinToken;
#[cfg(test)]
use rustls::{RootCertStore, server::WebPkiClientVerifier};

/// ALPN protocol id: a peer speaking another protocol (or version) fails the
/// handshake instead of misparsing our streams.
pub const ALPN: &[u8] = b"shoal/1";

/// The rustls configurations of one node, both sides of mutual TLS.
#[derive(Debug, Clone)]
pub(crate) struct ClusterTls {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: Arc<rustls::ClientConfig>,
}

/// The explicit crypto provider. rustls's process default would be aws-lc
/// (or absent), so every builder gets this one.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The cluster CA's certificate (DER), identical for every holder of `token`.
pub fn cluster_ca_certificate(
    token: &JoinToken,
) -> Result<CertificateDer<'static>, TransportError> {
    let (params, key) = ca_params_and_key(&ClusterIdentity::of(token))?;
    Ok(params.self_signed(&key)?.der().clone())
}

/// HKDF label of the CA key seed (see [`ClusterIdentity`]).
pub(crate) const CA_KEY_LABEL: &[u8] = b"cluster-ca-key";

/// The CA of `identity`; a token's own CA is that of the identity its
/// cluster would have if created with it.
pub(crate) fn ca_params_and_key(
    identity: &ClusterIdentity,
) -> Result<(CertificateParams, KeyPair), TransportError> {
    let key = ed25519_key_pair(identity.ca_seed())?;

    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Shoal");
    name.push(
        DnType::CommonName,
        format!("shoal cluster {} CA", identity.cluster_id()),
    );
    params.distinguished_name = name;
    // Leaves only: the CA never signs another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // Validity stays rcgen's fixed default (1975..4096): it must not depend on
    // the clock, or two peers would build different CAs.
    Ok((params, key))
}

/// The names a node's QUIC certificate carries: the cluster name every dial
/// verifies, `advertise` as an IP SAN (informational; an unspecified
/// address such as 0.0.0.0 is left out), and with `node` its node id,
/// the certificate then being made for the node's key.
pub(crate) fn peer_leaf_request(
    token: &JoinToken,
    advertise: IpAddr,
    validity: Duration,
    node: Option<&NodeKey>,
) -> LeafRequest {
    LeafRequest {
        common_name: format!("shoal node {advertise}"),
        dns_names: vec![token.server_name()],
        ips: vec![advertise],
        usage: LeafUsage::Peer,
        validity,
        node: node.cloned(),
    }
}

/// The rustls configs of one node: both sides present whatever certificate
/// `slot` holds at handshake time (so renewals need no new config) and
/// require the peer's to chain to `issuer`'s CA. (The transport builds its
/// configs in `super::trust`, for several tokens; this single-token form is
/// what the tests here pair endpoints with.)
#[cfg(test)]
pub(crate) fn cluster_tls(
    issuer: &ClusterIssuer,
    slot: Arc<CertSlot>,
) -> Result<ClusterTls, TransportError> {
    let mut roots = RootCertStore::empty();
    roots.add(issuer.ca_der().clone())?;
    let roots = Arc::new(roots);
    let provider = provider();

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TransportError::TlsSetup(e.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(slot.clone());
    server.alpn_protocols = vec![ALPN.to_vec()];

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_cert_resolver(slot);
    client.alpn_protocols = vec![ALPN.to_vec()];

    Ok(ClusterTls {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

/// A node's configs with a freshly issued certificate (tests).
#[cfg(test)]
pub(crate) fn fresh_cluster_tls(
    token: &JoinToken,
    advertise: IpAddr,
) -> Result<ClusterTls, TransportError> {
    let issuer = ClusterIssuer::from_token(token)?;
    let request = peer_leaf_request(token, advertise, super::certs::DEFAULT_LEAF_VALIDITY, None);
    let slot = CertSlot::new(issuer.issue(&request, std::time::SystemTime::now())?)?;
    cluster_tls(&issuer, slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_holder_derives_the_same_ca() {
        let token = JoinToken::from_seed([3; 32]);
        let again: JoinToken = token.to_string().parse().unwrap();
        assert_eq!(
            cluster_ca_certificate(&token).unwrap(),
            cluster_ca_certificate(&again).unwrap()
        );
    }

    #[test]
    fn another_token_derives_another_ca() {
        let a = cluster_ca_certificate(&JoinToken::from_seed([3; 32])).unwrap();
        let b = cluster_ca_certificate(&JoinToken::from_seed([4; 32])).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn node_configs_build_for_specified_and_unspecified_addresses() {
        let token = JoinToken::from_seed([5; 32]);
        for ip in ["127.0.0.1", "0.0.0.0", "::1"] {
            let tls = fresh_cluster_tls(&token, ip.parse().unwrap()).unwrap();
            assert_eq!(tls.server.alpn_protocols, vec![ALPN.to_vec()]);
            assert_eq!(tls.client.alpn_protocols, vec![ALPN.to_vec()]);
        }
    }

    /// A QUIC endpoint on 127.0.0.1 presenting what `slot` holds.
    fn endpoint(issuer: &ClusterIssuer, slot: Arc<CertSlot>) -> quinn::Endpoint {
        use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
        let tls = cluster_tls(issuer, slot).unwrap();
        let server = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(tls.server).unwrap(),
        ));
        let client =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls.client).unwrap()));
        let mut endpoint = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(client);
        endpoint
    }

    #[tokio::test]
    async fn an_expired_certificate_is_refused_and_its_renewal_accepted() {
        use std::time::SystemTime;
        let token = JoinToken::from_seed([6; 32]);
        let issuer = ClusterIssuer::from_token(&token).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let request = peer_leaf_request(&token, ip, Duration::from_secs(60), None);
        let now = SystemTime::now();
        let fresh = |at| CertSlot::new(issuer.issue(&request, at).unwrap()).unwrap();
        let server_slot = fresh(now);
        let server = endpoint(&issuer, server_slot.clone());
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
        let client = endpoint(&issuer, fresh(now));
        let dial = || async {
            client
                .connect(server_addr, &token.server_name())
                .unwrap()
                .await
        };
        let open = dial().await.expect("valid certificates connect");

        // The server's certificate expired a minute ago: new handshakes fail.
        server_slot
            .replace(
                issuer
                    .issue(&request, now - Duration::from_secs(120))
                    .unwrap(),
            )
            .unwrap();
        let refused = dial().await.expect_err("an expired certificate is refused");
        assert!(
            refused.to_string().to_lowercase().contains("expired"),
            "{refused}"
        );

        // Renewed in place: new handshakes succeed, and the connection made
        // before all this was never interrupted.
        server_slot
            .replace(issuer.issue(&request, now).unwrap())
            .unwrap();
        dial().await.expect("the renewed certificate is accepted");
        assert!(open.close_reason().is_none(), "{:?}", open.close_reason());
        client.close(quinn::VarInt::from_u32(0), b"done");
        server.close(quinn::VarInt::from_u32(0), b"done");
    }
}
