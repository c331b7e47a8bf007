//! API token routes (admin only, see `guards`): create, list, revoke.
//!
//! The secret is made here, from the OS's randomness, and leaves the peer
//! once, in the answer to the create; the replicated state keeps only its
//! SHA-256 (see `shoal_crdt_state::api_tokens`).
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/tokens` | `{"role": "admin"\|"read-only", "name": N?, "expires_in_secs": S?}` → the secret, once |
//! | `GET /api/v1/tokens` | name, role, created, expires, state; never a secret |
//! | `DELETE /api/v1/tokens/{name}` | revoke, for good |
//! | `POST /api/v1/tokens/join/rotate` | `{"grace_secs": S}` → a new *join* token, once (see `shell::join_rotation`) |

use std::fmt::Write as _;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use ring::digest;
use shoal_crdt_state::api_tokens::{self, TokenGrant, TokenRole};

use super::ApiState;
use super::error::ApiError;
use super::models::{
    CommandResponse, JoinRotateRequest, JoinRotated, TokenCreateRequest, TokenCreated, TokenRow,
};
use super::rcs::response;
use crate::peer::Command;

/// Where the token routes live (the guard keeps read-only tokens off them).
pub(super) const PATH: &str = "/api/v1/tokens";

/// Prefix of every secret made here: tells a person (and a secret scanner)
/// what the string is.
const SECRET_PREFIX: &str = "shoal-api-";

/// The longest expiry accepted: ten years.
const MAX_EXPIRES_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// SHA-256 of a secret as sent: what the state stores and requests are
/// matched by.
pub(crate) fn secret_sha256(secret: &str) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, secret.as_bytes()).as_ref());
    out
}

/// A new secret: the prefix and 32 random bytes in hex.
fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut out = String::from(SECRET_PREFIX);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Milliseconds since the epoch as RFC 3339 UTC (whole seconds).
pub(crate) fn utc(ms: u64) -> String {
    i64::try_from(ms / 1000)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| format!("{ms} ms"), |t| t.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `POST /tokens`: a new token; the answer holds its secret, the only time.
pub(super) async fn create(
    State(state): State<ApiState>,
    body: Result<Json<TokenCreateRequest>, JsonRejection>,
) -> Result<Json<TokenCreated>, ApiError> {
    let Json(request) = body?;
    let role =
        TokenRole::parse(&request.role).map_err(|e| ApiError::bad_request(format!("role: {e}")))?;
    let name = match request.name {
        Some(name) => name,
        None => format!("token-{}", &new_secret()[SECRET_PREFIX.len()..][..8]),
    };
    api_tokens::check_name(&name).map_err(|e| ApiError::bad_request(format!("name: {e}")))?;
    let expires_ms = match request.expires_in_secs {
        None => None,
        Some(0) => {
            return Err(ApiError::bad_request(
                "expires_in_secs: must be more than 0",
            ));
        }
        Some(secs) if secs > MAX_EXPIRES_SECS => {
            return Err(ApiError::bad_request(format!(
                "expires_in_secs: {secs} is more than ten years ({MAX_EXPIRES_SECS}); leave it out for a token that never expires"
            )));
        }
        Some(secs) => Some(now_ms() + secs * 1000),
    };
    let secret = new_secret();
    let grant = TokenGrant {
        role,
        secret_sha256: secret_sha256(&secret),
        expires_ms,
    };
    state
        .handle
        .command(Command::CreateToken {
            name: name.clone(),
            grant,
        })
        .await?;
    Ok(Json(TokenCreated {
        name,
        role: role.as_str().to_owned(),
        secret,
        expires: expires_ms.map(utc),
    }))
}

/// The longest grace of a rotated-out join token: thirty days.
const MAX_JOIN_GRACE_SECS: u64 = 30 * 24 * 60 * 60;

/// `POST /tokens/join/rotate`: a new join token from the OS's randomness,
/// written to the replicated join-secret register; the answer holds it,
/// the only time (members read it from the state, never from the API).
pub(super) async fn rotate_join(
    State(state): State<ApiState>,
    body: Result<Json<JoinRotateRequest>, JsonRejection>,
) -> Result<Json<JoinRotated>, ApiError> {
    let Json(request) = body?;
    if request.grace_secs > MAX_JOIN_GRACE_SECS {
        return Err(ApiError::bad_request(format!(
            "grace_secs: {} is more than thirty days ({MAX_JOIN_GRACE_SECS})",
            request.grace_secs
        )));
    }
    let token = shoal_gossip::quic::JoinToken::from_seed(rand::random());
    // The cluster keeps its id across rotations (see `cluster_identity`).
    let cluster_id = state.handle.snapshot().await?.cluster.clone();
    let before = now_ms();
    state
        .handle
        .command(Command::RotateJoinToken {
            new: token.to_string(),
            grace_ms: request.grace_secs * 1000,
        })
        .await?;
    Ok(Json(JoinRotated {
        cluster_id,
        token: token.to_string(),
        previous_until: utc(before + request.grace_secs * 1000),
    }))
}

/// `GET /tokens`: every token, revoked ones too; never a secret.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<Vec<TokenRow>>, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    let now = now_ms();
    let rows = snapshot
        .state
        .desired
        .tokens()
        .views()
        .map(|t| {
            let status = if t.revoked.is_some() {
                "revoked"
            } else if t.grant.expires_ms.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            TokenRow {
                name: t.name.to_owned(),
                role: t.grant.role.as_str().to_owned(),
                created: utc(t.created.physical_ms),
                created_ms: t.created.physical_ms,
                expires: t.grant.expires_ms.map(utc),
                expires_ms: t.grant.expires_ms,
                status: status.to_owned(),
            }
        })
        .collect();
    Ok(Json(rows))
}

/// `DELETE /tokens/{name}`: revoke, at every peer, for good.
pub(super) async fn revoke(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CommandResponse>, ApiError> {
    let outcome = state
        .handle
        .command(Command::RevokeToken { name: name.clone() })
        .await?;
    Ok(Json(response(name, outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_hashed_as_sha256() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 64);
        // SHA-256 of "abc" (FIPS 180-2 test vector).
        assert_eq!(secret_sha256("abc")[..4], [0xba, 0x78, 0x16, 0xbf],);
        assert_eq!(utc(1_796_184_633_042), "2026-12-02T04:10:33Z");
    }
}
