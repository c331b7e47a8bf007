//! Counting the HTTP API: requests by route template, method and status,
//! and latency to the response head.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, histogram};

use super::catalog::{API_REQUESTS, API_SECONDS};

/// Middleware for the API router. The route is the matched template
/// (`/api/v1/rcs/{name}`), never the raw path, so the series stay few;
/// a request no route matched counts as `unmatched`.
pub async fn count_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!(API_SECONDS, "route" => route.clone(), "method" => method).record(started.elapsed());
    counter!(API_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// The standard methods by name; anything else as `other` (a client may
/// send any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
