//! `GET /api/v1/events?for=KIND/NAME&local=true`: the cluster's events.
//!
//! Any peer answers for the whole cluster: it merges its own events with
//! those of every live member (see [`crate::shell::events`]); `local=true`
//! answers with this peer's alone. Members that did not answer in time are
//! listed in `unanswered`, so a partial answer says so.
//!
//! `watch=1` (or `true`) streams instead, one JSON object a line as a
//! Kubernetes watch does: `{"type":"ADDED","object":EVENT}` for each event
//! known, then `ADDED` for each new event and `MODIFIED` for each repeat,
//! as they happen. Every watch of a peer reads its one fan-in
//! ([`crate::shell::events::hub`]). A watch that falls behind ends with an
//! `{"type":"ERROR",...}` line; the client lists again.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::broadcast;

use super::ApiState;
use super::error::ApiError;
use futures_util::StreamExt;

use crate::shell::events::{EventJson, Target, store};

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    #[serde(rename = "for")]
    target: Option<String>,
    #[serde(default)]
    local: bool,
    /// `1` or `true`: stream changes (see the module's doc).
    watch: Option<String>,
}

/// Kubernetes' `EventList` shape, plus who did not answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventList {
    pub kind: String,
    pub items: Vec<EventJson>,
    /// `NODE: why` for each live peer whose events are missing.
    #[serde(default)]
    pub unanswered: Vec<String>,
}

pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; use ?for=rc/NAME|pod/NAME|node/NAME&local=true|false&watch=1",
            e.body_text()
        ))
    })?;
    let target = query
        .target
        .as_deref()
        .map(Target::parse)
        .transpose()
        .map_err(ApiError::bad_request)?;
    match query.watch.as_deref() {
        None | Some("" | "0" | "false") => {}
        Some("1" | "true") if query.local => {
            return Err(ApiError::bad_request(
                "watch=1 streams the whole cluster's events; leave out local=true",
            ));
        }
        Some("1" | "true") => return watch(&state, target).await,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "watch={other}: use watch=1 or watch=true"
            )));
        }
    }
    let gathered = state.handle.events(!query.local).await?;
    let items = match &target {
        Some(target) => store::filter_for(gathered.events, target),
        None => gathered.events,
    };
    Ok(Json(EventList {
        kind: "EventList".into(),
        items,
        unanswered: gathered.unanswered,
    })
    .into_response())
}

/// The watch stream: what the peer's fan-in knows, then what it sees
/// change, about `target` when given.
async fn watch(state: &ApiState, target: Option<Target>) -> Result<Response, ApiError> {
    let Ok(slot) = super::kube::watch_slot() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this peer already serves its limit of watches; retry later or watch through another peer",
        ));
    };
    let (known, rx) = state.handle.watch_events().await;
    let wanted = move |e: &EventJson| target.as_ref().is_none_or(|t| t.matches(e));
    let first: Vec<Vec<u8>> = known
        .iter()
        .filter(|e| wanted(e))
        .map(|e| line("ADDED", e))
        .collect();
    let deadline = tokio::time::Instant::now() + super::kube::MAX_WATCH;
    let later = futures_util::stream::unfold(Some((rx, slot)), move |open| {
        let wanted = wanted.clone();
        async move {
            let (mut rx, slot) = open?;
            let lines = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    let error = json!({"type": "ERROR", "object": {"message": format!(
                        "this watch fell {missed} batches behind the cluster's events; list and watch again"
                    )}});
                    return Some((vec![ndjson(&error)], None));
                }
                Ok(Ok(batch)) => batch
                    .iter()
                    .filter(|c| wanted(&c.event))
                    .map(|c| line(c.kind, &c.event))
                    .collect(),
            };
            Some((lines, Some((rx, slot))))
        }
    });
    let lines = futures_util::stream::iter([first])
        .chain(later)
        .map(|lines| Ok::<_, std::io::Error>(lines.concat()));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

fn line(kind: &str, event: &EventJson) -> Vec<u8> {
    ndjson(&json!({ "type": kind, "object": event }))
}

fn ndjson(value: &serde_json::Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}
