//! `GET /api/v1/ca`: the cluster CA certificate (PEM) that every peer's
//! HTTPS API is verified with; public, it holds no key. Fetched over a
//! verified channel (loopback, or `shoal ca print` on a member) it is what
//! `--ca-file` and a kubeconfig's certificate authority need.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use super::error::ApiError;

pub(super) async fn cluster_ca(
    State(state): State<ApiState>,
) -> Result<impl IntoResponse, ApiError> {
    let ca = state.cluster_ca.ok_or_else(|| {
        ApiError::not_found("this API runs without a cluster CA (not a `shoal up` peer)")
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        ca.pem.clone(),
    ))
}
