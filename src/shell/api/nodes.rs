//! Node routes that write: cordon, uncordon, delete. `drain` is the
//! CLI's cordon followed by watching the node empty (make-before-break
//! handovers do the moving); see `cli/node.rs`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};

use super::error::ApiError;
use super::models::CommandResponse;
use super::rcs::{WaitQuery, response};
use super::{ApiState, views};
use crate::peer::Command;
use crate::shell::handle::Ack;

/// `POST /nodes/{name}/cordon`: no new replica goes there; its replicas move.
pub(super) async fn cordon(
    state: State<ApiState>,
    name: Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    set_cordon(state, name, query, true).await
}

/// `POST /nodes/{name}/uncordon`: placement may use the node again.
pub(super) async fn uncordon(
    state: State<ApiState>,
    name: Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    set_cordon(state, name, query, false).await
}

async fn set_cordon(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    on: bool,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let node = node_id(&state, &name).await?;
    run(&state, name, Command::Cordon { node, on }, ack).await
}

/// `DELETE /nodes/{name}`: forget a node that will not come back. Refused
/// (409) while it is alive.
pub(super) async fn delete(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let node = node_id(&state, &name).await?;
    run(&state, name, Command::RemoveNode { node }, ack).await
}

async fn node_id(state: &ApiState, name: &str) -> Result<shoal_crdt_state::node::NodeId, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    views::find_node(&snapshot, name)
        .map(|(id, _)| id)
        .ok_or_else(|| views::node_not_found(name))
}

async fn run(
    state: &ApiState,
    name: String,
    command: Command,
    ack: Ack,
) -> Result<Json<CommandResponse>, ApiError> {
    let outcome = state.handle.command_with(command, ack).await?;
    Ok(Json(response(name, outcome)))
}
