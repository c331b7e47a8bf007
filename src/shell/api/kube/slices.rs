//! `discovery.k8s.io/v1` EndpointSlices, read-only: kubectl 1.33+ `describe
//! svc` lists a service's endpoints from the slices labelled with its name
//! (`kubernetes.io/service-name`), no longer from its `Endpoints`. Both are
//! the same endpoint set (see `objects::endpoint`): one slice per subset.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResourceList, GroupVersionForDiscovery,
};
use serde_json::{Value, json};

use super::super::ApiState;
use super::discovery::resource;
use super::objects;
use super::reads::{ListQuery, query};
use super::selectors::Selector;
use super::status::{KubeError, check_namespace};
use crate::shell::handle::Snapshot;

pub const GROUP: &str = "discovery.k8s.io";
/// The label naming a slice's service.
const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// `/apis`: the one group served besides the core `/api`.
pub(super) async fn groups() -> Json<APIGroupList> {
    let version = GroupVersionForDiscovery {
        group_version: format!("{GROUP}/v1"),
        version: "v1".to_owned(),
    };
    Json(APIGroupList {
        groups: vec![APIGroup {
            name: GROUP.to_owned(),
            versions: vec![version.clone()],
            preferred_version: Some(version),
            server_address_by_client_cidrs: None,
        }],
    })
}

/// `/apis/discovery.k8s.io/v1`.
pub(super) async fn resources() -> Json<APIResourceList> {
    Json(APIResourceList {
        group_version: format!("{GROUP}/v1"),
        resources: vec![resource(
            "endpointslices",
            "endpointslice",
            "EndpointSlice",
            true,
            &[],
            &["get", "list"],
        )],
    })
}

/// `GET /apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices`.
pub(super) async fn list(
    State(state): State<ApiState>,
    Path(namespace): Path<String>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, KubeError> {
    check_namespace(&namespace)?;
    let params = query(params)?;
    let selector = Selector::parse(
        params.label_selector.as_deref(),
        params.field_selector.as_deref(),
        Some(&[]),
    )?;
    let snapshot = state.handle.snapshot().await?;
    let items: Vec<EndpointSlice> = slices(&snapshot)
        .into_iter()
        .filter(|s| selector.matches(&s.metadata, &Default::default()))
        .collect();
    Ok(Json(json!({
        "kind": "EndpointSliceList",
        "apiVersion": format!("{GROUP}/v1"),
        "metadata": { "resourceVersion": snapshot.generation.to_string() },
        "items": items,
    })))
}

/// Every live service's slices, in service name order.
fn slices(snapshot: &Snapshot) -> Vec<EndpointSlice> {
    let mut all = Vec::new();
    for endpoints in objects::endpoints(snapshot) {
        let service = endpoints.metadata.name.clone().unwrap_or_default();
        for (i, subset) in endpoints
            .subsets
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let mut metadata = endpoints.metadata.clone();
            metadata.name = Some(format!("{service}-{i}"));
            metadata.uid = metadata
                .uid
                .map(|u| objects::uid("endpointslice", &format!("{u}/{i}"), None));
            metadata.labels = Some([(SERVICE_NAME.to_owned(), service.clone())].into());
            let endpoint =
                |address: &k8s_openapi::api::core::v1::EndpointAddress, ready| Endpoint {
                    addresses: vec![address.ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(ready),
                        serving: Some(ready),
                        terminating: Some(false),
                    }),
                    node_name: address.node_name.clone(),
                    target_ref: address.target_ref.clone(),
                    ..Endpoint::default()
                };
            let ready = subset.addresses.iter().flatten().map(|a| endpoint(a, true));
            let not_ready = subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| endpoint(a, false));
            all.push(EndpointSlice {
                metadata,
                address_type: "IPv4".to_owned(),
                endpoints: ready.chain(not_ready).collect(),
                ports: subset.ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|p| EndpointPort {
                            // The endpoint slice controller names an
                            // unnamed port "" (kubectl's describe reads it).
                            name: Some(p.name.unwrap_or_default()),
                            port: Some(p.port),
                            protocol: p.protocol,
                            app_protocol: p.app_protocol,
                        })
                        .collect()
                }),
            });
        }
    }
    all
}
