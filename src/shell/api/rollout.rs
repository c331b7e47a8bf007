//! Rollout routes: status, history, undo, pause, resume, restart of an RC.
//! Reads come from one snapshot; writes become peer [`Command`]s, each a
//! new desired template (or the paused flag) that spreads like any write.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use shoal_crdt_state::pod::PodPhase;
use shoal_crdt_state::revisions::{self, NumberedRevision};

use super::error::ApiError;
use super::models::{
    CommandResponse, FailingPodJson, RolloutHistoryJson, RolloutRevisionJson, RolloutStatusJson,
    UndoRequest, UnplacedJson,
};
use super::rcs::{WaitQuery, response};
use super::{ApiState, render, views};
use crate::peer::Command;
use crate::shell::handle::Snapshot;

/// `GET /rcs/{name}/rollout`.
pub(super) async fn status(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, move |s| rollout_status(s, &name)).await
}

/// `GET /rcs/{name}/rollout/history`.
pub(super) async fn history(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    render::json(snapshot, move |s| {
        let view = s
            .state
            .desired
            .get(&name)
            .ok_or_else(|| views::rc_not_found(&name))?;
        let revisions = revisions::numbered(view.record)
            .iter()
            .map(revision_json)
            .collect();
        Ok(RolloutHistoryJson { name, revisions })
    })
    .await
}

/// `POST /rcs/{name}/rollout/undo` with `{"to_revision": N}` or `{}`.
pub(super) async fn undo(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    body: Result<Json<UndoRequest>, JsonRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let Json(UndoRequest { to_revision }) = body?;
    let command = Command::Undo {
        name: name.clone(),
        to_revision,
    };
    let outcome = state.handle.command_with(command, ack).await?;
    Ok(Json(response(name, outcome)))
}

/// `POST /rcs/{name}/rollout/pause`.
pub(super) async fn pause(
    state: State<ApiState>,
    name: Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    set_paused(state, name, query, true).await
}

/// `POST /rcs/{name}/rollout/resume`.
pub(super) async fn resume(
    state: State<ApiState>,
    name: Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    set_paused(state, name, query, false).await
}

async fn set_paused(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
    paused: bool,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let command = Command::Pause {
        name: name.clone(),
        paused,
    };
    let outcome = state.handle.command_with(command, ack).await?;
    Ok(Json(response(name, outcome)))
}

/// `POST /rcs/{name}/rollout/restart`: the template's restarted-at label
/// becomes this peer's current time, so every replica rolls to a new pod.
pub(super) async fn restart(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<CommandResponse>, ApiError> {
    let ack = WaitQuery::ack(query)?;
    let command = Command::Restart {
        name: name.clone(),
        at: restarted_at(jiff::Timestamp::now()),
    };
    let outcome = state.handle.command_with(command, ack).await?;
    Ok(Json(response(name, outcome)))
}

/// `20261202T053000.123Z`: a valid label value (no `:`), to the millisecond
/// so two restarts in one second still differ.
fn restarted_at(now: jiff::Timestamp) -> String {
    let millis = now.as_millisecond().rem_euclid(1_000);
    format!("{}.{millis:03}Z", now.strftime("%Y%m%dT%H%M%S"))
}

fn revision_json(r: &NumberedRevision<'_>) -> RolloutRevisionJson {
    RolloutRevisionJson {
        revision: r.number,
        written_at_ms: r.written.physical_ms,
        template_hash: r.template.hash().to_string(),
        images: r
            .template
            .containers
            .iter()
            .map(|c| format!("{}={}", c.name, c.image))
            .collect(),
        current: r.current,
    }
}

/// Counts pods of alive nodes only, as `get rc` does.
fn rollout_status(snapshot: &Snapshot, name: &str) -> Result<RolloutStatusJson, ApiError> {
    let view = snapshot
        .state
        .desired
        .get(name)
        .ok_or_else(|| views::rc_not_found(name))?;
    let hash = view.template().hash();
    let revision = revisions::numbered(view.record)
        .last()
        .map_or(0, |r| r.number);
    let mut status = RolloutStatusJson {
        name: name.to_owned(),
        revision,
        template_hash: hash.to_string(),
        replicas: view.replicas,
        updated: 0,
        updated_ready: 0,
        ready: 0,
        total_pods: 0,
        paused: view.record.is_paused(),
        complete: false,
        failing: Vec::new(),
        unplaced: Vec::new(),
    };
    for (node, record) in snapshot.state.observed.nodes() {
        if !views::node_active(snapshot, node) {
            continue;
        }
        for pod in record.pods.iter().filter(|p| p.id.rc == name) {
            let ready = pod.phase == PodPhase::Running && views::pod_ready(snapshot, node, pod);
            status.total_pods += 1;
            status.ready += u32::from(ready);
            if pod.template_hash != hash {
                continue;
            }
            status.updated += 1;
            status.updated_ready += u32::from(ready);
            let failing = matches!(pod.phase, PodPhase::BackOff | PodPhase::Failed)
                || (!ready && pod.last_error.is_some());
            if failing {
                status.failing.push(FailingPodJson {
                    pod: pod.id.to_string(),
                    node: record.info.name.clone(),
                    phase: pod.phase.as_str().to_owned(),
                    restarts: pod.restarts,
                    error: pod.last_error.clone(),
                });
            }
        }
    }
    status.complete =
        status.updated_ready == status.replicas && status.total_pods == status.replicas;
    status.unplaced = snapshot
        .assignment
        .unplaced
        .iter()
        .filter(|(pod, _)| pod.rc == name)
        .map(|(pod, reason)| UnplacedJson {
            pod: pod.to_string(),
            reason: reason.to_string(),
        })
        .collect();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_stamps_are_label_values() {
        let at = jiff::Timestamp::from_millisecond(1_796_184_633_042).unwrap();
        let value = restarted_at(at);
        assert_eq!(value, "20261202T041033.042Z");
        assert!(shoal_crdt_state::manifest::validate::label_value(&value).is_ok());
    }
}
