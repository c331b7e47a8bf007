//! Read views built and encoded off the runtime's worker threads.
//!
//! A list of a large cluster is slow to build and encode: 30,000 pods are
//! ~7 MB of JSON and take tens of milliseconds. On a worker thread, that
//! time is taken from every other task of the runtime, the driver task that
//! owns the peer core included. In `tests/bench_snapshots.rs` (one client
//! listing pods 50 times a second at 10,000 RCs × 3 replicas, one run each
//! on a 2-core machine loaded by other work), the driver's 10 ms tick fired
//! up to 406 ms late (p99 96 ms) with `GET /pods` rendered on the workers,
//! and up to 74 ms late (p99 33 ms) with it rendered on a blocking thread,
//! where the OS shares the cores fairly between it and the workers. So
//! every view that walks the whole snapshot is rendered here, at most
//! [`AT_ONCE`] at a time (each holds its answer in memory until it is sent).

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::error::ApiError;
use crate::shell::handle::Snapshot;

/// Views rendered at once; further reads wait for a turn.
pub const AT_ONCE: usize = 4;

/// Shared with the Kubernetes API's views (`kube::reads`).
pub(super) static TURNS: Semaphore = Semaphore::const_new(AT_ONCE);

/// `view(snapshot)` as a JSON response, built and encoded on a blocking
/// thread (same bytes and headers as axum's `Json`).
pub(super) async fn json<T, F>(snapshot: Arc<Snapshot>, view: F) -> Result<Response, ApiError>
where
    T: Serialize,
    F: FnOnce(&Snapshot) -> Result<T, ApiError> + Send + 'static,
{
    let _turn = TURNS
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("the API is shutting down"))?;
    let body = tokio::task::spawn_blocking(move || {
        let value = view(&snapshot)?;
        serde_json::to_vec(&value).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the answer as JSON: {e}"),
            )
        })
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the answer failed: {e}"),
        )
    })??;
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], body).into_response())
}
