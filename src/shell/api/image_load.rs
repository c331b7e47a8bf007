//! `POST /api/v1/images/load`: an image archive (`docker save` format)
//! streamed into this peer's engine, as a person seeds the cluster. The body
//! is never held whole; it is bounded by [`MAX_IMAGE_BYTES`], not by the
//! API's manifest limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use shoal_runtime::docker::LoadError;

use super::ApiState;
use super::error::ApiError;
use super::models::LoadedImageJson;

/// The route, exempt from the manifest body limit (see `guards`).
pub const PATH: &str = "/api/v1/images/load";

/// Largest archive accepted: generous, but a runaway upload still ends.
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024 * 1024;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

pub(super) async fn load(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Vec<LoadedImageJson>>, ApiError> {
    let Some(runtime) = state.runtime.clone() else {
        return Err(ApiError::unavailable(
            "this peer has no container engine to load images into; load on a peer that runs containers",
        ));
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared.filter(|&s| s > MAX_IMAGE_BYTES) {
        return Err(too_large(Some(size)));
    }
    // Counted as it streams: an undeclared length is bounded too.
    let over = Arc::new(AtomicBool::new(false));
    let flag = over.clone();
    let mut received = 0u64;
    let archive = body.into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        received += chunk.len() as u64;
        if received > MAX_IMAGE_BYTES {
            flag.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("the archive is over the limit"));
        }
        Ok(chunk)
    });
    match runtime.load_archive(Box::pin(archive)).await {
        Ok(loaded) if loaded.is_empty() => Err(ApiError::bad_request(
            "the engine loaded nothing from the archive; give an image archive as `docker save` writes it",
        )),
        Ok(loaded) => {
            for image in &loaded {
                tracing::info!(reference = ?image.reference, id = %image.id, "image seeded");
            }
            Ok(Json(
                loaded
                    .into_iter()
                    .map(|i| LoadedImageJson {
                        reference: i.reference,
                        id: i.id,
                    })
                    .collect(),
            ))
        }
        Err(_) if over.load(Ordering::Relaxed) => Err(too_large(None)),
        Err(LoadError::Refused(why)) => Err(ApiError::bad_request(format!(
            "the engine refused the archive: {why}; give an image archive as `docker save` writes it"
        ))),
        Err(e) => Err(ApiError::unavailable(format!(
            "cannot load the archive: {e}"
        ))),
    }
}

fn too_large(size: Option<u64>) -> ApiError {
    let size = size.map_or(String::new(), |s| format!(" ({:.1} GiB)", s as f64 / GIB));
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the image archive{size} is larger than a peer loads at once ({:.0} GiB); \
             save fewer images per archive",
            MAX_IMAGE_BYTES as f64 / GIB
        ),
    )
}
