//! Read routes for nodes, pods and health: all computed from one snapshot.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;

use super::error::ApiError;
use super::models::{Health, PodJson};
use super::{ApiState, render, views};
use crate::shell::handle::Snapshot;

pub(super) async fn nodes(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, |s| Ok(views::nodes(s))).await
}

pub(super) async fn images(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    let transfers = state.transfers.list();
    render::json(snapshot, move |s| Ok(views::images(s, transfers))).await
}

pub(super) async fn node(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, move |s| {
        let (id, record) =
            views::find_node(s, &name).ok_or_else(|| views::node_not_found(&name))?;
        Ok(views::node_detail(s, id, record))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct PodsQuery {
    rc: Option<String>,
}

pub(super) async fn pods(
    State(state): State<ApiState>,
    query: Result<Query<PodsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, move |s| Ok(views::pods(s, query.rc.as_deref()))).await
}

pub(super) async fn pod(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<PodJson>, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    let (pod, node) = locate_pod(&snapshot, &name)?;
    // locate_pod found the pod in this very snapshot, so both lookups succeed.
    let found = snapshot
        .state
        .observed
        .get(node)
        .and_then(|record| Some((record, record.pod(&pod)?)));
    let (record, status) =
        found.ok_or_else(|| ApiError::not_found(format!("pod \"{name}\" not found")))?;
    Ok(Json(views::pod_json(&snapshot, node, record, status)))
}

pub(super) async fn healthz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    let name = snapshot
        .state
        .observed
        .get(snapshot.me)
        .map(|r| r.info.name.clone())
        .unwrap_or_default();
    Ok(Json(Health {
        status: "ok".to_owned(),
        node: name,
        id: snapshot.me.to_string(),
        cluster: snapshot.cluster.clone(),
        members: snapshot.members.active_nodes().len(),
    }))
}

/// `hello-3` → the pod id, or a 404 saying what pod names look like.
pub(super) fn parse_pod_name(name: &str) -> Result<PodId, ApiError> {
    name.rsplit_once('-')
        .and_then(|(rc, index)| {
            Some(PodId {
                rc: rc.to_owned(),
                index: index.parse().ok()?,
            })
        })
        .filter(|p| !p.rc.is_empty())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "pod \"{name}\" not found: pod names are RC-INDEX, like hello-0; `shoal get pods` lists them"
            ))
        })
}

/// The node whose report of `name` counts: this node if it runs the pod,
/// else the placement's owner if it reports it, else an active reporter,
/// else any reporter (a down node's stale report). During a hand-over two
/// nodes may report the same pod; this picks one the same way every time.
pub(super) fn locate_pod(snapshot: &Snapshot, name: &str) -> Result<(PodId, NodeId), ApiError> {
    let pod = parse_pod_name(name)?;
    let reporters: Vec<NodeId> = snapshot
        .state
        .observed
        .nodes()
        .filter(|(_, r)| r.pod(&pod).is_some())
        .map(|(id, _)| id)
        .collect();
    let owner = snapshot.owner(&pod);
    let chosen = reporters
        .iter()
        .find(|&&n| n == snapshot.me)
        .or_else(|| reporters.iter().find(|&&n| Some(n) == owner))
        .or_else(|| reporters.iter().find(|&&n| views::node_active(snapshot, n)))
        .or_else(|| reporters.first())
        .copied();
    match chosen {
        Some(node) => Ok((pod, node)),
        None => Err(ApiError::not_found(format!(
            "pod \"{name}\" not found: no node reports it (yet); `shoal get pods` lists them"
        ))),
    }
}
