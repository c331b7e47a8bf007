//! `/ui`: the dashboard every peer serves.
//!
//! One static page, embedded in the binary (no CDN, no build step): it
//! reads the same JSON API as `shoal get` (nodes, RCs, pods, services with
//! their endpoints) every 2 s and shows what this peer sees of the whole
//! cluster, with the cluster's event stream (`/api/v1/events`, polled on
//! its own) and the followed logs of the pod one clicks. Its actions are
//! requests to that same API: apply a manifest, scale, rolling update,
//! delete an RC, cordon, uncordon and drain a node (a drain is a cordon
//! whose row then counts the node's pods down, as `shoal drain` does).
//! Wide tables scroll in their own box, so the page reads on a phone.
//!
//! The page itself holds no data, so it is served without the API token;
//! the page asks for the token when the API answers 401, keeps it for the
//! browser tab (`sessionStorage`) and sends it as a bearer token.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The page, with its script and styles inline.
const PAGE: &str = include_str!("page.html");

/// `GET /ui`.
pub async fn page() -> Response {
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    // The page is a fixed asset of this binary: a browser may keep it, but
    // must ask again after an upgrade of the peer.
    let cache = HeaderValue::from_static("no-cache");
    (
        [(header::CONTENT_TYPE, html), (header::CACHE_CONTROL, cache)],
        PAGE,
    )
        .into_response()
}

/// `GET /`: a browser pointed at a peer's API address lands on the page.
pub async fn to_page() -> Redirect {
    Redirect::to("/ui")
}
