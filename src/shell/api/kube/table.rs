//! Server-side printing: `kubectl get` asks for
//! `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the columns we
//! send, so these are Kubernetes' own columns (the extra ones have
//! priority 1: `-o wide`). Rows are made from the same Kubernetes objects
//! as `-o json`, so the two never disagree.

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use crate::cli::human;

/// True when `accept` asks for a Table (kubectl `get`, `get -w`).
pub fn wanted(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// A `meta.k8s.io/v1` Table of `rows`, each with its object's metadata.
pub fn table(columns: &[Column], rows: Vec<(Vec<Value>, &ObjectMeta)>, version: &str) -> Value {
    let columns: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": if c.name == "Name" { "name" } else { "" },
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, meta)| {
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                }
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": version },
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// One column: kubectl upper-cases the name.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub priority: u8,
    pub description: &'static str,
}

const fn col(
    name: &'static str,
    kind: &'static str,
    priority: u8,
    description: &'static str,
) -> Column {
    Column {
        name,
        kind,
        priority,
        description,
    }
}

const NAME: Column = col(
    "Name",
    "string",
    0,
    "Name must be unique within a namespace.",
);
const AGE: Column = col("Age", "string", 0, "Time since the object was created.");

pub const RC_COLUMNS: [Column; 8] = [
    NAME,
    col("Desired", "integer", 0, "Number of desired replicas."),
    col("Current", "integer", 0, "Number of pods reported."),
    col("Ready", "integer", 0, "Number of ready pods."),
    AGE,
    col(
        "Containers",
        "string",
        1,
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        1,
        "Images referenced by each container in the template.",
    ),
    col(
        "Selector",
        "string",
        1,
        "Label query over pods that should match the replicas count.",
    ),
];

pub fn rc_row(rc: &ReplicationController, now_ms: u64) -> Vec<Value> {
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.clone().unwrap_or_default();
    let containers = spec
        .template
        .and_then(|t| t.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers
        .iter()
        .filter_map(|c| c.image.as_deref())
        .collect();
    vec![
        name(&rc.metadata),
        spec.replicas.unwrap_or(1).into(),
        status.replicas.into(),
        status.ready_replicas.unwrap_or(0).into(),
        age(&rc.metadata, now_ms),
        names.join(",").into(),
        images.join(",").into(),
        selector(spec.selector.as_ref()).into(),
    ]
}

pub const POD_COLUMNS: [Column; 9] = [
    NAME,
    col("Ready", "string", 0, "Ready containers / containers."),
    col(
        "Status",
        "string",
        0,
        "The pod's phase, or why its containers wait.",
    ),
    col(
        "Restarts",
        "integer",
        0,
        "Restarts of the pod's containers.",
    ),
    AGE,
    col(
        "IP",
        "string",
        1,
        "Address the pod's ports are published on.",
    ),
    col("Node", "string", 1, "Node running the pod."),
    col("Nominated Node", "string", 1, "Not used by Shoal."),
    col("Readiness Gates", "string", 1, "Not used by Shoal."),
];

pub fn pod_row(pod: &Pod, now_ms: u64) -> Vec<Value> {
    let status = pod.status.clone().unwrap_or_default();
    let containers = status.container_statuses.clone().unwrap_or_default();
    let ready = containers.iter().filter(|c| c.ready).count();
    let restarts: i32 = containers.iter().map(|c| c.restart_count).sum();
    let waiting = containers
        .iter()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .next();
    let shown = status
        .reason
        .clone()
        .or(waiting)
        .or(status.phase.clone())
        .unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    vec![
        name(&pod.metadata),
        format!("{ready}/{}", containers.len()).into(),
        shown.into(),
        restarts.into(),
        age(&pod.metadata, now_ms),
        status.pod_ip.unwrap_or_else(|| "<none>".to_owned()).into(),
        node.unwrap_or_else(|| "<none>".to_owned()).into(),
        "<none>".into(),
        "<none>".into(),
    ]
}

pub const NODE_COLUMNS: [Column; 10] = [
    NAME,
    col(
        "Status",
        "string",
        0,
        "Ready when alive in SWIM and its engine is reachable.",
    ),
    col("Roles", "string", 0, "Every Shoal peer is the same: none."),
    AGE,
    col("Version", "string", 0, "Shoal version of the peer."),
    col("Internal-IP", "string", 1, "Peer address."),
    col("External-IP", "string", 1, "Not used by Shoal."),
    col("OS-Image", "string", 1, "Operating system."),
    col("Kernel-Version", "string", 1, "Not reported by Shoal."),
    col("Container-Runtime", "string", 1, "Container engine."),
];

pub fn node_row(node: &Node, now_ms: u64) -> Vec<Value> {
    let status = node.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let mut shown = if ready { "Ready" } else { "NotReady" }.to_owned();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        shown.push_str(",SchedulingDisabled");
    }
    let info = status.node_info.unwrap_or_default();
    let internal = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map_or_else(|| "<none>".to_owned(), |a| a.address);
    vec![
        name(&node.metadata),
        shown.into(),
        "<none>".into(),
        age(&node.metadata, now_ms),
        info.kubelet_version.into(),
        internal.into(),
        "<none>".into(),
        info.operating_system.into(),
        "<unknown>".into(),
        info.container_runtime_version.into(),
    ]
}

pub const SERVICE_COLUMNS: [Column; 7] = [
    NAME,
    col("Type", "string", 0, "ClusterIP or NodePort."),
    col(
        "Cluster-IP",
        "string",
        0,
        "Shoal services answer on every peer (NAME.svc.shoal).",
    ),
    col("External-IP", "string", 0, "Not used by Shoal."),
    col(
        "Port(s)",
        "string",
        0,
        "Service ports, with the node port if any.",
    ),
    AGE,
    col(
        "Selector",
        "string",
        1,
        "Pods the service sends traffic to.",
    ),
];

pub fn service_row(service: &Service, now_ms: u64) -> Vec<Value> {
    let spec = service.spec.clone().unwrap_or_default();
    let ports: Vec<String> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let protocol = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(node) => format!("{}:{node}/{protocol}", p.port),
                None => format!("{}/{protocol}", p.port),
            }
        })
        .collect();
    vec![
        name(&service.metadata),
        spec.type_.unwrap_or_else(|| "ClusterIP".to_owned()).into(),
        spec.cluster_ip
            .unwrap_or_else(|| "<none>".to_owned())
            .into(),
        "<none>".into(),
        ports.join(",").into(),
        age(&service.metadata, now_ms),
        selector(spec.selector.as_ref()).into(),
    ]
}

fn name(meta: &ObjectMeta) -> Value {
    meta.name.clone().unwrap_or_default().into()
}

fn age(meta: &ObjectMeta, now_ms: u64) -> Value {
    let then = meta
        .creation_timestamp
        .as_ref()
        .map_or(0, |Time(t)| u64::try_from(t.as_millisecond()).unwrap_or(0));
    human::age(then, now_ms).into()
}

fn selector(selector: Option<&std::collections::BTreeMap<String, String>>) -> String {
    match selector {
        Some(s) if !s.is_empty() => s
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".to_owned(),
    }
}

pub const ENDPOINTS_COLUMNS: [Column; 3] = [
    NAME,
    col(
        "Endpoints",
        "string",
        0,
        "The service's pods: node address and the port each reaches them on.",
    ),
    AGE,
];

/// Kubernetes' ENDPOINTS cell: the first three `ip:port`, then how many more.
pub fn endpoints_row(endpoints: &Endpoints, now_ms: u64) -> Vec<Value> {
    let mut all = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports = subset.ports.clone().unwrap_or_default();
        for address in subset.addresses.iter().flatten() {
            if ports.is_empty() {
                all.push(address.ip.clone());
            }
            for port in &ports {
                all.push(format!("{}:{}", address.ip, port.port));
            }
        }
    }
    let cell = match all.len() {
        0 => "<none>".to_owned(),
        n if n > 3 => format!("{} + {} more...", all[..3].join(","), n - 3),
        _ => all.join(","),
    };
    vec![
        name(&endpoints.metadata),
        cell.into(),
        age(&endpoints.metadata, now_ms),
    ]
}

pub const EVENT_COLUMNS: [Column; 5] = [
    col(
        "Last Seen",
        "string",
        0,
        "Time since the event was last seen.",
    ),
    col("Type", "string", 0, "Normal or Warning."),
    col("Reason", "string", 0, "Why the event happened."),
    col("Object", "string", 0, "The object it is about."),
    col("Message", "string", 0, "What happened."),
];
