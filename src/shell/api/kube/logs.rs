//! `GET /api/v1/namespaces/default/pods/{name}/log` (`kubectl logs`): the
//! Shoal API's pod logs, local or proxied to the pod's node.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::super::ApiState;
use super::super::logs::{LogsQuery, pod_logs};
use super::reads::query;
use super::status::{KubeError, check_namespace};

/// kubectl's parameters (`-f`, `--tail`, `--since`, `--timestamps`, `-c`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct KubeLogsQuery {
    #[serde(default)]
    follow: bool,
    container: Option<String>,
    #[serde(rename = "tailLines")]
    tail_lines: Option<u64>,
    #[serde(rename = "sinceSeconds")]
    since_seconds: Option<u64>,
    #[serde(default)]
    timestamps: bool,
}

pub(super) async fn logs(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    params: Result<Query<KubeLogsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let params = query(params)?;
    let shoal = LogsQuery {
        follow: params.follow,
        container: params.container,
        tail: params.tail_lines,
        since_seconds: params.since_seconds,
        timestamps: params.timestamps,
    };
    Ok(pod_logs(&state, &name, &shoal, &headers).await?)
}
