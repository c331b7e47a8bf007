//! The cluster identity: what stays the same when the join token rotates.
//!
//! A cluster is named and its API CA is keyed by the token it was *created*
//! with; a token rotated in later only changes which peers the QUIC
//! transport admits. The identity is two values derived from the creation
//! token: its cluster id (public: container labels, the DNS identity, the
//! API's reported id) and the seed of the CA key (secret: whoever holds it
//! can issue API certificates that clients trust). A cluster that never
//! rotated thus keeps the id and CA it always had.
//!
//! Text form (node.json, the member-to-member answer):
//! `shoalcluster1.<cluster-id>.<ca-seed>`, 16 and 64 lower-case hex digits.

use std::fmt;
use std::str::FromStr;

use super::token::{CLUSTER_ID_LEN, JoinToken, SECRET_LEN, hex, unhex};

const PREFIX: &str = "shoalcluster1";

/// The id and the API-CA key seed of a cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    cluster_id: [u8; CLUSTER_ID_LEN],
    ca_seed: [u8; SECRET_LEN],
}

/// Why a cluster identity string was rejected. Never echoes the seed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "malformed cluster identity: expected `{PREFIX}.<cluster-id>.<ca-seed>` with 16 and 64 hex digits"
    )]
    Shape,
}

impl ClusterIdentity {
    /// The identity of a cluster created with `token`.
    pub fn of(token: &JoinToken) -> ClusterIdentity {
        let mut ca_seed = [0u8; SECRET_LEN];
        token.derive_key(super::tls::CA_KEY_LABEL, &mut ca_seed);
        ClusterIdentity {
            cluster_id: token.cluster_id_bytes(),
            ca_seed,
        }
    }

    /// The cluster id in hex: public, safe to log.
    pub fn cluster_id(&self) -> String {
        hex(&self.cluster_id)
    }

    /// The DNS name the API certificates carry.
    pub fn server_name(&self) -> String {
        format!("cluster-{}.shoal", self.cluster_id())
    }

    pub(crate) fn ca_seed(&self) -> &[u8; SECRET_LEN] {
        &self.ca_seed
    }
}

impl fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("cluster_id", &self.cluster_id())
            .field("ca_seed", &"<redacted>")
            .finish()
    }
}

/// The whole text form, seed included: handle like a join token.
impl fmt::Display for ClusterIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}",
            hex(&self.cluster_id),
            hex(&self.ca_seed)
        )
    }
}

impl FromStr for ClusterIdentity {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [PREFIX, id, seed] = parts[..] else {
            return Err(IdentityError::Shape);
        };
        Ok(ClusterIdentity {
            cluster_id: unhex(id).ok_or(IdentityError::Shape)?,
            ca_seed: unhex(seed).ok_or(IdentityError::Shape)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_of_a_token_names_its_cluster_and_round_trips() {
        let token = JoinToken::from_seed([7; 32]);
        let identity = ClusterIdentity::of(&token);
        assert_eq!(identity.cluster_id(), token.cluster_id());
        assert_eq!(identity.server_name(), token.server_name());
        let text = identity.to_string();
        assert!(text.starts_with("shoalcluster1."), "{text}");
        assert_eq!(text.parse::<ClusterIdentity>(), Ok(identity.clone()));
        assert!(
            !format!("{identity:?}").contains(&text[31..]),
            "Debug hides the seed"
        );
        assert_ne!(
            ClusterIdentity::of(&JoinToken::from_seed([8; 32])),
            identity,
            "another token, another cluster"
        );
    }

    #[test]
    fn a_recorded_identity_gives_the_ca_of_the_creation_token() {
        let token = JoinToken::from_seed([7; 32]);
        let recorded: ClusterIdentity = ClusterIdentity::of(&token).to_string().parse().unwrap();
        let issuer = super::super::ClusterIssuer::from_identity(&recorded).unwrap();
        assert_eq!(
            issuer.ca_der(),
            &super::super::cluster_ca_certificate(&token).unwrap()
        );
    }

    #[test]
    fn malformed_identities_are_refused() {
        let good = ClusterIdentity::of(&JoinToken::from_seed([7; 32])).to_string();
        for bad in [
            "",
            "shoalcluster1",
            &good.replacen("shoalcluster1", "shoal1", 1),
            &good[..good.len() - 2],
            &format!("{good}.00"),
            &good.replacen('.', ".zz", 1),
        ] {
            assert_eq!(
                bad.parse::<ClusterIdentity>(),
                Err(IdentityError::Shape),
                "{bad}"
            );
        }
    }
}
