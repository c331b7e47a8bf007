//! Certificates that expire and renew: the cluster's issuer, short-lived leaf
//! certificates it signs (a node's QUIC certificate, a peer's API
//! certificate), and a slot that rustls reads the current one from.
//!
//! Renewal never touches an open connection: TLS checks a certificate's
//! validity only during a handshake, so a connection made with yesterday's
//! certificate keeps running, and the next handshake takes the new one from
//! the [`CertSlot`]. A leaf is renewed when half its validity is left, so a
//! late renewal (a suspended laptop, a loaded machine) still has slack.

use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, SanType,
};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureScheme, crypto::CryptoProvider};

use super::error::TransportError;
use super::identity::ClusterIdentity;
use super::node_cert::{NodeKey, ed25519_key_pair, node_dns_name};
use super::tls::{ca_params_and_key, provider};
use super::token::JoinToken;

/// Default validity of a leaf certificate: a stolen one is useful for a day
/// at most, and renewal (at half of it) happens twice a day.
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// Shortest validity accepted (tests use seconds; below this, renewals
/// would race the handshakes they serve).
pub const MIN_LEAF_VALIDITY: Duration = Duration::from_secs(4);
/// How far back a leaf's `notBefore` is set, so a peer whose clock runs a
/// little behind the issuer's still accepts it.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The cluster's certificate authority: the one trust root every TLS
/// certificate of the cluster (QUIC and API) chains to.
pub struct ClusterIssuer {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    ca_pem: String,
}

impl std::fmt::Debug for ClusterIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIssuer").finish_non_exhaustive()
    }
}

impl ClusterIssuer {
    /// The CA every holder of `token` derives (see [`super::tls`]): the
    /// QUIC trust root of that token.
    pub fn from_token(token: &JoinToken) -> Result<Self, TransportError> {
        Self::from_identity(&ClusterIdentity::of(token))
    }

    /// The API CA of the cluster `identity` (the QUIC CA of the token the
    /// cluster was created with).
    pub fn from_identity(identity: &ClusterIdentity) -> Result<Self, TransportError> {
        let (params, key) = ca_params_and_key(identity)?;
        let ca = params.self_signed(&key)?;
        let ca_der = ca.der().clone();
        let ca_pem = ca.pem();
        Ok(ClusterIssuer {
            issuer: Issuer::new(params, key),
            ca_der,
            ca_pem,
        })
    }

    /// The CA certificate (DER), the root both TLS sides verify against.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The CA certificate as PEM: what a client is given (`--ca-file`, a
    /// kubeconfig's `certificate-authority-data`). Public: it holds no key.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Signs a certificate for `request`, valid from a little before `now`
    /// until `now + request.validity`: for the node's own key when the
    /// request names a node, else for a fresh key.
    pub fn issue(
        &self,
        request: &LeafRequest,
        now: SystemTime,
    ) -> Result<IssuedCert, TransportError> {
        let key = match &request.node {
            Some(node) => ed25519_key_pair(&node.seed)?,
            None => KeyPair::generate_for(&PKCS_ED25519)?,
        };
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "Shoal");
        name.push(DnType::CommonName, request.common_name.clone());
        params.distinguished_name = name;
        let node_name = request.node.as_ref().map(|n| node_dns_name(n.node));
        for dns in request.dns_names.iter().chain(&node_name) {
            params
                .subject_alt_names
                .push(SanType::DnsName(dns.clone().try_into()?));
        }
        for ip in request.ips.iter().filter(|ip| !ip.is_unspecified()) {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match request.usage {
            // A node is both a client and a server of its peers.
            LeafUsage::Peer => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            LeafUsage::ApiServer => vec![ExtendedKeyUsagePurpose::ServerAuth],
        };
        params.use_authority_key_identifier_extension = true;
        let not_after = now + request.validity;
        params.not_before = (now.checked_sub(CLOCK_SKEW).unwrap_or(now)).into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.issuer)?.der().clone();
        Ok(IssuedCert {
            cert,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            issued_at: now,
            not_after,
        })
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// QUIC between peers: server and client authentication.
    Peer,
    /// A peer's HTTPS API: server authentication only.
    ApiServer,
}

/// The names and lifetime of a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    pub common_name: String,
    pub dns_names: Vec<String>,
    /// IP SANs (clients dial by IP); unspecified addresses are left out.
    pub ips: Vec<IpAddr>,
    pub usage: LeafUsage,
    pub validity: Duration,
    /// For a peer certificate: the node it names and whose key it is made
    /// for (see [`super::node_cert`]). `None`: a fresh key, no node id.
    pub node: Option<NodeKey>,
}

/// A signed leaf and its key.
#[derive(Debug)]
pub struct IssuedCert {
    pub cert: CertificateDer<'static>,
    pub key: PrivateKeyDer<'static>,
    pub issued_at: SystemTime,
    pub not_after: SystemTime,
}

impl IssuedCert {
    /// When to replace it: once half its validity has passed.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.issued_at)
            .unwrap_or_default();
        self.issued_at + life / 2
    }
}

/// The certificate rustls presents right now, replaced on renewal. Serves
/// both TLS sides ([`ResolvesServerCert`], [`ResolvesClientCert`]).
#[derive(Debug)]
pub struct CertSlot {
    current: RwLock<Current>,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
struct Current {
    key: Arc<CertifiedKey>,
    not_after: SystemTime,
    renew_at: SystemTime,
}

impl CertSlot {
    /// A slot holding `issued`.
    pub fn new(issued: IssuedCert) -> Result<Arc<Self>, TransportError> {
        let provider = provider();
        let current = Self::current(issued, &provider)?;
        Ok(Arc::new(CertSlot {
            current: RwLock::new(current),
            provider,
        }))
    }

    fn current(issued: IssuedCert, provider: &CryptoProvider) -> Result<Current, TransportError> {
        let renew_at = issued.renew_at();
        let not_after = issued.not_after;
        let key = CertifiedKey::from_der(vec![issued.cert], issued.key, provider)?;
        Ok(Current {
            key: Arc::new(key),
            not_after,
            renew_at,
        })
    }

    /// Puts `issued` in place for every later handshake.
    pub fn replace(&self, issued: IssuedCert) -> Result<(), TransportError> {
        let next = Self::current(issued, &self.provider)?;
        // A poisoned lock only means a reader panicked; the value is a
        // whole `Current` either way, so it is safe to keep using it.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// When the current certificate should be replaced.
    pub fn renew_at(&self) -> SystemTime {
        self.read().renew_at
    }

    /// When the current certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.read().not_after
    }

    fn key(&self) -> Arc<CertifiedKey> {
        self.read().key.clone()
    }

    /// The certificate and key to present now (for resolvers that pick
    /// among several slots, see `super::trust`).
    pub(crate) fn resolve_key(&self) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl ResolvesClientCert for CertSlot {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Keeps `slot` fresh: sleeps until its renewal time, issues a new leaf for
/// `request`, swaps it in; forever (abort the task to stop it). A failed
/// issue is retried after a short pause, well before the old one expires.
pub async fn renew_forever(issuer: Arc<ClusterIssuer>, request: LeafRequest, slot: Arc<CertSlot>) {
    const RETRY: Duration = Duration::from_secs(1);
    loop {
        let wait = slot
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
        let renewed = issuer
            .issue(&request, SystemTime::now())
            .and_then(|issued| slot.replace(issued));
        match renewed {
            Ok(()) => tracing::debug!(
                name = %request.common_name,
                "certificate renewed"
            ),
            Err(e) => {
                tracing::warn!(name = %request.common_name, error = %e, "certificate renewal failed; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(validity: Duration) -> LeafRequest {
        LeafRequest {
            common_name: "shoal test".into(),
            dns_names: vec!["shoal.test".into()],
            ips: vec!["127.0.0.1".parse().unwrap(), "0.0.0.0".parse().unwrap()],
            usage: LeafUsage::ApiServer,
            validity,
            node: None,
        }
    }

    #[test]
    fn a_leaf_renews_at_half_its_validity() {
        let issuer = ClusterIssuer::from_token(&JoinToken::from_seed([9; 32])).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let issued = issuer
            .issue(&request(Duration::from_secs(60)), now)
            .unwrap();
        assert_eq!(issued.not_after, now + Duration::from_secs(60));
        assert_eq!(issued.renew_at(), now + Duration::from_secs(30));
        let slot = CertSlot::new(issued).unwrap();
        assert_eq!(slot.not_after(), now + Duration::from_secs(60));
        let later = issuer
            .issue(
                &request(Duration::from_secs(60)),
                now + Duration::from_secs(30),
            )
            .unwrap();
        slot.replace(later).unwrap();
        assert_eq!(slot.renew_at(), now + Duration::from_secs(60));
    }

    #[test]
    fn the_ca_pem_is_the_ca_der() {
        let issuer = ClusterIssuer::from_token(&JoinToken::from_seed([9; 32])).unwrap();
        assert!(issuer.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(
            issuer.ca_der(),
            &super::super::tls::cluster_ca_certificate(&JoinToken::from_seed([9; 32])).unwrap()
        );
    }
}
