//! What every request passes before it reaches a route: the API token, then
//! the body size limit. Both answer with the API's JSON error body.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::ApiError;
use super::{ApiState, MAX_BODY_BYTES};

/// How much of a too-large body is read (and dropped) before the 413 is sent.
/// A client that is still sending when the connection closes gets a reset
/// instead of the answer, so the peer lets it finish, within these bounds.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Refuses any request without the right `Authorization: Bearer` token.
/// The scheme is matched in any case (RFC 7235), the token in constant time.
pub(super) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.api_token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(token) if same_secret(token, expected) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong API token; send the API token this peer was started with \
             (`shoal up --api-token`; CLI: --api-token or SHOAL_API_TOKEN)",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this API needs a token: send `Authorization: Bearer <API token>` \
             (CLI: --api-token or SHOAL_API_TOKEN, the value of the peer's --api-token)",
        )
        .into_response(),
    }
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
}
