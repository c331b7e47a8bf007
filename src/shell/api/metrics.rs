//! `GET /metrics`: the Prometheus text format, behind the API token like
//! every route (a scrape config sends it as a bearer token).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::error::ApiError;
use crate::shell::metrics::exposition;

/// The text format's content type (version 0.0.4).
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn scrape(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let core = state.handle.stats().await?;
    let snapshot = state.handle.snapshot().await?;
    // Walks every pod of the snapshot: off the runtime's workers (see `render`).
    let body = tokio::task::spawn_blocking(move || exposition::render(&core, &snapshot))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering the metrics failed: {e}"),
            )
        })?;
    let content_type = HeaderValue::from_static(TEXT_FORMAT);
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
