//! What kubectl asks before anything else: `/version`, the legacy discovery
//! documents `/api` and `/api/v1` (`/apis` is in `slices`).
//!
//! kubectl 1.30+ first asks for aggregated discovery (`as=APIGroupDiscoveryList`
//! in `Accept`); a plain `application/json` answer tells client-go to use the
//! legacy documents instead, which is what these are.

use axum::Json;
use axum::extract::Request;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIResource, APIResourceList, APIVersions, ServerAddressByClientCIDR,
};
use k8s_openapi::apimachinery::pkg::version::Info;

/// The Kubernetes minor version this API answers as. kubectl's dispatcher
/// picks its client from it; `k8s-openapi`'s `v1_33` feature gives the
/// objects and schemas of that same minor.
pub const MINOR: &str = "33";

pub(super) async fn version() -> Json<Info> {
    Json(Info {
        major: "1".to_owned(),
        minor: MINOR.to_owned(),
        git_version: format!("v1.{MINOR}.0-shoal.{}", env!("CARGO_PKG_VERSION")),
        git_commit: String::new(),
        git_tree_state: "clean".to_owned(),
        build_date: String::new(),
        go_version: "none (Shoal is written in Rust)".to_owned(),
        compiler: "rustc".to_owned(),
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        ..Info::default()
    })
}

pub(super) async fn api(request: Request) -> Json<APIVersions> {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Json(APIVersions {
        versions: vec!["v1".to_owned()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_owned(),
            server_address: host,
        }],
    })
}

pub(super) async fn api_v1() -> Json<APIResourceList> {
    Json(APIResourceList {
        group_version: "v1".to_owned(),
        resources: resources(),
    })
}

/// Every resource served, with kubectl's short names.
pub fn resources() -> Vec<APIResource> {
    let read = ["get", "list", "watch"];
    let write = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    vec![
        resource("events", "event", "Event", true, &["ev"], &["get", "list"]),
        resource("nodes", "node", "Node", false, &["no"], &read),
        resource("pods", "pod", "Pod", true, &["po"], &read).in_all(),
        resource("pods/log", "", "Pod", true, &[], &["get"]),
        resource(
            "replicationcontrollers",
            "replicationcontroller",
            "ReplicationController",
            true,
            &["rc"],
            &write,
        )
        .in_all(),
        APIResource {
            group: Some("autoscaling".to_owned()),
            version: Some("v1".to_owned()),
            ..resource(
                "replicationcontrollers/scale",
                "",
                "Scale",
                true,
                &[],
                &["get", "patch", "update"],
            )
        },
        resource(
            "replicationcontrollers/status",
            "",
            "ReplicationController",
            true,
            &[],
            &["get"],
        ),
        resource("services", "service", "Service", true, &["svc"], &write).in_all(),
        resource("endpoints", "endpoints", "Endpoints", true, &["ep"], &read),
    ]
}

pub(super) fn resource(
    name: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    verbs: &[&str],
) -> APIResource {
    let strings = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    APIResource {
        name: name.to_owned(),
        singular_name: singular.to_owned(),
        kind: kind.to_owned(),
        namespaced,
        short_names: (!short.is_empty()).then(|| strings(short)),
        verbs: strings(verbs),
        ..APIResource::default()
    }
}

/// Listed by `kubectl get all`.
trait InAll {
    fn in_all(self) -> Self;
}

impl InAll for APIResource {
    fn in_all(mut self) -> Self {
        self.categories = Some(vec!["all".to_owned()]);
        self
    }
}
