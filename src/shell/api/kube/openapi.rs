//! OpenAPI v3 for kubectl: `/openapi/v3` (the index) and `/openapi/v3/api/v1`.
//!
//! The schemas are generated from the `k8s-openapi` types (their schemars
//! impls), never written by hand. kubectl reads this document to
//! - decide that the server validates fields itself: every PATCH operation
//!   names its kind (`x-kubernetes-group-version-kind`) and the
//!   `fieldValidation` query parameter, so `apply`/`create` skip the
//!   client-side check that needs OpenAPI v2 (which we do not serve);
//! - `explain` a kind: component schemas carry their group/version/kind;
//! - key lists in its three-way `apply` patch as the server merges them
//!   (`x-kubernetes-patch-merge-key` from `patch::MERGED_LISTS`).

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{Endpoints, Event, Node, Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResourceList, ListMeta, Status};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::PREFIX;
use super::discovery::MINOR;

struct Document {
    bytes: Vec<u8>,
    hash: String,
}

fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| {
        let bytes = serde_json::to_vec(&api_v1()).expect("a JSON value encodes");
        let hash = format!("{:016X}", xxhash_rust::xxh3::xxh3_64(&bytes));
        Document { bytes, hash }
    })
}

/// `GET /openapi/v3`: where each group-version's document lives. The URL is
/// absolute on the server (client-go does not prefix it with the kubeconfig
/// server's path), so it carries our prefix.
pub(super) async fn index() -> Response {
    let url = format!("{PREFIX}/openapi/v3/api/v1?hash={}", document().hash);
    json_response(
        serde_json::to_vec(&json!({ "paths": { "api/v1": { "serverRelativeURL": url } } }))
            .expect("a JSON value encodes"),
    )
}

/// `GET /openapi/v3/api/v1`.
pub(super) async fn api_v1_document() -> Response {
    json_response(document().bytes.clone())
}

fn json_response(body: Vec<u8>) -> Response {
    let json = HeaderValue::from_static("application/json");
    ([(header::CONTENT_TYPE, json)], body).into_response()
}

/// A kind served under `/api/v1`, with how its paths look.
struct Kind {
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    writable: bool,
    /// `#/components/schemas/...` of the object and of its list.
    object: Value,
    list: Value,
}

fn kind<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    lists: &mut Map<String, Value>,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    writable: bool,
) -> Kind {
    let object = generator.subschema_for::<T>().to_value();
    // k8s-openapi's generic `List<T>` has no schema of its own: its list
    // schema is composed of the generated item and ListMeta schemas.
    let meta = generator.subschema_for::<ListMeta>().to_value();
    let name = format!("{}List", T::schema_name());
    lists.insert(
        name.clone(),
        json!({
            "description": format!("A list of {kind} objects."),
            "type": "object",
            "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "metadata": meta,
                "items": { "type": "array", "items": object },
            },
            "required": ["items"],
        }),
    );
    Kind {
        kind,
        plural,
        namespaced,
        writable,
        object,
        list: json!({ "$ref": format!("#/components/schemas/{name}") }),
    }
}

/// Tells kubectl which lists this server's strategic merge keys, and by
/// what (the `k8s-openapi` schemas carry no patch metadata). Without it
/// kubectl's three-way patch treats such a list as a whole: a container
/// list in which the server filled in a default (`protocol: TCP`) then
/// differs from the file, and re-applying an unchanged file says
/// `configured`.
fn mark_merged_lists(schemas: &mut Map<String, Value>) {
    for (schema, field, key) in super::patch::MERGED_LISTS {
        let property = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut);
        if let Some(property) = property {
            property.insert("x-kubernetes-patch-merge-key".into(), key.into());
            property.insert("x-kubernetes-patch-strategy".into(), "merge".into());
        }
    }
}

/// The whole `api/v1` document.
fn api_v1() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut lists = Map::new();
    let g = &mut generator;
    let l = &mut lists;
    let kinds = [
        kind::<ReplicationController>(
            g,
            l,
            "ReplicationController",
            "replicationcontrollers",
            true,
            true,
        ),
        kind::<Pod>(g, l, "Pod", "pods", true, false),
        kind::<Service>(g, l, "Service", "services", true, true),
        kind::<Endpoints>(g, l, "Endpoints", "endpoints", true, false),
        kind::<Node>(g, l, "Node", "nodes", false, false),
        kind::<Event>(g, l, "Event", "events", true, false),
    ];
    let scale = generator.subschema_for::<Scale>().to_value();
    let status = generator.subschema_for::<Status>().to_value();
    generator.subschema_for::<APIResourceList>();
    let mut schemas = generator.take_definitions(true);
    schemas.extend(lists);
    for k in &kinds {
        tag_kind(&mut schemas, &k.object, "", k.kind);
        tag_kind(&mut schemas, &k.list, "", &format!("{}List", k.kind));
    }
    tag_kind(&mut schemas, &scale, "autoscaling", "Scale");
    tag_kind(&mut schemas, &status, "", "Status");
    mark_merged_lists(&mut schemas);

    let mut paths = Map::new();
    for k in &kinds {
        let (collection, item) = if k.namespaced {
            (
                format!("/api/v1/namespaces/{{namespace}}/{}", k.plural),
                format!("/api/v1/namespaces/{{namespace}}/{}/{{name}}", k.plural),
            )
        } else {
            (
                format!("/api/v1/{}", k.plural),
                format!("/api/v1/{}/{{name}}", k.plural),
            )
        };
        let gvk = json!({ "group": "", "version": "v1", "kind": k.kind });
        let mut on_collection = Map::new();
        on_collection.insert("get".into(), operation("list", &gvk, &k.list, None));
        let mut on_item = Map::new();
        on_item.insert("get".into(), operation("get", &gvk, &k.object, None));
        if k.writable {
            on_collection.insert(
                "post".into(),
                operation("post", &gvk, &k.object, Some(&k.object)),
            );
            on_item.insert(
                "put".into(),
                operation("put", &gvk, &k.object, Some(&k.object)),
            );
            on_item.insert(
                "patch".into(),
                operation("patch", &gvk, &k.object, Some(&json!({ "type": "object" }))),
            );
            on_item.insert("delete".into(), operation("delete", &gvk, &status, None));
        }
        paths.insert(collection, Value::Object(on_collection));
        paths.insert(item, Value::Object(on_item));
    }
    let scale_gvk = json!({ "group": "autoscaling", "version": "v1", "kind": "Scale" });
    paths.insert(
        "/api/v1/namespaces/{namespace}/replicationcontrollers/{name}/scale".into(),
        json!({
            "get": operation("get", &scale_gvk, &scale, None),
            "put": operation("put", &scale_gvk, &scale, Some(&scale)),
            "patch": operation("patch", &scale_gvk, &scale, Some(&json!({ "type": "object" }))),
        }),
    );
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes (Shoal)", "version": format!("v1.{MINOR}.0") },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// Marks the component `reference` points at as the schema of a kind, the
/// way the Kubernetes API server's documents do.
fn tag_kind(schemas: &mut Map<String, Value>, reference: &Value, group: &str, kind: &str) {
    let Some(name) = reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    else {
        return;
    };
    if let Some(Value::Object(schema)) = schemas.get_mut(name) {
        schema.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{ "group": group, "version": "v1", "kind": kind }]),
        );
    }
}

/// One operation; PATCH (and the other writes) take `fieldValidation`.
fn operation(action: &str, gvk: &Value, response: &Value, body: Option<&Value>) -> Value {
    let mut parameters = vec![json!({
        "name": "pretty", "in": "query", "schema": { "type": "string" }
    })];
    if body.is_some() {
        for name in ["dryRun", "fieldManager", "fieldValidation"] {
            parameters.push(json!({ "name": name, "in": "query", "schema": { "type": "string" } }));
        }
    }
    let mut op = json!({
        "operationId": format!("{action}{}", gvk["kind"].as_str().unwrap_or_default()),
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "OK",
                "content": { "application/json": { "schema": response } }
            }
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if let Some(body) = body {
        let types: &[&str] = if action == "patch" {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &["application/json"]
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({ "schema": body })))
            .collect();
        op["requestBody"] = json!({ "content": content, "required": true });
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_patch_names_its_kind_and_takes_field_validation() {
        let doc = api_v1();
        let paths = doc["paths"].as_object().unwrap();
        let patches: Vec<&Value> = paths.values().filter_map(|p| p.get("patch")).collect();
        assert_eq!(patches.len(), 3, "rc, service and the rc scale subresource");
        for op in patches {
            assert!(
                op["x-kubernetes-group-version-kind"]["kind"].is_string(),
                "{op}"
            );
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params.iter().any(|p| p["name"] == "fieldValidation"),
                "{op}"
            );
        }
    }

    #[test]
    fn schemas_come_from_k8s_openapi_and_every_reference_resolves() {
        let doc = api_v1();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let rc = &schemas["io.k8s.api.core.v1.ReplicationController"];
        assert_eq!(
            rc["x-kubernetes-group-version-kind"],
            json!([{ "group": "", "version": "v1", "kind": "ReplicationController" }])
        );
        assert!(rc["properties"]["spec"].is_object());
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodList"));
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling reference to {name}");
        }
    }

    #[test]
    fn the_index_points_at_the_document_under_the_prefix() {
        let doc = document();
        assert_eq!(doc.hash.len(), 16);
        let url = format!("{PREFIX}/openapi/v3/api/v1?hash={}", doc.hash);
        assert!(url.starts_with("/kube/openapi/v3/api/v1?hash="));
    }
}
