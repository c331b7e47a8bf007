//! create, replace (`edit`), patch (client-side `apply`, `apply
//! --server-side`, `patch`), delete and the `scale` subresource.
//!
//! Every write of an object goes the way `shoal apply` goes: the resulting
//! object is read by Shoal's one manifest parser (the same checks and
//! messages) and written by the peer core, durable on this peer before the
//! answer. Server-side apply merges the applied configuration into the
//! object like a strategic merge patch: Shoal keeps no field managers, so
//! it never reports a conflict between managers. `resourceVersion` is not
//! checked (see `objects`): each field's newest write wins.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::ApiState;
use super::kinds::{Kind, Local};
use super::patch;
use super::reads::query;
use super::status::{KubeError, check_namespace};
use crate::peer::{Command, CommandError};
use crate::shell::handle::Ack;
use shoal_crdt_state::LastApplied;

#[derive(Debug, Default, Deserialize)]
pub(super) struct WriteQuery {
    /// `All`: check and answer, write nothing.
    #[serde(rename = "dryRun")]
    dry_run: Option<String>,
    /// `Strict` (kubectl's default): an unknown field is an error rather
    /// than a warning.
    #[serde(rename = "fieldValidation")]
    field_validation: Option<String>,
}

impl WriteQuery {
    fn how(&self) -> How {
        How {
            dry_run: self.dry_run.as_deref() == Some("All"),
            strict: self.field_validation.as_deref() == Some("Strict"),
        }
    }
}

/// What a write's query asks besides the object.
#[derive(Debug, Clone, Copy)]
struct How {
    dry_run: bool,
    strict: bool,
}

pub(super) async fn create(
    State(state): State<ApiState>,
    Path((namespace, plural)): Path<(String, String)>,
    params: Result<Query<WriteQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let kind = writable(&plural)?;
    let params = query(params)?;
    let object = json_body(&body)?;
    let name = object_name(&object)?;
    let snapshot = state.handle.snapshot().await?;
    if kind.get(&snapshot, local(&state), &name).is_ok() {
        return Err(KubeError::already_exists(kind.plural(), &name));
    }
    write(
        &state,
        kind,
        &name,
        object,
        params.how(),
        StatusCode::CREATED,
    )
    .await
}

pub(super) async fn replace(
    State(state): State<ApiState>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    params: Result<Query<WriteQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let kind = writable(&plural)?;
    let params = query(params)?;
    let object = json_body(&body)?;
    let snapshot = state.handle.snapshot().await?;
    kind.get(&snapshot, local(&state), &name)?;
    write(&state, kind, &name, object, params.how(), StatusCode::OK).await
}

pub(super) async fn patch(
    State(state): State<ApiState>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
    params: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let kind = writable(&plural)?;
    let params = query(params)?;
    let form = PatchForm::of(&headers)?;
    let snapshot = state.handle.snapshot().await?;
    let (mut object, status) = match kind.get(&snapshot, local(&state), &name) {
        Ok(item) => (item.json, StatusCode::OK),
        // Server-side apply creates what does not exist yet.
        Err(_) if form == PatchForm::Apply => (Value::Null, StatusCode::CREATED),
        Err(e) => return Err(e),
    };
    form.apply(&mut object, &body)?;
    write(&state, kind, &name, object, params.how(), status).await
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    Path((namespace, plural, name)): Path<(String, String, String)>,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let kind = writable(&plural)?;
    let snapshot = state.handle.snapshot().await?;
    let item = kind.get(&snapshot, local(&state), &name)?;
    let command = match kind {
        Kind::ReplicationController => Command::Delete { name: name.clone() },
        _ => Command::DeleteService { name: name.clone() },
    };
    state.handle.command_with(command, Ack::Durable).await?;
    Ok(axum::Json(json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": name, "kind": kind.plural(), "uid": item.meta.uid },
    }))
    .into_response())
}

/// The patch forms, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchForm {
    Strategic,
    Merge,
    Json,
    Apply,
}

impl PatchForm {
    fn of(headers: &HeaderMap) -> Result<PatchForm, KubeError> {
        let content = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let media = content.split(';').next().unwrap_or_default().trim();
        Ok(match media {
            "application/strategic-merge-patch+json" => PatchForm::Strategic,
            "application/merge-patch+json" => PatchForm::Merge,
            "application/json-patch+json" => PatchForm::Json,
            "application/apply-patch+yaml" => PatchForm::Apply,
            other => {
                return Err(KubeError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "the patch content type {other:?} is not supported: use \
                         application/strategic-merge-patch+json, application/merge-patch+json, \
                         application/json-patch+json or application/apply-patch+yaml"
                    ),
                ));
            }
        })
    }

    fn apply(self, object: &mut Value, body: &[u8]) -> Result<(), KubeError> {
        match self {
            PatchForm::Strategic => patch::strategic_merge(object, &json_body(body)?),
            PatchForm::Merge => {
                patch::merge(object, &json_body(body)?);
                Ok(())
            }
            PatchForm::Json => patch::json_patch(object, &json_body(body)?),
            PatchForm::Apply => {
                let text = std::str::from_utf8(body).map_err(|_| {
                    KubeError::bad_request("the applied configuration is not UTF-8")
                })?;
                let applied: Value = serde_saphyr::from_str(text).map_err(|e| {
                    KubeError::bad_request(format!("the applied configuration is not YAML: {e}"))
                })?;
                patch::strategic_merge(object, &applied)
            }
        }
    }
}

fn local(state: &ApiState) -> Local<'_> {
    Local {
        service_dns: &state.service_dns,
    }
}

fn writable(plural: &str) -> Result<Kind, KubeError> {
    let kind = Kind::from_plural(plural)?;
    if kind.writable() {
        Ok(kind)
    } else {
        Err(KubeError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} are not written through the API: they follow from replicationcontrollers \
                 (pods) or from the peers themselves (nodes, events)",
                kind.plural()
            ),
        ))
    }
}

/// A write's body as far as it goes without a peer: the patch of type
/// `content_type` applied to `current` (with `None`, the body itself, as a
/// create or a replace sends it), prepared and read as one manifest. The
/// fuzz targets (`shoal::fuzzing`) feed it hostile bodies.
pub fn body_to_manifest(
    rc: bool,
    name: &str,
    content_type: Option<&str>,
    current: Value,
    body: &[u8],
) -> Result<(), KubeError> {
    let kind = if rc {
        Kind::ReplicationController
    } else {
        Kind::Service
    };
    let mut object = match content_type {
        None => json_body(body)?,
        Some(content_type) => {
            let mut headers = HeaderMap::new();
            let value = header::HeaderValue::from_str(content_type)
                .map_err(|e| KubeError::bad_request(e.to_string()))?;
            headers.insert(header::CONTENT_TYPE, value);
            let mut object = current;
            PatchForm::of(&headers)?.apply(&mut object, body)?;
            object
        }
    };
    prepare(kind, name, &mut object)?;
    let text = serde_json::to_vec(&object).unwrap_or_default();
    super::super::apply::parse(&text)?;
    last_applied(&object)?;
    Ok(())
}

fn json_body(body: &[u8]) -> Result<Value, KubeError> {
    serde_json::from_slice(body)
        .map_err(|e| KubeError::bad_request(format!("the request body is not JSON: {e}")))
}

fn object_name(object: &Value) -> Result<String, KubeError> {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            KubeError::invalid(
                "metadata.name: Required value: name is required (generateName is not supported)",
            )
        })
}

/// Checks `object` with Shoal's manifest parser and writes it; answers the
/// object as now stored (or as it would be, for a dry run).
async fn write(
    state: &ApiState,
    kind: Kind,
    name: &str,
    mut object: Value,
    how: How,
    status: StatusCode,
) -> Result<Response, KubeError> {
    prepare(kind, name, &mut object)?;
    if kind == Kind::Service {
        drop_cluster_ip(&mut object, &state.service_dns);
    }
    let text = serde_json::to_vec(&object).unwrap_or_default();
    let parsed = super::super::apply::parse(&text)?;
    let count = match kind {
        Kind::ReplicationController => parsed.specs.len(),
        _ => parsed.services.len(),
    };
    if count != 1 || parsed.specs.len() + parsed.services.len() != 1 {
        return Err(KubeError::invalid(format!(
            "the body must be one {} object",
            kind.name()
        )));
    }
    let unknown: Vec<String> = parsed
        .warnings
        .iter()
        .map(|w| &w.0)
        .filter(|d| d.message.starts_with("unknown field"))
        .map(|d| format!("unknown field {:?}", d.path))
        .collect();
    if how.strict && !unknown.is_empty() {
        return Err(KubeError::bad_request(format!(
            "{} in version \"v1\" cannot be handled as a {0}: strict decoding error: {}",
            kind.name(),
            unknown.join(", ")
        )));
    }
    let warnings = warning_headers(&parsed.warnings);
    let last_applied = last_applied(&object)?;
    if how.dry_run {
        return Ok((status, warnings, axum::Json(object)).into_response());
    }
    let _applied = super::super::apply::apply_with(
        state,
        parsed,
        Ack::Durable,
        LastApplied::Set(last_applied),
    )
    .await?;
    let snapshot = state.handle.snapshot().await?;
    let item = kind.get(&snapshot, local(state), name)?;
    Ok((status, warnings, axum::Json(item.json)).into_response())
}

/// The most last-applied text kept: it travels in every copy of the body.
const MAX_LAST_APPLIED_BYTES: usize = 64 * 1024;

/// The object's `last-applied-configuration` annotation: what this write
/// stores for kubectl's next three-way merge (none when it carries none,
/// as a Kubernetes object's metadata would be replaced).
fn last_applied(object: &Value) -> Result<Option<String>, KubeError> {
    let Some(value) = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(super::objects::LAST_APPLIED))
    else {
        return Ok(None);
    };
    let text = value.as_str().ok_or_else(|| {
        KubeError::invalid(format!(
            "metadata.annotations.{}: Invalid value: must be a string",
            super::objects::LAST_APPLIED
        ))
    })?;
    if text.len() > MAX_LAST_APPLIED_BYTES {
        return Err(KubeError::invalid(format!(
            "metadata.annotations.{}: Too long: {} bytes, Shoal keeps at most \
             {MAX_LAST_APPLIED_BYTES}",
            super::objects::LAST_APPLIED,
            text.len()
        )));
    }
    Ok(Some(text.to_owned()))
}

/// The parser's findings (ignored fields, ...) as `Warning` headers, which
/// kubectl prints as `Warning: ...`.
fn warning_headers(
    warnings: &[shoal_crdt_state::manifest::ManifestWarning],
) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    for warning in warnings {
        // The body was JSON: its document and line numbers say nothing.
        let text =
            format!("{}: {}", warning.0.path, warning.0.message).replace(['"', '\\', '\n'], " ");
        if let Ok(value) = axum::http::HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            headers.append(header::WARNING, value);
        }
    }
    headers
}

/// What the server sets is dropped before parsing (status, uid, ...);
/// kind, apiVersion, name and namespace must agree with the URL.
fn prepare(kind: Kind, name: &str, object: &mut Value) -> Result<(), KubeError> {
    let Some(map) = object.as_object_mut() else {
        return Err(KubeError::bad_request(format!(
            "the body must be a {} object",
            kind.name()
        )));
    };
    match map.get("kind").and_then(Value::as_str) {
        None => {
            map.insert("kind".into(), kind.name().into());
        }
        Some(k) if k == kind.name() => {}
        Some(k) => {
            return Err(KubeError::bad_request(format!(
                "the body is a {k}, but the URL is of {}",
                kind.plural()
            )));
        }
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None => {
            map.insert("apiVersion".into(), "v1".into());
        }
        Some("v1") => {}
        Some(other) => {
            return Err(KubeError::bad_request(format!(
                "apiVersion {other:?}: {} is served as v1",
                kind.name()
            )));
        }
    }
    map.remove("status");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| KubeError::invalid("metadata: must be an object"))?;
    match meta.get("name").and_then(Value::as_str) {
        None => {
            meta.insert("name".into(), name.into());
        }
        Some(n) if n == name => {}
        Some(n) => {
            return Err(KubeError::bad_request(format!(
                "the name of the object ({n:?}) does not match the name in the URL ({name:?})"
            )));
        }
    }
    if let Some(ns) = meta.remove("namespace") {
        check_namespace(ns.as_str().unwrap_or_default())?;
    }
    for server_set in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
        "ownerReferences",
        "finalizers",
    ] {
        meta.remove(server_set);
    }
    Ok(())
}

/// The cluster IP this peer shows (see `objects`) is the peer's, not the
/// service's: a read-modify-write (`edit`, a patch) sends it back, and it
/// is dropped rather than warned about. Another value is left to the
/// parser, which says it has no effect.
fn drop_cluster_ip(object: &mut Value, dns: &Result<std::net::IpAddr, String>) {
    let shown = match dns {
        Ok(ip) => ip.to_string(),
        Err(_) => "None".to_owned(),
    };
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        if spec.get("clusterIP").and_then(Value::as_str) == Some(shown.as_str()) {
            spec.remove("clusterIP");
        }
        if spec.get("clusterIPs") == Some(&json!([shown])) {
            spec.remove("clusterIPs");
        }
    }
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(super::objects::NO_CLUSTER_IP);
    }
}

/// `GET .../replicationcontrollers/{name}/scale`.
pub(super) async fn scale_get(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    Ok(axum::Json(scale_object(&state, &name).await?).into_response())
}

/// `PUT` (a Scale) or `PATCH` (any patch form, onto the Scale) of the
/// scale subresource: `kubectl scale`.
pub(super) async fn scale_write(
    State(state): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    method: axum::http::Method,
    body: Bytes,
) -> Result<Response, KubeError> {
    check_namespace(&namespace)?;
    let mut scale = scale_object(&state, &name).await?;
    if method == axum::http::Method::PUT {
        scale = json_body(&body)?;
    } else {
        PatchForm::of(&headers)?.apply(&mut scale, &body)?;
    }
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .ok_or_else(|| KubeError::invalid("spec.replicas: Required value: a whole number"))?;
    let max = shoal_crdt_state::manifest::validate::MAX_REPLICAS;
    let replicas = u32::try_from(replicas)
        .ok()
        .filter(|r| *r <= max)
        .ok_or_else(|| {
            KubeError::invalid(format!(
                "spec.replicas: Invalid value: {replicas}: must be between 0 and {max}"
            ))
        })?;
    state
        .handle
        .command_with(
            Command::Scale {
                name: name.clone(),
                replicas,
            },
            Ack::Durable,
        )
        .await
        .map_err(|e| match e {
            crate::shell::handle::HandleError::Command(CommandError::NotFound(_)) => {
                KubeError::not_found("replicationcontrollers", &name)
            }
            other => other.into(),
        })?;
    Ok(axum::Json(scale_object(&state, &name).await?).into_response())
}

/// The RC's `autoscaling/v1` Scale.
async fn scale_object(state: &ApiState, name: &str) -> Result<Value, KubeError> {
    let snapshot = state.handle.snapshot().await?;
    let item = Kind::ReplicationController.get(&snapshot, local(state), name)?;
    let rc = &item.json;
    let selector = rc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|s| {
            s.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": item.meta.uid,
            "resourceVersion": item.meta.resource_version,
            "creationTimestamp": rc.pointer("/metadata/creationTimestamp"),
        },
        "spec": { "replicas": rc.pointer("/spec/replicas") },
        "status": {
            "replicas": rc.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    }))
}
