//! `get` and `list` (and the way into `watch`): JSON objects and lists, or
//! Tables when kubectl asks for them, filtered by label and field selectors.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::ApiState;
use super::kinds::{Item, Kind, Local};
use super::selectors::Selector;
use super::status::{KubeError, check_namespace};
use super::{table, watch};
use crate::shell::events::ClusterEvents;
use crate::shell::handle::Snapshot;

/// Query parameters of list and watch; others (`limit`, ...) are ignored:
/// a list is always complete.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
    #[serde(rename = "fieldSelector")]
    pub field_selector: Option<String>,
    pub watch: Option<String>,
    #[serde(rename = "resourceVersion")]
    pub resource_version: Option<String>,
    #[serde(rename = "timeoutSeconds")]
    pub timeout_seconds: Option<u64>,
}

pub(super) fn query<T: Default>(query: Result<Query<T>, QueryRejection>) -> Result<T, KubeError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| KubeError::bad_request(e.body_text()))
}

pub(super) async fn list_namespaced(
    State(state): State<ApiState>,
    Path((namespace, plural)): Path<(String, String)>,
    params: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let kind = Kind::from_plural(&plural)?;
    if !kind.namespaced() {
        return Err(KubeError::not_found(kind.plural(), &namespace));
    }
    list(state, kind, query(params)?, &headers).await
}

/// `/api/v1/nodes`, and every namespaced kind across "all" namespaces
/// (`-A`): Shoal has just the one.
pub(super) async fn list_cluster(
    State(state): State<ApiState>,
    Path(plural): Path<String>,
    params: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, KubeError> {
    let kind = Kind::from_plural(&plural)?;
    list(state, kind, query(params)?, &headers).await
}

async fn list(
    state: ApiState,
    kind: Kind,
    params: ListQuery,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let selector = Selector::parse(
        params.label_selector.as_deref(),
        params.field_selector.as_deref(),
        kind.selectable_fields(),
    )?;
    let as_table = table::wanted(accept(headers));
    if matches!(params.watch.as_deref(), Some("true" | "1")) {
        return watch::watch(state, kind, selector, params, as_table).await;
    }
    let gathered = gather_events(&state, kind).await?;
    let snapshot = state.handle.snapshot().await?;
    let events = gathered.events;
    let dns = state.service_dns.clone();
    let response = build(snapshot, move |s| {
        let local = Local { service_dns: &dns };
        let items: Vec<Item> = kind
            .list(s, local, &events, as_table)
            .into_iter()
            .filter(|i| selector.matches(&i.meta, &i.fields))
            .collect();
        Ok(if as_table {
            table_of(kind, items, &s.generation.to_string())
        } else {
            json!({
                "kind": format!("{}List", kind.name()),
                "apiVersion": "v1",
                "metadata": { "resourceVersion": s.generation.to_string() },
                "items": items.into_iter().map(|i| i.json).collect::<Vec<_>>(),
            })
        })
    })
    .await?;
    Ok(with_missing_peers(response, &gathered.unanswered))
}

/// The cluster's events when listing `kind` needs them (else none): asked
/// of every live peer, see [`crate::shell::events`].
pub(super) async fn gather_events(
    state: &ApiState,
    kind: Kind,
) -> Result<ClusterEvents, KubeError> {
    if !kind.gathers_events() {
        return Ok(ClusterEvents::default());
    }
    Ok(state.handle.events(true).await?)
}

/// A partial list of events says so: kubectl prints a `Warning` header
/// (`299 - "..."`) on stderr.
fn with_missing_peers(mut response: Response, unanswered: &[String]) -> Response {
    if unanswered.is_empty() {
        return response;
    }
    let text: String = format!(
        "events of these peers are missing (no answer): {}",
        unanswered.join("; ")
    )
    .chars()
    .map(|c| {
        if c.is_ascii_graphic() && c != '"' && c != '\\' {
            c
        } else {
            ' '
        }
    })
    .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
        response.headers_mut().append(header::WARNING, value);
    }
    response
}

pub(super) fn table_of(kind: Kind, items: Vec<Item>, version: &str) -> Value {
    let rows = items.iter().map(|i| (i.cells.clone(), &i.meta)).collect();
    table::table(kind.columns(), rows, version)
}

pub(super) async fn get_namespaced(
    State(state): State<ApiState>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let kind = Kind::from_plural(&plural)?;
    get(state, kind, name, &headers).await
}

pub(super) async fn get_cluster(
    State(state): State<ApiState>,
    Path((plural, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, KubeError> {
    let kind = Kind::from_plural(&plural)?;
    if kind.namespaced() {
        return Err(KubeError::not_found(kind.plural(), &name));
    }
    get(state, kind, name, &headers).await
}

async fn get(
    state: ApiState,
    kind: Kind,
    name: String,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let as_table = table::wanted(accept(headers));
    let gathered = gather_events(&state, kind).await?;
    let snapshot = state.handle.snapshot().await?;
    let events = gathered.events;
    let dns = state.service_dns.clone();
    build(snapshot, move |s| {
        let local = Local { service_dns: &dns };
        let item = if kind.gathers_events() {
            kind.list(s, local, &events, false)
                .into_iter()
                .find(|i| i.name() == name)
                .ok_or_else(|| KubeError::not_found(kind.plural(), &name))?
        } else {
            kind.get(s, local, &name)?
        };
        Ok(if as_table {
            table_of(kind, vec![item], &s.generation.to_string())
        } else {
            item.json
        })
    })
    .await
}

pub(super) fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// `view(snapshot)` built and encoded on a blocking thread, taking a turn
/// among the Shoal API's views: a list of a large cluster takes tens of
/// milliseconds (see `api::render`).
pub(super) async fn build<F>(snapshot: Arc<Snapshot>, view: F) -> Result<Response, KubeError>
where
    F: FnOnce(&Snapshot) -> Result<Value, KubeError> + Send + 'static,
{
    let _turn = super::super::render::TURNS
        .acquire()
        .await
        .map_err(|_| KubeError::new(StatusCode::SERVICE_UNAVAILABLE, "the API is shutting down"))?;
    let body = tokio::task::spawn_blocking(move || {
        let value = view(&snapshot)?;
        serde_json::to_vec(&value).map_err(|e| {
            KubeError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the answer as JSON: {e}"),
            )
        })
    })
    .await
    .map_err(|e| {
        KubeError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the answer failed: {e}"),
        )
    })??;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
