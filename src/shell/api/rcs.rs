//! ReplicationController routes: apply, list, describe, scale,
//! rolling-update, delete. Writes become peer [`Command`]s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use shoal_crdt_state::{image_ref, manifest};

use super::error::ApiError;
use super::models::{
    AppliedJson, ApplyResponse, CommandResponse, RcDetail, RcJson, RollingUpdateRequest,
    ScaleRequest,
};
use super::{ApiState, views};
use crate::peer::{Command, CommandError, CommandOutcome};

/// `POST /rcs`: every RC of the manifest, or none if any document is invalid.
/// 201 when something was created, 200 otherwise.
pub(super) async fn apply(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    let body = body?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the manifest is not UTF-8 text (byte {}); send YAML or JSON",
            e.valid_up_to()
        ))
    })?;
    let parsed = manifest::parse_manifests(text).map_err(|e| ApiError::manifest(&e))?;
    let mut applied = Vec::with_capacity(parsed.specs.len());
    let mut created = false;
    for spec in parsed.specs {
        let name = spec.name.clone();
        let outcome = state.handle.command(Command::Apply(spec)).await?;
        created |= outcome == CommandOutcome::Created;
        applied.push(AppliedJson {
            name,
            outcome: outcome.as_str().to_owned(),
        });
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ApplyResponse {
            applied,
            warnings: parsed.warnings.iter().map(ToString::to_string).collect(),
        }),
    ))
}

pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<Vec<RcJson>>, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    Ok(Json(views::rcs(&snapshot)))
}

pub(super) async fn describe(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<RcDetail>, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    let spec = views::rc_spec(&snapshot, &name).ok_or_else(|| rc_not_found(&name))?;
    Ok(Json(views::rc_detail(&snapshot, &spec)))
}

pub(super) async fn scale(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let Json(ScaleRequest { replicas }) = body?;
    let max = manifest::validate::MAX_REPLICAS;
    if replicas > max {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("replicas must be between 0 and {max}, not {replicas}"),
        ));
    }
    let outcome = state
        .handle
        .command(Command::Scale {
            name: name.clone(),
            replicas,
        })
        .await?;
    Ok(Json(response(name, outcome)))
}

pub(super) async fn rolling_update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Json<RollingUpdateRequest>, JsonRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let Json(RollingUpdateRequest { image, container }) = body?;
    // Refused here without a trip to the peer; the core checks it again for
    // its other callers.
    if let Err(reason) = image_ref::parse(&image) {
        return Err(CommandError::InvalidImage { image, reason }.into());
    }
    let outcome = state
        .handle
        .command(Command::RollingUpdate {
            name: name.clone(),
            image,
            container,
        })
        .await?;
    Ok(Json(response(name, outcome)))
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<CommandResponse>, ApiError> {
    let outcome = state
        .handle
        .command(Command::Delete { name: name.clone() })
        .await?;
    Ok(Json(response(name, outcome)))
}

fn response(name: String, outcome: CommandOutcome) -> CommandResponse {
    CommandResponse {
        name,
        outcome: outcome.as_str().to_owned(),
    }
}

fn rc_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "replicationcontroller \"{name}\" not found; `shoal get rc` lists them"
    ))
}
