//! The Kubernetes `v1` ReplicationController form.

use super::annotations;
use super::container::{self, Form};
use super::fields::{
    Ctx, Schema, index, join, map_fields, optional, required, sequence, string, string_map,
    u32_field,
};
use super::strategy;
use super::tree::{Node, Value};
use super::validate::{self, MAX_REPLICAS};
use crate::spec::{Labels, PodTemplate, RcSpec, RestartPolicy};

const TOP: Schema = Schema {
    known: &["apiVersion", "kind", "metadata", "spec"],
    unsupported: &[],
    ignored: &["status"],
};

const METADATA: Schema = Schema {
    known: &["name", "labels", "annotations", "namespace"],
    unsupported: &["generateName"],
    ignored: &[
        "creationTimestamp",
        "uid",
        "resourceVersion",
        "generation",
        "selfLink",
        "managedFields",
        "ownerReferences",
        "finalizers",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ],
};

const SPEC: Schema = Schema {
    known: &[
        "replicas",
        "selector",
        "template",
        "strategy",
        "minReadySeconds",
        "progressDeadlineSeconds",
    ],
    unsupported: &[],
    ignored: &[],
};

const TEMPLATE: Schema = Schema {
    known: &["metadata", "spec"],
    unsupported: &[],
    ignored: &[],
};

const TEMPLATE_METADATA: Schema = Schema {
    known: &["labels"],
    unsupported: &[],
    ignored: &["annotations", "name", "namespace", "creationTimestamp"],
};

const POD_SPEC: Schema = Schema {
    known: &[
        "containers",
        "nodeSelector",
        "restartPolicy",
        "terminationGracePeriodSeconds",
    ],
    unsupported: &[
        "volumes",
        "initContainers",
        "ephemeralContainers",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "hostUsers",
        "securityContext",
        "affinity",
        "tolerations",
        "nodeName",
        "topologySpreadConstraints",
        "activeDeadlineSeconds",
        "hostAliases",
        "hostname",
        "subdomain",
        "dnsConfig",
        "runtimeClassName",
        "shareProcessNamespace",
        "readinessGates",
        "overhead",
        "os",
        "schedulingGates",
        "resourceClaims",
        "priority",
        "preemptionPolicy",
    ],
    ignored: &[
        "dnsPolicy",
        "serviceAccountName",
        "serviceAccount",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "imagePullSecrets",
        "schedulerName",
        "priorityClassName",
        "setHostnameAsFQDN",
    ],
};

/// Longest grace period we accept between SIGTERM and SIGKILL: a day.
pub(crate) const MAX_GRACE_SECS: u32 = 86_400;

/// Reads a v1 ReplicationController; `None` when the document has problems
/// (all of them recorded in `ctx`). `base` prefixes paths (`items[2]`).
pub(crate) fn parse(ctx: &mut Ctx, doc: &Node, base: &str) -> Option<RcSpec> {
    let errors_before = ctx.error_count();
    map_fields(ctx, doc, base, &TOP)?;
    let name = metadata(ctx, doc, base);
    let (mut update_strategy, partition_policy) = doc
        .get("metadata")
        .and_then(|m| optional(m, "annotations"))
        .map(|a| annotations::parse(ctx, a, &join(&join(base, "metadata"), "annotations")))
        .unwrap_or_default();

    let spec_path = join(base, "spec");
    let what = "add spec with replicas, selector and template";
    let spec = required(ctx, doc, base, "spec", what)?;
    map_fields(ctx, spec, &spec_path, &SPEC)?;
    strategy::parse(ctx, spec, &spec_path, &mut update_strategy);
    let replicas = u32_field(ctx, spec, &spec_path, "replicas", 1, 0..=MAX_REPLICAS, "");
    let template_path = join(&spec_path, "template");
    let what = "add spec.template with metadata.labels and spec.containers";
    let template = required(ctx, spec, &spec_path, "template", what)
        .and_then(|t| pod_template(ctx, t, &template_path));
    let labels_path = join(&join(&template_path, "metadata"), "labels");
    let selector_path = join(&spec_path, "selector");
    let selector = match optional(spec, "selector") {
        Some(node)
            if node.get("matchLabels").is_some() || node.get("matchExpressions").is_some() =>
        {
            ctx.error(
                &selector_path,
                node.line,
                "a ReplicationController selector is a plain label map (no matchLabels/matchExpressions); write the labels directly under spec.selector",
            );
            None
        }
        Some(node) => Some((string_map(ctx, node, &selector_path, true), node.line)),
        None => None,
    };
    let template = template?;
    let selector = validate::rc_selector(
        ctx,
        selector,
        &template.labels,
        spec.line,
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

fn metadata(ctx: &mut Ctx, doc: &Node, base: &str) -> Option<String> {
    let path = join(base, "metadata");
    let what = "add metadata.name, e.g. \"web\"";
    let meta = required(ctx, doc, base, "metadata", what)?;
    map_fields(ctx, meta, &path, &METADATA)?;
    if let Some(labels) = optional(meta, "labels") {
        // The RC's own labels carry no behaviour in Shoal, but must be well-formed.
        string_map(ctx, labels, &join(&path, "labels"), true);
    }
    if let Some(ns) = optional(meta, "namespace") {
        let ns_path = join(&path, "namespace");
        if let Some(ns) = string(ctx, ns, &ns_path).filter(|ns| ns != "default") {
            let msg = format!("namespace {ns:?} ignored: Shoal has one namespace per cluster");
            ctx.warn(&ns_path, meta.get("namespace").and_then(|n| n.line), msg);
        }
    }
    let name_node = required(ctx, meta, &path, "name", what)?;
    let name_path = join(&path, "name");
    let name = string(ctx, name_node, &name_path)?;
    if let Err(why) = validate::dns1123_label(&name) {
        ctx.error(&name_path, name_node.line, format!("name {why}"));
        return None;
    }
    Some(name)
}

fn pod_template(ctx: &mut Ctx, node: &Node, path: &str) -> Option<PodTemplate> {
    map_fields(ctx, node, path, &TEMPLATE)?;
    let meta_path = join(path, "metadata");
    let labels = match optional(node, "metadata") {
        Some(meta) => {
            map_fields(ctx, meta, &meta_path, &TEMPLATE_METADATA);
            optional(meta, "labels")
                .map(|l| string_map(ctx, l, &join(&meta_path, "labels"), true))
                .unwrap_or_default()
        }
        None => Labels::new(),
    };
    let spec_path = join(path, "spec");
    let what = "add spec.template.spec.containers";
    let spec = required(ctx, node, path, "spec", what)?;
    map_fields(ctx, spec, &spec_path, &POD_SPEC)?;
    let containers_path = join(&spec_path, "containers");
    let mut containers = Vec::new();
    if let Some(list) = optional(spec, "containers") {
        for (i, item) in sequence(ctx, list, &containers_path)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            containers.push(container::parse(
                ctx,
                item,
                &index(&containers_path, i),
                Form::V1,
            ));
        }
    }
    validate::pod_containers(ctx, &containers, &containers_path, spec.line);
    let containers = containers.into_iter().map(|c| c.spec).collect();
    let node_selector = optional(spec, "nodeSelector")
        .map(|n| string_map(ctx, n, &join(&spec_path, "nodeSelector"), true))
        .unwrap_or_default();
    let restart_policy = optional(spec, "restartPolicy")
        .and_then(|n| restart_policy(ctx, n, &join(&spec_path, "restartPolicy")))
        .unwrap_or_default();
    let termination_grace_period_secs = u32_field(
        ctx,
        spec,
        &spec_path,
        "terminationGracePeriodSeconds",
        30,
        0..=MAX_GRACE_SECS,
        " seconds",
    );
    Some(PodTemplate {
        labels,
        containers,
        node_selector,
        restart_policy,
        termination_grace_period_secs,
    })
}

fn restart_policy(ctx: &mut Ctx, node: &Node, path: &str) -> Option<RestartPolicy> {
    match &node.value {
        Value::Str(s) if s == "Always" => Some(RestartPolicy::Always),
        Value::Str(s) if s == "OnFailure" => Some(RestartPolicy::OnFailure),
        Value::Str(s) if s == "Never" => Some(RestartPolicy::Never),
        _ => {
            ctx.error(
                path,
                node.line,
                format!("restartPolicy {node} is not one of Always, OnFailure, Never"),
            );
            None
        }
    }
}
