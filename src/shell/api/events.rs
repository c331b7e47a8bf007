//! `GET /api/v1/events?for=KIND/NAME&local=true`: the cluster's events.
//!
//! Any peer answers for the whole cluster: it merges its own events with
//! those of every live member (see [`crate::shell::events`]); `local=true`
//! answers with this peer's alone. Members that did not answer in time are
//! listed in `unanswered`, so a partial answer says so.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::ApiState;
use super::error::ApiError;
use crate::shell::events::{EventJson, Target, store};

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    #[serde(rename = "for")]
    target: Option<String>,
    #[serde(default)]
    local: bool,
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
) -> Result<Json<EventList>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; use ?for=rc/NAME|pod/NAME|node/NAME&local=true|false",
            e.body_text()
        ))
    })?;
    let target = query
        .target
        .as_deref()
        .map(Target::parse)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let gathered = state.handle.events(!query.local).await?;
    let items = match &target {
        Some(target) => store::filter_for(gathered.events, target),
        None => gathered.events,
    };
    Ok(Json(EventList {
        kind: "EventList".into(),
        items,
        unanswered: gathered.unanswered,
    }))
}
