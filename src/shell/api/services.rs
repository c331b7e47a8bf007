//! Service routes: apply, list, describe, replace, delete. Reads come from
//! the snapshot's service table (`Snapshot::services`), the same value the
//! load balancer and DNS serve.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::error::ApiError;
use super::models::{ApplyResponse, CommandResponse};
use super::rcs::{WaitQuery, response};
use super::{ApiState, apply, render, service_views};
use crate::peer::Command;

/// `POST /services`: every object of the manifest (services, and RCs if
/// it has some), or none if any document is invalid.
pub(super) async fn create(
    State(state): State<ApiState>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    let ack = WaitQuery::ack(query)?;
    let parsed = apply::parse(&body?)?;
    apply::apply(&state, parsed, ack).await
}

/// `PUT /services/{name}`: a manifest holding exactly that one service.
pub(super) async fn replace(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApplyResponse>), ApiError> {
    let ack = WaitQuery::ack(query)?;
    let parsed = apply::parse(&body?)?;
    let names: Vec<&str> = parsed.services.iter().map(|s| s.name.as_str()).collect();
    if names != [name.as_str()] || !parsed.specs.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "PUT /api/v1/services/{name} takes a manifest of exactly the service {name:?} \
                 (got services {names:?} and {} RCs); POST /api/v1/services applies any manifest",
                parsed.specs.len()
            ),
        ));
    }
    apply::apply(&state, parsed, ack).await
}

pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, |s| Ok(service_views::services(s))).await
}

pub(super) async fn describe(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, move |s| {
        service_views::service_detail(s, &name).ok_or_else(|| service_not_found(&name))
    })
    .await
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let outcome = state
        .handle
        .command_with(Command::DeleteService { name: name.clone() }, ack)
        .await?;
    Ok(Json(response(name, outcome)))
}

fn service_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "service \"{name}\" not found; `shoal get svc` lists them"
    ))
}
