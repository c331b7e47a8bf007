//! The join token: the one secret a cluster shares.
//!
//! Format: `shoal1.<cluster-id>.<secret>`, where `<secret>` is 32 bytes in
//! lower-case hex and `<cluster-id>` is 8 bytes of a hash of the secret, also
//! in hex. The cluster id is therefore a checksum too: a token with a typo in
//! either part is rejected when parsed, not at the first failed handshake.
//!
//! Everything the TLS layer needs (the cluster CA key, the stateless-reset key)
//! is derived from the secret with HKDF-SHA256 under distinct labels, so every
//! token holder derives the same CA and nobody without the token can.

use std::fmt;
use std::str::FromStr;

use ring::hkdf;

/// The token's version prefix. Bumped if the derivations below ever change.
const PREFIX: &str = "shoal1";
/// Secret length in bytes (64 hex characters in the token).
pub(super) const SECRET_LEN: usize = 32;
/// Cluster id length in bytes (16 hex characters in the token).
pub(super) const CLUSTER_ID_LEN: usize = 8;
/// HKDF salt: separates Shoal's derivations from any other use of the bytes.
const SALT: &[u8] = b"shoal/join-token/v1";

/// Why a join token string was rejected. Messages never echo the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three dot-separated parts.
    #[error(
        "malformed join token: expected `shoal1.<cluster-id>.<secret>` (3 parts separated by dots), found {parts} part(s); copy the whole token printed by the first peer"
    )]
    Shape {
        /// How many dot-separated parts the string had.
        parts: usize,
    },
    /// The first part is not the supported version.
    #[error(
        "unsupported join token version `{found}`: this peer understands `shoal1` tokens; check that every peer runs the same Shoal release"
    )]
    Version {
        /// The prefix found (at most 16 characters of it).
        found: String,
    },
    /// The cluster id part is not 16 hex characters.
    #[error("malformed join token: the cluster id must be 16 hex characters, found {len}")]
    ClusterId {
        /// Its length in characters.
        len: usize,
    },
    /// The secret part is not 64 hex characters.
    #[error("malformed join token: the secret must be 64 hex characters, found {len} characters")]
    Secret {
        /// Its length in characters (the content is not echoed).
        len: usize,
    },
    /// Both parts are well formed but do not belong together.
    #[error(
        "join token checksum mismatch: its cluster id does not match its secret (a typo or a truncated copy?)"
    )]
    Checksum,
}

/// The cluster's shared secret and its public cluster id.
///
/// `Debug` shows only the cluster id; `Display` prints the whole token (that
/// is what the first peer prints for the operator), so log it with care.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    secret: [u8; SECRET_LEN],
    cluster_id: [u8; CLUSTER_ID_LEN],
}

impl JoinToken {
    /// A token whose secret is `seed`. The shell passes 32 bytes of OS
    /// randomness; tests pass fixed bytes to get a reproducible cluster.
    pub fn from_seed(seed: [u8; SECRET_LEN]) -> Self {
        let mut cluster_id = [0u8; CLUSTER_ID_LEN];
        derive(&seed, b"cluster-id", &mut cluster_id);
        JoinToken {
            secret: seed,
            cluster_id,
        }
    }

    /// The cluster id in hex: public, safe to log, and part of the TLS names.
    pub fn cluster_id(&self) -> String {
        hex(&self.cluster_id)
    }

    pub(super) fn cluster_id_bytes(&self) -> [u8; CLUSTER_ID_LEN] {
        self.cluster_id
    }

    /// The DNS name every node certificate carries and every dial verifies.
    /// Peers are dialled by IP, so the name is fixed per cluster rather than
    /// per node: the certificate chain, not the name, carries the trust.
    /// The cluster id leads a label of its own: as the last label, a cluster
    /// id of decimal digits only (1 token in ~1,800) is no DNS name TLS
    /// accepts, and such a cluster could not start.
    pub fn server_name(&self) -> String {
        format!("cluster-{}.shoal", self.cluster_id())
    }

    /// Fills `out` with key material for `label`, derived from the secret.
    /// Distinct labels give independent keys.
    pub(crate) fn derive_key(&self, label: &[u8], out: &mut [u8]) {
        derive(&self.secret, label, out);
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("cluster_id", &self.cluster_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}",
            hex(&self.cluster_id),
            hex(&self.secret)
        )
    }
}

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [prefix, id, secret] = parts[..] else {
            return Err(TokenError::Shape { parts: parts.len() });
        };
        if prefix != PREFIX {
            return Err(TokenError::Version {
                found: prefix.chars().take(16).collect(),
            });
        }
        let id = unhex::<CLUSTER_ID_LEN>(id).ok_or(TokenError::ClusterId {
            len: id.chars().count(),
        })?;
        let secret = unhex::<SECRET_LEN>(secret).ok_or(TokenError::Secret {
            len: secret.chars().count(),
        })?;
        let token = JoinToken::from_seed(secret);
        if token.cluster_id != id {
            return Err(TokenError::Checksum);
        }
        Ok(token)
    }
}

/// HKDF-SHA256(salt = [`SALT`], ikm = secret, info = label) into `out`.
fn derive(secret: &[u8], label: &[u8], out: &mut [u8]) {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
    let info = [label];
    // Output lengths used here are at most 64 bytes, far below HKDF's limit
    // of 255 * 32 bytes, so neither step can fail.
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length is within limits");
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Exactly `N` bytes from `2 * N` hex digits (either case), or `None`.
pub(super) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *byte = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_id_of_digits_only_still_makes_a_server_name_tls_accepts() {
        // A token a test run made, whose cluster id happens to be all digits:
        // peers with it failed to start ("invalid dns name").
        let token: JoinToken =
            "shoal1.0430452157501485.536cb9539669e32a7c87e5e97b6215d891eb39808d8749481f8d16863bc3b2f2"
                .parse()
                .expect("a well-formed token");
        assert_eq!(token.cluster_id(), "0430452157501485");
        let name = token.server_name();
        assert!(
            rustls::pki_types::ServerName::try_from(name.as_str()).is_ok(),
            "{name}"
        );
    }

    #[test]
    fn token_round_trips_through_its_string_form() {
        let token = JoinToken::from_seed([7u8; 32]);
        let text = token.to_string();
        assert!(text.starts_with("shoal1."));
        assert_eq!(text.len(), 6 + 1 + 16 + 1 + 64);
        assert_eq!(text.parse::<JoinToken>(), Ok(token));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let token = JoinToken::from_seed([0xab; 32]);
        let debug = format!("{token:?}");
        assert!(!debug.contains("abababab"), "{debug}");
        assert!(debug.contains(&token.cluster_id()));
    }

    #[test]
    fn different_seeds_give_different_clusters() {
        let a = JoinToken::from_seed([1; 32]);
        let b = JoinToken::from_seed([2; 32]);
        assert_ne!(a.cluster_id(), b.cluster_id());
        let (mut ka, mut kb) = ([0u8; 32], [0u8; 32]);
        a.derive_key(b"ca", &mut ka);
        b.derive_key(b"ca", &mut kb);
        assert_ne!(ka, kb);
        let mut ka2 = [0u8; 32];
        a.derive_key(b"reset", &mut ka2);
        assert_ne!(ka, ka2, "labels separate keys");
    }
}
