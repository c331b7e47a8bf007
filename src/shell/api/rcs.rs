//! ReplicationController routes: apply, list, describe, scale,
//! rolling-update, delete. Writes become peer [`Command`]s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use shoal_crdt_state::{image_ref, manifest};

use super::error::ApiError;
use super::models::{ApplyResponse, CommandResponse, RollingUpdateRequest, ScaleRequest};
use super::{ApiState, render, views};
use crate::peer::{Command, CommandError, CommandOutcome};
use crate::shell::handle::Ack;

/// `?wait=durable` (the default) or `?wait=replicated` on every write: when
/// the answer is sent (see [`Ack`]).
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct WaitQuery {
    wait: Option<String>,
}

impl WaitQuery {
    pub(super) fn ack(query: Result<Query<WaitQuery>, QueryRejection>) -> Result<Ack, ApiError> {
        let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        match query.wait.as_deref() {
            None | Some("durable") => Ok(Ack::Durable),
            Some("replicated") => Ok(Ack::Replicated),
            Some(other) => Err(ApiError::bad_request(format!(
                "wait={other:?} is not known; use wait=durable (the default: on this peer's disk) \
                 or wait=replicated (on the disk of another live peer too)"
            ))),
        }
    }
}

/// `POST /rcs`: every RC and service of the manifest, or none if any
/// document is invalid. 201 when something was created, 200 otherwise.
pub(super) async fn apply(
    State(state): State<ApiState>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    let ack = WaitQuery::ack(query)?;
    let parsed = super::apply::parse(&body?)?;
    super::apply::apply(&state, parsed, ack).await
}

pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, |s| Ok(views::rcs(s))).await
}

pub(super) async fn describe(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, move |s| {
        let spec = views::rc_spec(s, &name).ok_or_else(|| views::rc_not_found(&name))?;
        Ok(views::rc_detail(s, &spec))
    })
    .await
}

pub(super) async fn scale(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let Json(ScaleRequest { replicas }) = body?;
    manifest::validate::replicas(replicas)
        .map_err(|reason| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason))?;
    let outcome = state
        .handle
        .command_with(
            Command::Scale {
                name: name.clone(),
                replicas,
            },
            ack,
        )
        .await?;
    Ok(Json(response(name, outcome)))
}

pub(super) async fn rolling_update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Json<RollingUpdateRequest>, JsonRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let Json(RollingUpdateRequest { image, container }) = body?;
    // Refused here without a trip to the peer; the core checks it again for
    // its other callers.
    if let Err(reason) = image_ref::parse(&image) {
        return Err(CommandError::InvalidImage { image, reason }.into());
    }
    let outcome = state
        .handle
        .command_with(
            Command::RollingUpdate {
                name: name.clone(),
                image,
                container,
            },
            ack,
        )
        .await?;
    Ok(Json(response(name, outcome)))
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let outcome = state
        .handle
        .command_with(Command::Delete { name: name.clone() }, ack)
        .await?;
    Ok(Json(response(name, outcome)))
}

pub(super) fn response(name: String, outcome: CommandOutcome) -> CommandResponse {
    CommandResponse {
        name,
        outcome: outcome.as_str().to_owned(),
    }
}
