//! Which node a QUIC connection is with, and whether it may be.
//!
//! A node's peer certificate is made for its signing key (the ed25519 key
//! of its `node.key`, the one its node id is bound to in the replicated
//! state) and names its node id as the DNS SAN `node-<16 hex digits>.shoal`
//! ([`node_dns_name`]). Both TLS sides, after the usual chain checks, read
//! the id and the key out of the peer's leaf ([`leaf_node`]) and ask the
//! shell's [`KeyBindings`] which key that id is bound to: another key
//! refuses the handshake; no binding yet (a node joining for the first
//! time) is accepted, its binding arrives with its first record. The chain
//! check still says "holds the token"; this adds "and is the node it says".

use std::fmt;
use std::sync::Arc;

use rcgen::{KeyPair, PKCS_ED25519};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::{CertificateError, OtherError};
use shoal_crdt_state::identity::PublicKey;
use shoal_crdt_state::node::NodeId;

use super::error::TransportError;

/// PKCS#8 v1 header for an Ed25519 private key (RFC 8410): the 32-byte seed
/// follows. ring and rustls accept this form.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// OID of Ed25519 keys (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// The rcgen key pair of a 32-byte ed25519 seed.
pub(crate) fn ed25519_key_pair(seed: &[u8; 32]) -> Result<KeyPair, TransportError> {
    let mut pkcs8 = Vec::with_capacity(48);
    pkcs8.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
    pkcs8.extend_from_slice(seed);
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8),
        &PKCS_ED25519,
    )?)
}

/// This node's id and the seed of its signing key: its peer certificates
/// are made for that key and name that id.
#[derive(Clone)]
pub struct NodeKey {
    pub node: NodeId,
    pub seed: [u8; 32],
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("node", &self.node)
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// The key each node id is bound to, as the shell knows it now (`None`:
/// not bound). Called during handshakes: keep it quick and lock-light.
#[derive(Clone)]
pub struct KeyBindings(pub Arc<dyn Fn(NodeId) -> Option<PublicKey> + Send + Sync>);

impl fmt::Debug for KeyBindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBindings(..)")
    }
}

/// The DNS SAN that names `node` in its peer certificate.
pub fn node_dns_name(node: NodeId) -> String {
    format!("node-{node}.shoal")
}

fn parse_node_dns_name(name: &str) -> Option<NodeId> {
    let hex = name.strip_prefix("node-")?.strip_suffix(".shoal")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(NodeId)
}

/// Why a peer's leaf was refused by the node check.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeCertError {
    #[error("the peer certificate cannot be read: {0}")]
    Unreadable(String),
    #[error("the peer certificate names no node id (expected one DNS name node-<id>.shoal)")]
    NoNodeId,
    #[error("the peer certificate names more than one node id")]
    SeveralNodeIds,
    #[error("the peer certificate's key is not an ed25519 key")]
    NotEd25519,
    /// The phrase [`BOUND_PHRASE`] is what [`refused_bound_node`] looks for
    /// in a handshake error (quinn hands it over as text).
    #[error(
        "node id {node} {BOUND_PHRASE} ({bound}), not to the key of the certificate presented ({presented})"
    )]
    BoundToAnotherKey {
        node: NodeId,
        bound: PublicKey,
        presented: PublicKey,
    },
}

const BOUND_PHRASE: &str = "is bound to another key";

/// The sentence, as rustls shows a certificate error's cause with `{:?}`.
impl fmt::Debug for NodeCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<NodeCertError> for rustls::Error {
    fn from(e: NodeCertError) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    }
}

/// The node id a leaf certificate names and the ed25519 key it is for.
pub fn leaf_node(cert: &CertificateDer<'_>) -> Result<(NodeId, PublicKey), NodeCertError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| NodeCertError::Unreadable(e.to_string()))?;
    let spki = parsed.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err(NodeCertError::NotEd25519);
    }
    let key: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| NodeCertError::NotEd25519)?;
    let names = parsed
        .subject_alternative_name()
        .map_err(|e| NodeCertError::Unreadable(e.to_string()))?;
    let mut ids = names
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => parse_node_dns_name(dns),
            _ => None,
        });
    let node = ids.next().ok_or(NodeCertError::NoNodeId)?;
    if ids.next().is_some() {
        return Err(NodeCertError::SeveralNodeIds);
    }
    Ok((node, PublicKey(key)))
}

/// The node id `cert` authenticates: the one it names, if `bindings` binds
/// it to no key or to the certificate's own.
pub fn check_leaf(
    cert: &CertificateDer<'_>,
    bindings: &KeyBindings,
) -> Result<NodeId, NodeCertError> {
    let (node, presented) = leaf_node(cert)?;
    match (bindings.0)(node) {
        Some(bound) if bound != presented => Err(NodeCertError::BoundToAnotherKey {
            node,
            bound,
            presented,
        }),
        _ => Ok(node),
    }
}

/// The node id a failed handshake was refused for because it is bound to
/// another key, read back from the error's text.
pub(crate) fn refused_bound_node(error: &str) -> Option<NodeId> {
    let at = error.find(BOUND_PHRASE)?;
    let before = error[..at].trim_end();
    let hex = before.get(before.len().checked_sub(16)?..)?;
    if !before[..before.len() - 16].ends_with("node id ") {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(NodeId)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, SystemTime};

    use super::super::certs::{ClusterIssuer, LeafRequest, LeafUsage};
    use super::super::token::JoinToken;
    use super::*;

    fn public_key(seed: &[u8; 32]) -> PublicKey {
        use ring::signature::KeyPair as _;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
        PublicKey(pair.public_key().as_ref().try_into().unwrap())
    }

    fn leaf(node: Option<NodeKey>) -> CertificateDer<'static> {
        let issuer = ClusterIssuer::from_token(&JoinToken::from_seed([4; 32])).unwrap();
        let request = LeafRequest {
            common_name: "shoal node test".into(),
            dns_names: vec!["shoal.test".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            usage: LeafUsage::Peer,
            validity: Duration::from_secs(60),
            node,
        };
        issuer.issue(&request, SystemTime::now()).unwrap().cert
    }

    fn bindings(bound: &[(NodeId, PublicKey)]) -> KeyBindings {
        let map: HashMap<NodeId, PublicKey> = bound.iter().copied().collect();
        KeyBindings(Arc::new(move |node| map.get(&node).copied()))
    }

    const NODE: NodeId = NodeId(0x00ab_cdef_0123_4567);

    #[test]
    fn a_peer_certificate_names_its_node_and_is_made_for_its_key() {
        let cert = leaf(Some(NodeKey {
            node: NODE,
            seed: [7; 32],
        }));
        assert_eq!(leaf_node(&cert), Ok((NODE, public_key(&[7; 32]))));
    }

    #[test]
    fn a_node_bound_to_its_own_key_is_accepted() {
        let cert = leaf(Some(NodeKey {
            node: NODE,
            seed: [7; 32],
        }));
        let bound = bindings(&[(NODE, public_key(&[7; 32]))]);
        assert_eq!(check_leaf(&cert, &bound), Ok(NODE));
    }

    #[test]
    fn a_node_bound_to_another_key_is_refused_and_named() {
        let cert = leaf(Some(NodeKey {
            node: NODE,
            seed: [8; 32],
        }));
        let bound = bindings(&[(NODE, public_key(&[7; 32]))]);
        let refused = check_leaf(&cert, &bound).unwrap_err();
        assert_eq!(
            refused,
            NodeCertError::BoundToAnotherKey {
                node: NODE,
                bound: public_key(&[7; 32]),
                presented: public_key(&[8; 32]),
            }
        );
        // What a handshake failure carries, as rustls and quinn word it.
        let text = format!(
            "the cryptographic handshake failed: error 42: {}",
            rustls::Error::from(refused.clone())
        );
        assert!(text.contains("is bound to another key"), "{text}");
        assert_eq!(refused_bound_node(&text), Some(NODE));
        assert_eq!(refused_bound_node("error 42: UnknownIssuer"), None);
    }

    #[test]
    fn an_unbound_node_is_accepted() {
        let cert = leaf(Some(NodeKey {
            node: NODE,
            seed: [8; 32],
        }));
        let other = bindings(&[(NodeId(1), public_key(&[7; 32]))]);
        assert_eq!(check_leaf(&cert, &other), Ok(NODE));
    }

    #[test]
    fn a_certificate_without_a_node_id_is_refused() {
        let cert = leaf(None);
        assert_eq!(
            check_leaf(&cert, &bindings(&[])),
            Err(NodeCertError::NoNodeId)
        );
        assert!(matches!(
            leaf_node(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            Err(NodeCertError::Unreadable(_))
        ));
    }

    #[test]
    fn only_well_formed_node_names_count() {
        assert_eq!(parse_node_dns_name(&node_dns_name(NODE)), Some(NODE));
        for bad in [
            "node-abc.shoal",
            "node-00abcdef01234567.shoal.evil",
            "node-00abcdef0123456g.shoal",
            "shoal.00abcdef01234567",
            "cluster-00abcdef01234567.shoal",
        ] {
            assert_eq!(parse_node_dns_name(bad), None, "{bad}");
        }
    }
}
