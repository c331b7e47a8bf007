//! An [`RcSpec`] written back as a Kubernetes `v1` ReplicationController,
//! and a [`ServiceSpec`] as a `v1` Service.
//!
//! This is the normalized form `shoal validate` prints and `get rc -o yaml`
//! can reuse: every default made explicit (replicas, selector, probe timings,
//! Shoal's annotations), whatever form the input had. Reading it back with
//! [`super::parse_manifests`] gives the same spec.

use std::collections::BTreeMap;

use serde::Serialize;

use super::annotations::{AUTO_ROLLBACK, MAX_SURGE, MAX_UNAVAILABLE, PARTITION_POLICY};
use crate::service::{ServiceSpec, TargetPort};
use crate::spec::{
    ContainerSpec, Labels, PartitionPolicy, Probe, ProbeAction, RcSpec, RestartPolicy,
};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1ReplicationController {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: V1Metadata,
    pub spec: V1RcSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1Metadata {
    pub name: String,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1RcSpec {
    pub replicas: u32,
    pub selector: Labels,
    pub template: V1PodTemplate,
    pub min_ready_seconds: u32,
    pub progress_deadline_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1PodTemplate {
    pub metadata: V1TemplateMetadata,
    pub spec: V1PodSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1TemplateMetadata {
    pub labels: Labels,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1PodSpec {
    pub containers: Vec<V1Container>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: Labels,
    pub restart_policy: &'static str,
    pub termination_grace_period_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Container {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<V1EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<V1Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<V1Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<V1Probe>,
    pub image_pull_policy: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Port {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub protocol: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1Resources {
    pub requests: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<V1HttpGet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<V1TcpSocket>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<V1Exec>,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1HttpGet {
    pub path: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1TcpSocket {
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1Exec {
    pub command: Vec<String>,
}

/// The v1 object for `spec`.
pub fn to_v1(spec: &RcSpec) -> V1ReplicationController {
    let policy = match spec.partition_policy {
        PartitionPolicy::Available => "available",
        PartitionPolicy::AtMostDeclared => "at-most-declared",
    };
    let mut annotations = BTreeMap::from([
        (
            MAX_SURGE.to_owned(),
            spec.update_strategy.max_surge.to_string(),
        ),
        (
            MAX_UNAVAILABLE.to_owned(),
            spec.update_strategy.max_unavailable.to_string(),
        ),
        (PARTITION_POLICY.to_owned(), policy.to_owned()),
    ]);
    if spec.update_strategy.auto_rollback {
        annotations.insert(AUTO_ROLLBACK.to_owned(), "true".to_owned());
    }
    let t = &spec.template;
    V1ReplicationController {
        api_version: "v1",
        kind: "ReplicationController",
        metadata: V1Metadata {
            name: spec.name.clone(),
            annotations,
        },
        spec: V1RcSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.update_strategy.min_ready_secs,
            progress_deadline_seconds: spec.update_strategy.progress_deadline_secs,
            selector: spec.selector.clone(),
            template: V1PodTemplate {
                metadata: V1TemplateMetadata {
                    labels: t.labels.clone(),
                },
                spec: V1PodSpec {
                    containers: t.containers.iter().map(container).collect(),
                    node_selector: t.node_selector.clone(),
                    restart_policy: match t.restart_policy {
                        RestartPolicy::Always => "Always",
                        RestartPolicy::OnFailure => "OnFailure",
                        RestartPolicy::Never => "Never",
                    },
                    termination_grace_period_seconds: t.termination_grace_period_secs,
                },
            },
        },
    }
}

fn container(c: &ContainerSpec) -> V1Container {
    let mut requests = BTreeMap::new();
    if c.resources.cpu_millis > 0 {
        requests.insert("cpu", format_cpu(c.resources.cpu_millis));
    }
    if c.resources.memory_bytes > 0 {
        requests.insert("memory", format_memory(c.resources.memory_bytes));
    }
    V1Container {
        name: c.name.clone(),
        image: c.image.clone(),
        command: c.command.clone(),
        args: c.args.clone(),
        env: c
            .env
            .iter()
            .map(|e| V1EnvVar {
                name: e.name.clone(),
                value: e.value.clone(),
            })
            .collect(),
        ports: c
            .ports
            .iter()
            .map(|p| V1Port {
                name: p.name.map(|n| n.to_string()),
                container_port: p.container_port,
                host_port: p.host_port,
                protocol: match p.protocol {
                    crate::spec::Protocol::Tcp => "TCP",
                    crate::spec::Protocol::Udp => "UDP",
                },
            })
            .collect(),
        resources: (!requests.is_empty()).then_some(V1Resources { requests }),
        readiness_probe: c.readiness_probe.as_ref().map(probe),
        image_pull_policy: c.image_pull_policy.as_str(),
    }
}

fn probe(p: &Probe) -> V1Probe {
    let mut out = V1Probe {
        http_get: None,
        tcp_socket: None,
        exec: None,
        initial_delay_seconds: p.initial_delay_secs,
        period_seconds: p.period_secs,
        timeout_seconds: p.timeout_secs,
        failure_threshold: p.failure_threshold,
    };
    match &p.action {
        ProbeAction::HttpGet { path, port } => {
            out.http_get = Some(V1HttpGet {
                path: path.clone(),
                port: *port,
            });
        }
        ProbeAction::TcpSocket { port } => out.tcp_socket = Some(V1TcpSocket { port: *port }),
        ProbeAction::Exec { command } => {
            out.exec = Some(V1Exec {
                command: command.clone(),
            });
        }
    }
    out
}

/// `2000` → `"2"`, `500` → `"500m"`.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// `134217728` → `"128Mi"`; bytes that are no whole binary unit stay bytes.
pub fn format_memory(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    for (suffix, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// YAML documents, one per spec, separated by `---`.
pub fn to_yaml(specs: &[RcSpec]) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(&to_v1(spec))?);
    }
    Ok(out)
}

/// One JSON object for a single spec; a `kind: List` for several.
pub fn to_json(specs: &[RcSpec]) -> Result<String, serde_json::Error> {
    let objects: Vec<V1ReplicationController> = specs.iter().map(to_v1).collect();
    if let [single] = objects.as_slice() {
        return serde_json::to_string_pretty(single);
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects,
    }))
}

/// A [`ServiceSpec`] as a Kubernetes `v1` Service.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Service {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: V1ServiceMetadata,
    pub spec: V1ServiceSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1ServiceMetadata {
    pub name: String,
    /// Shoal's settings (`shoal.io/proxy-protocol`), when any is set.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct V1ServiceSpec {
    #[serde(rename = "type")]
    pub service_type: &'static str,
    pub selector: Labels,
    pub ports: Vec<V1ServicePort>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct V1ServicePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    /// A number, or a container port's name.
    pub target_port: serde_json::Value,
    pub protocol: &'static str,
    /// Absent when the applying peer is to allocate one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

pub fn service_to_v1(spec: &ServiceSpec) -> V1Service {
    V1Service {
        api_version: "v1",
        kind: "Service",
        metadata: V1ServiceMetadata {
            name: spec.name.clone(),
            annotations: spec
                .body
                .proxy_protocol
                .as_str()
                .map(|v| (super::PROXY_PROTOCOL.to_owned(), v.to_owned()))
                .into_iter()
                .collect(),
        },
        spec: V1ServiceSpec {
            service_type: spec.body.service_type.as_str(),
            selector: spec.body.selector.clone(),
            ports: spec
                .body
                .ports
                .iter()
                .map(|p| V1ServicePort {
                    name: p.name.clone(),
                    port: p.port,
                    target_port: match &p.target_port {
                        TargetPort::Number(n) => (*n).into(),
                        TargetPort::Name(name) => name.clone().into(),
                    },
                    protocol: "TCP",
                    node_port: p.node_port,
                })
                .collect(),
        },
    }
}

/// Every object of a manifest, normalized: RCs then services, as YAML
/// documents separated by `---`.
pub fn manifests_to_yaml(
    specs: &[RcSpec],
    services: &[ServiceSpec],
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = to_yaml(specs)?;
    for service in services {
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&serde_saphyr::to_string(&service_to_v1(service))?);
    }
    Ok(out)
}

/// Every object of a manifest as JSON: one object alone, else a `kind: List`.
pub fn manifests_to_json(
    specs: &[RcSpec],
    services: &[ServiceSpec],
) -> Result<String, serde_json::Error> {
    if services.is_empty() {
        return to_json(specs);
    }
    let mut objects: Vec<serde_json::Value> = specs
        .iter()
        .map(|s| serde_json::to_value(to_v1(s)))
        .collect::<Result<_, _>>()?;
    for service in services {
        objects.push(serde_json::to_value(service_to_v1(service))?);
    }
    if let [single] = objects.as_slice() {
        return serde_json::to_string_pretty(single);
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_render_in_kubernetes_units() {
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(250), "250m");
        assert_eq!(format_memory(128 << 20), "128Mi");
        assert_eq!(format_memory(1 << 30), "1Gi");
        assert_eq!(format_memory(1_000_000_000), "1000000000");
        assert_eq!(format_memory(1536), "1536");
    }
}
