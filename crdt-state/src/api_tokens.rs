//! Scoped API tokens (`shoal token create|list|revoke`), replicated with
//! the desired state so that every peer accepts a token created at any one.
//!
//! A token is a name → [`TokenRecord`] of two parts:
//!
//! - `grant`: a last-writer-wins register holding the role, the SHA-256 of
//!   the secret (the secret itself is never stored nor replicated: a copy
//!   of the state, a checkpoint or a digest does not let anyone use the
//!   token) and the expiry time. `created` is the grant's stamp.
//! - `revoked`: the stamp of the first revocation seen, joined by `min`.
//!   Once present it stays, whatever grant arrives before or after it, so a
//!   revocation wins over a concurrent or later-arriving creation on every
//!   peer. A revoked name stays taken (creating it again is refused), which
//!   is what keeps a revoked secret from coming back through an old copy.
//!
//! Expiry is a wall-clock time; this crate only stores it. Each peer
//! compares it with its own clock when a request arrives (the shell).
//! Records are never collected: there are a handful of tokens, and the
//! revocation must outlive every copy of the grant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::hlc::Hlc;
use crate::register::{self, Reg, encoding};

/// The longest token name.
pub const MAX_NAME_LEN: usize = 63;

/// What a token may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TokenRole {
    /// Everything, like the peer's own `--api-token`.
    Admin,
    /// Reads only: lists, describes, watches, logs, events, metrics.
    ReadOnly,
}

impl TokenRole {
    /// The spelling of the CLI and the API: `admin`, `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::ReadOnly => "read-only",
        }
    }

    pub fn parse(text: &str) -> Result<TokenRole, String> {
        match text {
            "admin" => Ok(TokenRole::Admin),
            "read-only" | "readonly" => Ok(TokenRole::ReadOnly),
            other => Err(format!(
                "unknown token role {other:?}: use admin or read-only"
            )),
        }
    }
}

/// What creating a token wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenGrant {
    pub role: TokenRole,
    /// SHA-256 of the secret.
    pub secret_sha256: [u8; 32],
    /// Not accepted from this time on (ms since the epoch); `None`: never expires.
    pub expires_ms: Option<u64>,
}

/// One token's replicated record. A part never written is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub grant: Option<Reg<TokenGrant>>,
    /// The first revocation's stamp; present means revoked for good.
    pub revoked: Option<Hlc>,
}

impl TokenRecord {
    pub fn merge(&mut self, other: TokenRecord) {
        register::join(&mut self.grant, other.grant);
        self.revoked = match (self.revoked, other.revoked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    pub fn is_empty(&self) -> bool {
        self.grant.is_none() && self.revoked.is_none()
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked.is_some()
    }

    pub fn max_stamp(&self) -> Option<Hlc> {
        register::stamp(&self.grant).max(self.revoked)
    }

    /// Its digest entry.
    pub fn stamps(&self) -> TokenStamps {
        TokenStamps {
            grant: register::stamp(&self.grant),
            grant_hash: self
                .grant
                .as_ref()
                .map_or(0, |g| xxhash_rust::xxh3::xxh3_64(&encoding(&g.val))),
            revoked: self.revoked,
        }
    }

    /// What the owner of `theirs` lacks, holds older, or holds under the
    /// same stamp with another value.
    pub fn missing_for(&self, theirs: Option<&TokenStamps>) -> TokenRecord {
        let theirs = theirs.copied().unwrap_or_default();
        let mine = self.stamps();
        let grant_wanted = mine.grant > theirs.grant
            || (mine.grant.is_some()
                && mine.grant == theirs.grant
                && mine.grant_hash != theirs.grant_hash);
        // `min` join: ours helps when they have none or a later one.
        let revoked_wanted = mine
            .revoked
            .is_some_and(|m| theirs.revoked.is_none_or(|t| m < t));
        TokenRecord {
            grant: if grant_wanted {
                self.grant.clone()
            } else {
                None
            },
            revoked: if revoked_wanted { self.revoked } else { None },
        }
    }
}

/// A token's digest entry: grant stamp and content hash, revocation stamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStamps {
    pub grant: Option<Hlc>,
    /// xxh3 of the grant's encoding; 0 when never written.
    pub grant_hash: u64,
    pub revoked: Option<Hlc>,
}

/// A token as the API shows and checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenView<'a> {
    pub name: &'a str,
    pub grant: &'a TokenGrant,
    /// When it was created: the grant's stamp.
    pub created: Hlc,
    pub revoked: Option<Hlc>,
}

/// Every token, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokens {
    tokens: BTreeMap<String, TokenRecord>,
}

impl ApiTokens {
    pub fn record(&self, name: &str) -> Option<&TokenRecord> {
        self.tokens.get(name)
    }

    /// Every token with a grant (revoked ones too), sorted by name.
    pub fn views(&self) -> impl Iterator<Item = TokenView<'_>> {
        self.tokens.iter().filter_map(|(name, record)| {
            let grant = record.grant.as_ref()?;
            Some(TokenView {
                name,
                grant: &grant.val,
                created: grant.marker,
                revoked: record.revoked,
            })
        })
    }

    /// The token whose secret hashes to `sha256`, revoked or not.
    pub fn find(&self, sha256: &[u8; 32]) -> Option<TokenView<'_>> {
        self.views().find(|v| &v.grant.secret_sha256 == sha256)
    }

    /// Creates token `name`. Refused when the name is taken, also by a
    /// revoked token (see the module doc) or when it is not a valid name.
    pub fn create(
        &mut self,
        name: &str,
        grant: TokenGrant,
        stamp: Hlc,
    ) -> Result<BTreeMap<String, TokenRecord>, StateError> {
        check_name(name)?;
        if let Some(record) = self.tokens.get(name).filter(|r| !r.is_empty()) {
            return Err(StateError::TokenExists {
                name: name.to_owned(),
                revoked: record.is_revoked(),
            });
        }
        Ok(self.commit(
            name,
            TokenRecord {
                grant: Some(register::write(grant, stamp)),
                revoked: None,
            },
        ))
    }

    /// Revokes token `name`; empty when it already is.
    pub fn revoke(
        &mut self,
        name: &str,
        stamp: Hlc,
    ) -> Result<BTreeMap<String, TokenRecord>, StateError> {
        match self.tokens.get(name) {
            None => Err(StateError::UnknownToken {
                name: name.to_owned(),
            }),
            Some(record) if record.is_revoked() => Ok(BTreeMap::new()),
            Some(_) => Ok(self.commit(
                name,
                TokenRecord {
                    grant: None,
                    revoked: Some(stamp),
                },
            )),
        }
    }

    fn commit(&mut self, name: &str, write: TokenRecord) -> BTreeMap<String, TokenRecord> {
        self.tokens
            .entry(name.to_owned())
            .or_default()
            .merge(write.clone());
        BTreeMap::from([(name.to_owned(), write)])
    }

    pub fn merge(&mut self, delta: BTreeMap<String, TokenRecord>) {
        for (name, record) in delta {
            if !record.is_empty() {
                self.tokens.entry(name).or_default().merge(record);
            }
        }
    }

    pub fn digest(&self) -> BTreeMap<String, TokenStamps> {
        self.tokens
            .iter()
            .map(|(name, record)| (name.clone(), record.stamps()))
            .collect()
    }

    pub fn missing_for(
        &self,
        digest: &BTreeMap<String, TokenStamps>,
    ) -> BTreeMap<String, TokenRecord> {
        self.tokens
            .iter()
            .map(|(name, record)| (name.clone(), record.missing_for(digest.get(name))))
            .filter(|(_, record)| !record.is_empty())
            .collect()
    }

    pub fn to_delta(&self) -> BTreeMap<String, TokenRecord> {
        self.tokens.clone()
    }
}

/// A token name: 1 to [`MAX_NAME_LEN`] lowercase letters, digits and `-`,
/// starting and ending with a letter or digit (a DNS label, as kubectl names).
pub fn check_name(name: &str) -> Result<(), StateError> {
    let fine = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if fine {
        Ok(())
    } else {
        Err(StateError::InvalidTokenName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeId;

    fn stamp(ms: u64, node: u64) -> Hlc {
        Hlc {
            physical_ms: ms,
            counter: 0,
            node: NodeId(node),
        }
    }

    fn grant(byte: u8) -> TokenGrant {
        TokenGrant {
            role: TokenRole::ReadOnly,
            secret_sha256: [byte; 32],
            expires_ms: None,
        }
    }

    #[test]
    fn a_revocation_wins_over_a_later_grant_in_any_order() {
        let mut a = ApiTokens::default();
        let created = a.create("ci", grant(1), stamp(10, 1)).unwrap();
        let revoked = a.revoke("ci", stamp(20, 1)).unwrap();
        // A later grant of the same name (another peer that never saw the
        // revocation, or a hostile one) does not bring the token back.
        let regrant = BTreeMap::from([(
            "ci".to_owned(),
            TokenRecord {
                grant: Some(register::write(grant(2), stamp(30, 2))),
                revoked: None,
            },
        )]);
        let orders = [
            vec![created.clone(), revoked.clone(), regrant.clone()],
            vec![regrant.clone(), revoked.clone(), created.clone()],
            vec![revoked.clone(), regrant.clone(), created.clone()],
        ];
        let states: Vec<ApiTokens> = orders
            .into_iter()
            .map(|deltas| {
                let mut s = ApiTokens::default();
                for d in deltas {
                    s.merge(d);
                }
                s
            })
            .collect();
        for s in &states {
            assert_eq!(s, &states[0]);
            assert!(s.record("ci").unwrap().is_revoked());
        }
    }

    #[test]
    fn missing_for_brings_a_peer_to_the_same_tokens() {
        let mut a = ApiTokens::default();
        a.create("one", grant(1), stamp(10, 1)).unwrap();
        a.create("two", grant(2), stamp(11, 1)).unwrap();
        let mut b = ApiTokens::default();
        b.merge(a.to_delta());
        a.revoke("two", stamp(12, 1)).unwrap();
        b.create("three", grant(3), stamp(13, 2)).unwrap();
        let to_b = a.missing_for(&b.digest());
        let to_a = b.missing_for(&a.digest());
        assert_eq!(to_b.keys().collect::<Vec<_>>(), ["two"]);
        assert_eq!(to_a.keys().collect::<Vec<_>>(), ["three"]);
        a.merge(to_a);
        b.merge(to_b);
        assert_eq!(a, b);
        assert!(a.missing_for(&b.digest()).is_empty());
    }

    #[test]
    fn names_are_checked_and_never_reused() {
        let mut a = ApiTokens::default();
        for bad in ["", "Ci", "-ci", "ci-", "c i", &"x".repeat(64)] {
            assert!(a.create(bad, grant(1), stamp(1, 1)).is_err(), "{bad:?}");
        }
        a.create("ci", grant(1), stamp(1, 1)).unwrap();
        assert!(a.create("ci", grant(2), stamp(2, 1)).is_err());
        a.revoke("ci", stamp(3, 1)).unwrap();
        assert!(matches!(
            a.create("ci", grant(2), stamp(4, 1)),
            Err(StateError::TokenExists { revoked: true, .. })
        ));
        assert!(a.revoke("nope", stamp(5, 1)).is_err());
        assert!(a.revoke("ci", stamp(6, 1)).unwrap().is_empty());
        assert_eq!(a.find(&[1; 32]).unwrap().name, "ci");
    }
}
