//! The HTTP API (axum) a peer serves on `--api`: what the CLI verbs talk to.
//!
//! Everything is under `/api/v1` and speaks JSON (manifests may be posted as
//! YAML or JSON text); every error is `{"error": "...", "status": N}` with a
//! message a person can act on (see [`error`]). Writes go through the
//! [`PeerHandle`] to the task owning the peer core and then spread to the
//! whole cluster; reads are computed from one [`Snapshot`](crate::shell::handle::Snapshot),
//! so any peer answers for the whole cluster as it currently sees it.
//!
//! - [`error`]: the error type and its JSON body.
//! - `guards`: the API token and its role, and the body size limit, checked before any route.
//! - `limits`: per-client request rate and open connections (429).
//! - `tokens`: scoped API tokens: create, list, revoke.
//! - [`models`]: the JSON shapes (shared with the CLI).
//! - `views`: snapshot → models, and the counting rules `get` shows.
//! - `render`: views of the whole snapshot, built off the runtime's workers.
//! - `apply`: a manifest's RCs and services, checked, then written.
//! - `rcs`: apply, list, describe, scale, rolling-update, delete.
//! - `rollout`: status, history, undo, pause, resume, restart.
//! - `services`, `service_views`: apply, list, describe, replace, delete.
//! - `reads`: nodes, pods, images, health.
//! - `image_load`: an image archive streamed into this peer's engine.
//! - `nodes`: cordon, uncordon, delete a node.
//! - `logs`: a pod's output, from the local engine or proxied to its node.
//! - [`events`]: the cluster's events, gathered from every live peer.
//! - `metrics`: `/metrics` for Prometheus (see [`crate::shell::metrics`]).
//! - [`kube`]: the Kubernetes API for kubectl, under `/kube`.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/rcs` | apply manifest text (YAML multi-doc or JSON; RCs and services) |
//! | `GET /api/v1/rcs`, `GET /api/v1/rcs/{name}` | list, describe |
//! | `PUT /api/v1/rcs/{name}/scale` | `{"replicas": N}` |
//! | `POST /api/v1/rcs/{name}/rolling-update` | `{"image": I, "container": C?}` |
//! | `DELETE /api/v1/rcs/{name}` | delete |
//! | `GET /api/v1/rcs/{name}/rollout` | rollout status: updated / ready / total, failing new pods |
//! | `GET /api/v1/rcs/{name}/rollout/history` | revisions, oldest first |
//! | `POST /api/v1/rcs/{name}/rollout/undo` | `{"to_revision": N?}`: back to an earlier template |
//! | `POST /api/v1/rcs/{name}/rollout/{pause,resume,restart}` | hold, continue, new pods with the same images |
//! | `POST /api/v1/services` | apply manifest text (services and RCs) |
//! | `GET /api/v1/services`, `GET /api/v1/services/{name}` | list, describe (endpoints) |
//! | `PUT /api/v1/services/{name}` | apply a manifest of that one service |
//! | `DELETE /api/v1/services/{name}` | delete |
//! | `GET /api/v1/images` | images the RCs use, which nodes hold them, transfers in flight |
//! | `POST /api/v1/images/load` | stream a `docker save` archive into this peer's engine |
//! | `GET /api/v1/nodes`, `GET /api/v1/nodes/{name}` | list, describe |
//! | `POST /api/v1/nodes/{name}/cordon`, `.../uncordon` | placement may (not) use it |
//! | `DELETE /api/v1/nodes/{name}` | forget a node that will not return (409 while alive) |
//! | `GET /api/v1/pods?rc=`, `GET /api/v1/pods/{name}` | list, describe |
//! | `GET /api/v1/pods/{name}/logs?follow=&container=` | stream output |
//! | `GET /api/v1/events?for=KIND/NAME&local=&watch=1` | events (Kubernetes fields), whole cluster; `watch=1` streams changes |
//! | `GET /api/v1/healthz` (also `/healthz`) | liveness |
//! | `GET /metrics` | Prometheus text format (same token as every route) |
//! | `GET /ui` (`/` redirects there) | the dashboard page (no token: it holds no data; it asks for one) |
//! | `GET /api/v1/ca` | the cluster CA certificate (PEM) that HTTPS APIs are verified with |
//! | `POST /api/v1/tokens`, `GET /api/v1/tokens`, `DELETE /api/v1/tokens/{name}` | scoped API tokens: create (the secret, once), list, revoke (`tokens`) |
//!
//! With an API token set (`shoal up --api-token`), every request needs
//! `Authorization: Bearer <API token>`: that one, which is an admin token,
//! or a scoped token (`shoal token create`), admin or read-only. A
//! read-only token gets 403 on every write. That is never the cluster's
//! join token. Every client (source IP) is held to a request rate and a
//! number of open connections (`limits`): 429 with `Retry-After` beyond.

pub mod error;
pub mod events;
pub mod models;
pub mod views;

mod apply;
mod ca;
mod guards;
mod image_load;
pub mod kube;
pub mod limits;
mod logs;
mod metrics;
mod nodes;
mod rcs;
mod reads;
mod render;
mod rollout;
mod service_views;
mod services;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::{get, post, put};
use shoal_runtime::docker::DockerRuntime;

pub use error::{ApiError, ErrorBody};

use crate::shell::handle::PeerHandle;

/// Largest request body accepted (a manifest): bigger is refused with 413.
/// Kept a whole number of MiB: messages state it in MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Header set on a request one peer forwards to another (logs), so the
/// receiver answers itself instead of forwarding again.
pub const FORWARDED_HEADER: &str = "x-shoal-forwarded";

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The task that owns the peer core.
    pub handle: PeerHandle,
    /// This node's container engine, for the logs of pods it runs; `None`
    /// on a peer without one (its pods' logs then answer 503).
    pub runtime: Option<Arc<DockerRuntime>>,
    /// The API token (`shoal up --api-token`) every request must bear;
    /// `None` accepts every request (loopback binds). Never the join token.
    pub api_token: Option<String>,
    /// The cluster CA: served at `/api/v1/ca`, and other peers' APIs off
    /// loopback (HTTPS only) are verified against it. `None` in tests that
    /// run the API without a cluster.
    pub cluster_ca: Option<Arc<crate::shell::api_tls::ClusterCa>>,
    /// Per-client request rate and connection caps (see [`limits`]).
    pub limits: Arc<limits::ClientLimits>,
    /// Where this peer's DNS server answers for services (and gives that
    /// address first): what `kubectl` shows as a service's `clusterIP`.
    /// `Err`: why it answers nowhere.
    pub service_dns: Result<std::net::IpAddr, String>,
    /// The image transfers this peer has under way (`GET /images`);
    /// empty on a peer without an engine.
    pub transfers: crate::shell::images::transfers::Transfers,
}

/// The whole API, ready for `axum::serve`.
pub fn router(state: ApiState) -> Router {
    // Before the first request, so that it is counted.
    crate::shell::metrics::install();
    let v1 = Router::new()
        .route("/rcs", post(rcs::apply).get(rcs::list))
        .route("/rcs/{name}", get(rcs::describe).delete(rcs::delete))
        .route("/rcs/{name}/scale", put(rcs::scale))
        .route("/rcs/{name}/rolling-update", post(rcs::rolling_update))
        .route("/rcs/{name}/rollout", get(rollout::status))
        .route("/rcs/{name}/rollout/history", get(rollout::history))
        .route("/rcs/{name}/rollout/undo", post(rollout::undo))
        .route("/rcs/{name}/rollout/pause", post(rollout::pause))
        .route("/rcs/{name}/rollout/resume", post(rollout::resume))
        .route("/rcs/{name}/rollout/restart", post(rollout::restart))
        .route("/services", post(services::create).get(services::list))
        .route(
            "/services/{name}",
            get(services::describe)
                .put(services::replace)
                .delete(services::delete),
        )
        .route("/images", get(reads::images))
        .route(
            "/images/load",
            post(image_load::load).layer(DefaultBodyLimit::disable()),
        )
        .route("/nodes", get(reads::nodes))
        .route("/nodes/{name}", get(reads::node).delete(nodes::delete))
        .route("/nodes/{name}/cordon", post(nodes::cordon))
        .route("/nodes/{name}/uncordon", post(nodes::uncordon))
        .route("/pods", get(reads::pods))
        .route("/pods/{name}", get(reads::pod))
        .route("/pods/{name}/logs", get(logs::logs))
        .route("/events", get(events::list))
        .route("/healthz", get(reads::healthz))
        .route("/ca", get(ca::cluster_ca))
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{name}", axum::routing::delete(tokens::revoke))
        .route("/tokens/join/rotate", post(tokens::rotate_join));
    Router::new()
        .nest("/api/v1", v1)
        .nest(kube::PREFIX, kube::router())
        .route("/healthz", get(reads::healthz))
        .route("/metrics", get(metrics::scrape))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(guards::refuse_large_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guards::require_token,
        ))
        // After the token layer, which wraps only the routes added before it.
        .route("/ui", get(crate::shell::dashboard::page))
        .route("/", get(crate::shell::dashboard::to_page))
        // Outside the token check: floods without a token are limited too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::limit_requests,
        ))
        .layer(middleware::from_fn(
            crate::shell::metrics::http::count_request,
        ))
        .with_state(state)
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no API route {}; routes live under /api/v1 (rcs, services, nodes, pods, healthz)",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}
