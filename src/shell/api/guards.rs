//! What every request passes before it reaches a route: who the caller is
//! (the API token: the peer's own `--api-token` or a scoped token from
//! `shoal token create`) and whether its role allows the request, then the
//! body size limit. All answer with the API's JSON error body, or with a
//! Kubernetes `Status` under the kubectl API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use shoal_crdt_state::api_tokens::{TokenRole, TokenView};

use super::error::ApiError;
use super::{ApiState, MAX_BODY_BYTES};

/// How much of a too-large body is read (and dropped) before the 413 is sent.
/// A client that is still sending when the connection closes gets a reset
/// instead of the answer, so the peer lets it finish, within these bounds.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Who sent a request, as far as the API cares: what its token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    pub role: TokenRole,
    /// The scoped token's name; `None` for the peer's own `--api-token` or
    /// an open (loopback, no token) API.
    pub token: Option<String>,
}

/// Decides who the caller is, refuses (401) an unknown, revoked or expired
/// token, and (403) a write by a read-only token. The scheme is matched in
/// any case (RFC 7235), the peer's own token in constant time; a scoped
/// token is found by the SHA-256 of what was sent, checked against this
/// peer's clock for expiry.
pub(super) async fn require_token(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let kube = request.uri().path().starts_with(super::kube::PREFIX);
    // Owned before the await: a request (its body) is not `Sync`.
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let caller = match identify(&state, given.as_deref()).await {
        Ok(caller) => caller,
        Err(e) => return refusal(e, kube),
    };
    if let Err(e) = authorize(&caller, request.method(), request.uri().path()) {
        return refusal(e, kube);
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// An error as the API it belongs to answers it.
pub(super) fn refusal(e: ApiError, kube: bool) -> Response {
    if kube {
        super::kube::status::KubeError::from(e).into_response()
    } else {
        e.into_response()
    }
}

async fn identify(state: &ApiState, given: Option<&str>) -> Result<Caller, ApiError> {
    let admin = Caller {
        role: TokenRole::Admin,
        token: None,
    };
    let expected = state.api_token.as_deref();
    let Some(given) = given else {
        return match expected {
            None => Ok(admin),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this API needs a token: send `Authorization: Bearer <API token>` \
                 (CLI: --api-token or SHOAL_API_TOKEN: the peer's --api-token or a token \
                 from `shoal token create`)",
            )),
        };
    };
    if expected.is_some_and(|expected| same_secret(given, expected)) {
        return Ok(admin);
    }
    let snapshot = state.handle.snapshot().await?;
    let hash = super::tokens::secret_sha256(given);
    match snapshot.state.desired.tokens().find(&hash) {
        Some(token) => check_scoped(token, now_ms()),
        // An open API serves anyone; a token it does not know changes nothing.
        None if expected.is_none() => Ok(admin),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong API token: send the peer's --api-token or a token from \
             `shoal token create` (CLI: --api-token or SHOAL_API_TOKEN)",
        )),
    }
}

/// A scoped token found by its hash: accepted unless revoked or expired.
fn check_scoped(token: TokenView<'_>, now_ms: u64) -> Result<Caller, ApiError> {
    let refused = |why: String| {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("{why}; ask an admin for a new one (`shoal token create`)"),
        ))
    };
    if token.revoked.is_some() {
        return refused(format!("API token {:?} was revoked", token.name));
    }
    if let Some(expires) = token.grant.expires_ms.filter(|&e| e <= now_ms) {
        return refused(format!(
            "API token {:?} expired at {}",
            token.name,
            super::tokens::utc(expires)
        ));
    }
    Ok(Caller {
        role: token.grant.role,
        token: Some(token.name.to_owned()),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether the caller's role allows `method` on `path`: an admin anything,
/// a read-only token reads (GET, HEAD, OPTIONS: lists, describes, watches,
/// logs, events, metrics) except the tokens themselves.
fn authorize(caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
    if caller.role == TokenRole::Admin {
        return Ok(());
    }
    let name = caller.token.as_deref().unwrap_or_default();
    let forbidden = |what: String| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "API token {name:?} has the role {}, which only reads; {what} needs an admin \
                 token (`shoal token create --role admin`, or the peer's --api-token)",
                caller.role.as_str()
            ),
        ))
    };
    if path == super::tokens::PATH || path.starts_with(&format!("{}/", super::tokens::PATH)) {
        return forbidden("managing API tokens".to_owned());
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    forbidden(format!("{method} {path}"))
}

/// The credentials of an `Authorization: Bearer <token>` header value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares without stopping at the first difference, so timing does not
/// tell an attacker how much of a guess was right.
fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
    diff == 0
}

/// Answers 413 to a request that declares a body over [`MAX_BODY_BYTES`],
/// after draining it (see [`DRAIN_BYTES`]). A body without a declared length
/// is cut off by `DefaultBodyLimit` in the route's extractor instead. An
/// image archive has a limit of its own (`image_load`).
pub(super) async fn refuse_large_body(request: Request, next: Next) -> Response {
    if request.uri().path() == super::image_load::PATH {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > MAX_BODY_BYTES as u64 => {
            drain(request.into_body()).await;
            ApiError::too_large(Some(len)).into_response()
        }
        _ => next.run(request).await,
    }
}

/// Reads and drops a body, up to [`DRAIN_BYTES`] or [`DRAIN_TIME`].
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read += chunk.len() as u64;
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer   abc "] {
            assert_eq!(bearer_token(value), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearerabc", "Bearer ", "Bearer", "abc", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cret!", "s3cret"));
        assert!(!same_secret("S3cret", "s3cret"));
    }

    #[test]
    fn a_read_only_token_reads_and_never_writes() {
        let reader = Caller {
            role: TokenRole::ReadOnly,
            token: Some("ci".into()),
        };
        for (method, path) in [
            (Method::GET, "/api/v1/rcs"),
            (Method::GET, "/api/v1/pods/x/logs"),
            (Method::HEAD, "/metrics"),
            (Method::GET, "/kube/api/v1/namespaces/default/pods"),
        ] {
            assert!(authorize(&reader, &method, path).is_ok(), "{method} {path}");
        }
        for (method, path) in [
            (Method::POST, "/api/v1/rcs"),
            (Method::PUT, "/api/v1/rcs/x/scale"),
            (Method::DELETE, "/api/v1/rcs/x"),
            (Method::POST, "/api/v1/nodes/n/cordon"),
            (Method::POST, "/api/v1/images/load"),
            (
                Method::PATCH,
                "/kube/api/v1/namespaces/default/replicationcontrollers/x/scale",
            ),
            (Method::GET, "/api/v1/tokens"),
        ] {
            let e = authorize(&reader, &method, path).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{method} {path}");
            assert!(e.message.contains("read-only"), "{}", e.message);
        }
        let admin = Caller {
            role: TokenRole::Admin,
            token: None,
        };
        assert!(authorize(&admin, &Method::DELETE, "/api/v1/tokens/ci").is_ok());
    }

    #[test]
    fn revoked_and_expired_tokens_are_refused() {
        use shoal_crdt_state::Hlc;
        use shoal_crdt_state::api_tokens::TokenGrant;
        use shoal_crdt_state::node::NodeId;
        let stamp = Hlc {
            physical_ms: 1,
            counter: 0,
            node: NodeId(1),
        };
        let grant = TokenGrant {
            role: TokenRole::ReadOnly,
            secret_sha256: [0; 32],
            expires_ms: Some(1_000),
        };
        let view = TokenView {
            name: "ci",
            grant: &grant,
            created: stamp,
            revoked: None,
        };
        assert!(check_scoped(view, 999).is_ok());
        let expired = check_scoped(view, 1_000).unwrap_err();
        assert!(expired.message.contains("expired"), "{}", expired.message);
        let revoked = TokenView {
            revoked: Some(stamp),
            ..view
        };
        let e = check_scoped(revoked, 0).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.message.contains("revoked"), "{}", e.message);
    }
}
