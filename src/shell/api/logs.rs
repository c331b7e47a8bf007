//! `GET /pods/{name}/logs?follow=&container=&tail=&sinceSeconds=&timestamps=`:
//! a pod's output, streamed.
//!
//! The pod's containers live on one node's engine. If that node is this
//! one, the bytes come from the local [`DockerRuntime`]; otherwise the
//! request is forwarded to the owning node's API (`info.api_addr`) and its
//! body is streamed through unchanged, so `shoal logs` works against any peer.
//! A forwarded request is never forwarded again (see [`FORWARDED_HEADER`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde::Deserialize;
use shoal_crdt_state::node::NodeInfo;
use shoal_crdt_state::pod::PodId;
use shoal_runtime::docker::{LogRange, RuntimeError};

use super::error::{ApiError, ErrorBody};
use super::reads::locate_pod;
use super::{ApiState, FORWARDED_HEADER};

/// How long connecting to the owning node may take before we give up.
const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
pub(super) struct LogsQuery {
    #[serde(default)]
    pub(super) follow: bool,
    pub(super) container: Option<String>,
    /// Only the last this many lines.
    pub(super) tail: Option<u64>,
    /// Only output of the last this many seconds (kubectl's `sinceSeconds`).
    #[serde(rename = "sinceSeconds")]
    pub(super) since_seconds: Option<u64>,
    /// Prefix each line with its RFC 3339 time.
    #[serde(default)]
    pub(super) timestamps: bool,
}

impl LogsQuery {
    fn range(&self) -> LogRange {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        LogRange {
            follow: self.follow,
            tail: self.tail,
            since_unix: self
                .since_seconds
                .map(|s| i64::try_from(now.saturating_sub(s)).unwrap_or(i64::MAX)),
            timestamps: self.timestamps,
        }
    }

    /// The query as the owning node's API takes it.
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("follow", self.follow.to_string()),
            ("timestamps", self.timestamps.to_string()),
        ];
        if let Some(container) = &self.container {
            params.push(("container", container.clone()));
        }
        if let Some(tail) = self.tail {
            params.push(("tail", tail.to_string()));
        }
        if let Some(since) = self.since_seconds {
            params.push(("sinceSeconds", since.to_string()));
        }
        params
    }
}

pub(super) async fn logs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; use ?follow=true|false&container=NAME&tail=N&sinceSeconds=S&timestamps=true|false",
            e.body_text()
        ))
    })?;
    pod_logs(&state, &name, &query, &headers).await
}

/// A pod's output from this node's engine or its owner's API (also what
/// the Kubernetes API's `pods/{name}/log` serves).
pub(super) async fn pod_logs(
    state: &ApiState,
    name: &str,
    query: &LogsQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let snapshot = state.handle.snapshot().await?;
    let (pod, node) = locate_pod(&snapshot, name)?;
    if node == snapshot.me {
        return local_logs(state, &pod, query).await;
    }
    let info = snapshot
        .state
        .observed
        .get(node)
        .map(|r| r.info.clone())
        .ok_or_else(|| ApiError::not_found(format!("pod \"{name}\" not found")))?;
    if headers.contains_key(FORWARDED_HEADER) {
        return Err(ApiError::not_found(format!(
            "pod \"{name}\" does not run on this node; as this node sees it, it runs on {}",
            info.name
        )));
    }
    proxy_logs(
        &info,
        name,
        query,
        headers,
        state.cluster_ca.as_ref().map(|ca| &ca.der),
    )
    .await
}

async fn local_logs(
    state: &ApiState,
    pod: &PodId,
    query: &LogsQuery,
) -> Result<Response, ApiError> {
    let runtime = state.runtime.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "this peer runs without a container runtime, so it has no logs to show",
        )
    })?;
    let stream = runtime
        .logs_in(pod, query.container.as_deref(), &query.range())
        .await
        .map_err(|e| match e {
            RuntimeError::NoSuchPod { .. } => ApiError::not_found(format!(
                "{e}; `shoal describe pod {pod}` shows its containers"
            )),
            other => ApiError::unavailable(other.to_string()),
        })?;
    Ok(text_stream(Body::from_stream(stream)))
}

async fn proxy_logs(
    info: &NodeInfo,
    name: &str,
    query: &LogsQuery,
    headers: &HeaderMap,
    ca: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> Result<Response, ApiError> {
    let api = reachable_api_addr(info).map_err(|why| {
        ApiError::unavailable(format!("pod \"{name}\" runs on node {}, {why}", info.name))
    })?;
    // An API off loopback speaks only TLS; this peer verifies it against
    // the cluster CA it knows (only a peer serving TLS itself has it here).
    let tls_ca = ca.filter(|_| !api.ip().is_loopback());
    let scheme = if tls_ca.is_some() { "https" } else { "http" };
    let client = crate::shell::api_tls::peer_api_client(tls_ca, PROXY_CONNECT_TIMEOUT)
        .map_err(|e| ApiError::unavailable(format!("cannot build an HTTP client: {e:#}")))?;
    let params = query.params();
    let mut request = client
        .get(format!("{scheme}://{api}/api/v1/pods/{name}/logs"))
        .query(&params)
        .header(FORWARDED_HEADER, "1");
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let unreachable = |e: reqwest::Error| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "pod \"{name}\" runs on node {} but its API at {api} did not answer: {e}",
                info.name
            ),
        )
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        // Pass the owner's own error through, so the user reads its reason.
        let code = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let message = match response.json::<ErrorBody>().await {
            Ok(body) => format!("node {}: {}", info.name, body.error),
            Err(_) => format!("node {} answered {status}", info.name),
        };
        return Err(ApiError::new(code, message));
    }
    let stream = response.bytes_stream().map_err(std::io::Error::other);
    Ok(text_stream(Body::from_stream(stream)))
}

/// The address to reach a node's API at. A node bound to `0.0.0.0` or `::`
/// is reached on the host of its peer address; one bound to its loopback
/// on another machine cannot be reached at all (the API's default).
fn reachable_api_addr(info: &NodeInfo) -> Result<SocketAddr, String> {
    let unusable = || {
        format!(
            "whose API address {:?} is unusable; ask that node directly",
            info.api_addr
        )
    };
    let mut api: SocketAddr = info.api_addr.parse().map_err(|_| unusable())?;
    let peer: SocketAddr = info.peer_addr.parse().map_err(|_| unusable())?;
    if api.ip().is_unspecified() {
        api.set_ip(peer.ip());
    } else if api.ip().is_loopback() && !peer.ip().is_loopback() {
        return Err(format!(
            "whose API listens only on that machine's loopback ({api}); run `shoal logs` on {}, or start its peer with --api 0.0.0.0:{} --api-token TOKEN",
            peer.ip(),
            api.port()
        ));
    }
    Ok(api)
}

fn text_stream(body: Body) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_crdt_state::spec::Resources;

    fn info(peer: &str, api: &str) -> NodeInfo {
        let capacity = Resources {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
        };
        NodeInfo {
            peer_addr: peer.into(),
            api_addr: api.into(),
            version: "0.1.0".into(),
            ..NodeInfo::healthy("web-1", capacity)
        }
    }

    #[test]
    fn an_api_on_all_interfaces_is_reached_at_the_peer_address() {
        let api = reachable_api_addr(&info("10.0.0.2:7946", "0.0.0.0:7070")).unwrap();
        assert_eq!(api, "10.0.0.2:7070".parse().unwrap());
    }

    #[test]
    fn loopback_peers_on_one_machine_reach_each_others_api() {
        let api = reachable_api_addr(&info("127.0.0.12:7946", "127.0.0.12:7070")).unwrap();
        assert_eq!(api, "127.0.0.12:7070".parse().unwrap());
    }

    #[test]
    fn an_api_on_another_machines_loopback_is_explained() {
        let why = reachable_api_addr(&info("10.0.0.2:7946", "127.0.0.1:7070")).unwrap_err();
        assert!(why.contains("only on that machine's loopback"), "{why}");
        assert!(
            why.contains("on 10.0.0.2") && why.contains("--api 0.0.0.0:7070"),
            "{why}"
        );
    }
}
