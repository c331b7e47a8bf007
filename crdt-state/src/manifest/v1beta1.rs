//! The 2014 `v1beta1` ReplicationController form, as the Kubernetes "hello"
//! example wrote it:
//!
//! ```json
//! {"id": "helloController", "kind": "ReplicationController", "apiVersion": "v1beta1",
//!  "desiredState": {"replicas": 2, "replicaSelector": {"name": "hello"},
//!    "podTemplate": {"desiredState": {"manifest": {"version": "v1beta1",
//!      "id": "helloController", "containers": [...]}}, "labels": {"name": "hello"}}},
//!  "labels": {"name": "hello"}}
//! ```
//!
//! Ids of that era were camelCase; they are normalized to DNS-1123 labels
//! (`helloController` → `hello-controller`) with a warning naming the result.

use super::annotations;
use super::container::{self, Form};
use super::fields::{
    Ctx, Schema, index, join, map_fields, optional, required, sequence, string, string_map,
    u32_field,
};
use super::tree::{Node, Value};
use super::validate::{self, MAX_REPLICAS};
use crate::spec::{Labels, PodTemplate, RcSpec, RestartPolicy};

const TOP: Schema = Schema {
    known: &[
        "id",
        "kind",
        "apiVersion",
        "desiredState",
        "labels",
        "annotations",
    ],
    unsupported: &[],
    ignored: &[
        "currentState",
        "creationTimestamp",
        "selfLink",
        "resourceVersion",
        "uid",
        "namespace",
    ],
};

const DESIRED: Schema = Schema {
    known: &["replicas", "replicaSelector", "podTemplate"],
    unsupported: &[],
    ignored: &[],
};

const POD_TEMPLATE: Schema = Schema {
    known: &["desiredState", "labels"],
    unsupported: &[],
    ignored: &["annotations"],
};

const POD_DESIRED: Schema = Schema {
    known: &["manifest"],
    unsupported: &["host"],
    ignored: &["status", "podIP", "hostIP", "info"],
};

const MANIFEST: Schema = Schema {
    known: &["version", "id", "containers", "restartPolicy"],
    unsupported: &["volumes"],
    ignored: &["uuid", "dnsPolicy"],
};

/// Reads a v1beta1 ReplicationController; `None` when the document has
/// problems (all of them recorded in `ctx`).
pub(crate) fn parse(ctx: &mut Ctx, doc: &Node, base: &str) -> Option<RcSpec> {
    let errors_before = ctx.error_count();
    map_fields(ctx, doc, base, &TOP)?;
    let name = id(ctx, doc, base);
    if let Some(labels) = optional(doc, "labels") {
        string_map(ctx, labels, &join(base, "labels"), true);
    }
    let (update_strategy, partition_policy) = optional(doc, "annotations")
        .map(|a| annotations::parse(ctx, a, &join(base, "annotations")))
        .unwrap_or_default();

    let desired_path = join(base, "desiredState");
    let what = "add desiredState with replicas, replicaSelector and podTemplate";
    let desired = required(ctx, doc, base, "desiredState", what)?;
    map_fields(ctx, desired, &desired_path, &DESIRED)?;
    let replicas = u32_field(
        ctx,
        desired,
        &desired_path,
        "replicas",
        1,
        0..=MAX_REPLICAS,
        "",
    );
    let template_path = join(&desired_path, "podTemplate");
    let what = "add desiredState.podTemplate with labels and desiredState.manifest";
    let template = required(ctx, desired, &desired_path, "podTemplate", what)
        .and_then(|t| pod_template(ctx, t, &template_path));
    let selector_path = join(&desired_path, "replicaSelector");
    let selector = optional(desired, "replicaSelector")
        .map(|n| (string_map(ctx, n, &selector_path, true), n.line));
    let template = template?;
    let labels_path = join(&template_path, "labels");
    let selector = validate::rc_selector(
        ctx,
        selector,
        &template.labels,
        desired.line,
        &selector_path,
        &labels_path,
    );

    if ctx.error_count() > errors_before {
        return None;
    }
    Some(RcSpec {
        name: name?,
        replicas,
        selector,
        template,
        update_strategy,
        partition_policy,
        paused: false,
    })
}

/// The id, normalized to a DNS-1123 label.
fn id(ctx: &mut Ctx, doc: &Node, base: &str) -> Option<String> {
    let path = join(base, "id");
    let node = required(ctx, doc, base, "id", "add an id, e.g. \"hello-controller\"")?;
    let id = string(ctx, node, &path)?;
    let name = validate::normalize_legacy_id(&id);
    if let Err(why) = validate::dns1123_label(&name) {
        ctx.error(&path, node.line, format!("id {why}"));
        return None;
    }
    if name != id {
        ctx.warn(
            &path,
            node.line,
            format!("id {id:?} is not a DNS-1123 label; using the name {name:?}"),
        );
    }
    Some(name)
}

fn pod_template(ctx: &mut Ctx, node: &Node, path: &str) -> Option<PodTemplate> {
    map_fields(ctx, node, path, &POD_TEMPLATE)?;
    let labels = optional(node, "labels")
        .map(|l| string_map(ctx, l, &join(path, "labels"), true))
        .unwrap_or_default();
    let desired_path = join(path, "desiredState");
    let desired = required(ctx, node, path, "desiredState", "add desiredState.manifest")?;
    map_fields(ctx, desired, &desired_path, &POD_DESIRED)?;
    let manifest_path = join(&desired_path, "manifest");
    let manifest = required(
        ctx,
        desired,
        &desired_path,
        "manifest",
        "add manifest.containers",
    )?;
    map_fields(ctx, manifest, &manifest_path, &MANIFEST)?;
    if let Some(v) = optional(manifest, "version") {
        let v_path = join(&manifest_path, "version");
        if let Some(version) = string(ctx, v, &v_path).filter(|v| v != "v1beta1") {
            let msg = format!("manifest version {version:?} read as v1beta1");
            ctx.warn(&v_path, v.line, msg);
        }
    }
    let containers_path = join(&manifest_path, "containers");
    let mut containers = Vec::new();
    if let Some(list) = optional(manifest, "containers") {
        for (i, item) in sequence(ctx, list, &containers_path)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let c = container::parse(ctx, item, &index(&containers_path, i), Form::V1beta1);
            containers.push(c);
        }
    }
    validate::pod_containers(ctx, &containers, &containers_path, manifest.line);
    let containers = containers.into_iter().map(|c| c.spec).collect();
    let restart_policy = optional(manifest, "restartPolicy")
        .and_then(|n| restart_policy(ctx, n, &join(&manifest_path, "restartPolicy")))
        .unwrap_or_default();
    Some(PodTemplate {
        labels,
        containers,
        node_selector: Labels::new(),
        restart_policy,
        // v1beta1 had no grace period: Kubernetes' default.
        termination_grace_period_secs: 30,
    })
}

/// v1beta1 wrote the policy as a one-key mapping: `{always: {}}`.
fn restart_policy(ctx: &mut Ctx, node: &Node, path: &str) -> Option<RestartPolicy> {
    let key = match &node.value {
        Value::Map(entries) if entries.len() == 1 => entries[0].0.as_str(),
        _ => "",
    };
    match key {
        "always" => Some(RestartPolicy::Always),
        "onFailure" => Some(RestartPolicy::OnFailure),
        "never" => Some(RestartPolicy::Never),
        _ => {
            ctx.error(
                path,
                node.line,
                format!("restartPolicy {node} is not one of {{always: {{}}}}, {{onFailure: {{}}}}, {{never: {{}}}}"),
            );
            None
        }
    }
}
