//! The subset of the Kubernetes API that `kubectl` needs for what Shoal
//! does, served by every peer under [`PREFIX`] (a kubeconfig's `server` is
//! `http://PEER:PORT/kube`; `shoal kubeconfig` prints one). The prefix keeps
//! it apart from Shoal's own `/api/v1`, whose routes (`/api/v1/nodes`, ...)
//! would otherwise collide with Kubernetes' paths.
//!
//! - `discovery`: `/version`, `/api`, `/api/v1`.
//! - `slices`: `/apis` (the `discovery.k8s.io` group) and its EndpointSlices.
//! - `openapi`: OpenAPI v3 generated from the `k8s-openapi` types.
//! - `objects`: snapshot → Kubernetes objects (uid, resourceVersion, owners,
//!   last-applied text, cluster IPs, endpoints).
//! - `kinds`: the resources served; `table`: server-side printing.
//! - `events`: the cluster's events (gathered from every live peer) as
//!   `v1.Event` objects.
//! - `selectors`: label and field selectors.
//! - `reads`: get and list; `watch`: `?watch=true` streams.
//! - `writes`: create, replace, patch, server-side apply, delete, scale;
//!   `patch`: strategic merge, merge and JSON patches.
//! - `logs`: `pods/{name}/log`.
//! - `status`: errors as `metav1.Status`.
//!
//! Only namespace `default` exists. Everything else kubectl may ask for
//! answers a Status saying what is served.

mod discovery;
mod events;
mod kinds;
mod logs;
mod objects;
mod openapi;
mod patch;
mod reads;
mod selectors;
mod slices;
pub(crate) mod status;
mod table;
mod watch;
mod writes;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;

pub use discovery::MINOR;
pub use status::KubeError;
pub use watch::{MAX_WATCH, watch_slot};
pub use writes::body_to_manifest;

use super::ApiState;

/// Where the Kubernetes API is mounted on a peer's API address.
pub const PREFIX: &str = "/kube";

/// The Kubernetes API routes, to be nested at [`PREFIX`].
pub fn router() -> Router<ApiState> {
    let namespaced = "/api/v1/namespaces/{namespace}";
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::api))
        .route("/api/v1", get(discovery::api_v1))
        .route("/apis", get(slices::groups))
        .route("/apis/discovery.k8s.io/v1", get(slices::resources))
        .route(
            "/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            get(slices::list),
        )
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/api/v1", get(openapi::api_v1_document))
        .route(
            &format!("{namespaced}/{{plural}}"),
            get(reads::list_namespaced).post(writes::create),
        )
        .route(
            &format!("{namespaced}/{{plural}}/{{name}}"),
            get(reads::get_namespaced)
                .put(writes::replace)
                .patch(writes::patch)
                .delete(writes::delete),
        )
        .route(
            &format!("{namespaced}/replicationcontrollers/{{name}}/scale"),
            get(writes::scale_get)
                .put(writes::scale_write)
                .patch(writes::scale_write),
        )
        .route(
            &format!("{namespaced}/replicationcontrollers/{{name}}/status"),
            get(rc_status),
        )
        .route(&format!("{namespaced}/pods/{{name}}/log"), get(logs::logs))
        .route("/api/v1/{plural}", get(reads::list_cluster))
        .route("/api/v1/{plural}/{name}", get(reads::get_cluster))
        .fallback(unknown)
        .method_not_allowed_fallback(wrong_method)
}

/// `.../replicationcontrollers/{name}/status`: the RC itself.
async fn rc_status(
    state: axum::extract::State<ApiState>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, KubeError> {
    let path = axum::extract::Path((namespace, "replicationcontrollers".to_owned(), name));
    reads::get_namespaced(state, path, headers).await
}

async fn unknown(uri: Uri) -> KubeError {
    KubeError::new(
        StatusCode::NOT_FOUND,
        format!(
            "the server could not find the requested resource ({}): Shoal serves /api/v1 \
             (replicationcontrollers, pods, nodes, services, endpoints, events) in namespace \
             default",
            uri.path()
        ),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> KubeError {
    KubeError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}
