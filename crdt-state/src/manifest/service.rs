//! `kind: Service`, in the Kubernetes `v1` form and the 2014 `v1beta1` form:
//!
//! ```yaml
//! apiVersion: v1                      # or, in 2014 (v1beta1):
//! kind: Service                       #   {"id": "hello", "kind": "Service",
//! metadata: {name: hello}             #    "apiVersion": "v1beta1", "port": 8080,
//! spec:                               #    "containerPort": 8080,
//!   type: NodePort                    #    "selector": {"name": "hello"}}
//!   selector: {app: hello}
//!   ports:
//!   - {name: http, port: 8080, targetPort: http, nodePort: 30080}
//! ```
//!
//! Only TCP is served. A node port must lie in [`NODE_PORT_RANGE`]; when a
//! NodePort service gives none, the peer that applies it allocates one.

use std::collections::BTreeMap;

use super::annotations;
use super::fields::{
    Ctx, Schema, index, join, map_fields, optional, required, sequence, string, string_map,
};
use super::tree::{Node, Value};
use super::validate;
use crate::service::{
    NODE_PORT_RANGE, ProxyProtocol, ServiceBody, ServicePort, ServiceSpec, ServiceType, TargetPort,
};
use crate::spec::{Labels, Protocol};

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
        "selfLink",
        "managedFields",
    ],
};

const SPEC: Schema = Schema {
    known: &["type", "selector", "ports"],
    unsupported: &[
        "externalIPs",
        "externalName",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "healthCheckNodePort",
        "publishNotReadyAddresses",
        "sessionAffinityConfig",
        "allocateLoadBalancerNodePorts",
        "loadBalancerClass",
    ],
    ignored: &[
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "sessionAffinity",
        "externalTrafficPolicy",
        "internalTrafficPolicy",
        "trafficDistribution",
    ],
};

const PORT: Schema = Schema {
    known: &["name", "port", "targetPort", "protocol", "nodePort"],
    unsupported: &[],
    ignored: &["appProtocol"],
};

const V1BETA1: Schema = Schema {
    known: &[
        "id",
        "kind",
        "apiVersion",
        "port",
        "containerPort",
        "selector",
        "labels",
        "protocol",
    ],
    unsupported: &["createExternalLoadBalancer", "publicIPs"],
    ignored: &[
        "portalIP",
        "proxyPort",
        "sessionAffinity",
        "creationTimestamp",
        "selfLink",
        "resourceVersion",
        "uid",
        "namespace",
        "annotations",
    ],
};

/// Reads a v1 Service; `None` when the document has problems.
pub(crate) fn parse_v1(ctx: &mut Ctx, doc: &Node, base: &str) -> Option<ServiceSpec> {
    let errors_before = ctx.error_count();
    map_fields(ctx, doc, base, &TOP)?;
    let (name, proxy_protocol) = metadata(ctx, doc, base);
    let spec_path = join(base, "spec");
    let spec = required(ctx, doc, base, "spec", "add spec with selector and ports")?;
    map_fields(ctx, spec, &spec_path, &SPEC)?;
    let service_type = optional(spec, "type")
        .and_then(|n| service_type(ctx, n, &join(&spec_path, "type")))
        .unwrap_or_default();
    let selector = selector(ctx, spec, &spec_path);
    let ports_path = join(&spec_path, "ports");
    let mut ports = Vec::new();
    let mut lines = Vec::new();
    match optional(spec, "ports") {
        Some(list) => {
            for (i, item) in sequence(ctx, list, &ports_path)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                if let Some(p) = port(ctx, item, &index(&ports_path, i), service_type) {
                    ports.push(p);
                    lines.push((index(&ports_path, i), item.line));
                }
            }
        }
        None => ctx.error(
            &ports_path,
            spec.line,
            "a service needs ports; add spec.ports with at least one {port, targetPort}",
        ),
    }
    check_ports(ctx, &ports, &lines);
    if ctx.error_count() > errors_before {
        return None;
    }
    Some(ServiceSpec {
        name: name?,
        body: ServiceBody {
            selector,
            ports,
            service_type,
            proxy_protocol,
            last_applied: None,
        },
    })
}

/// Reads a 2014 v1beta1 Service: one port, `containerPort` its target.
pub(crate) fn parse_v1beta1(ctx: &mut Ctx, doc: &Node, base: &str) -> Option<ServiceSpec> {
    let errors_before = ctx.error_count();
    map_fields(ctx, doc, base, &V1BETA1)?;
    let id_path = join(base, "id");
    let name = required(ctx, doc, base, "id", "add an id, e.g. \"hello\"").and_then(|node| {
        let id = string(ctx, node, &id_path)?;
        let name = validate::normalize_legacy_id(&id);
        if let Err(why) = validate::dns1123_label(&name) {
            ctx.error(&id_path, node.line, format!("id {why}"));
            return None;
        }
        if name != id {
            let msg = format!("id {id:?} is not a DNS-1123 label; using the name {name:?}");
            ctx.warn(&id_path, node.line, msg);
        }
        Some(name)
    });
    if let Some(labels) = optional(doc, "labels") {
        string_map(ctx, labels, &join(base, "labels"), true);
    }
    let selector = selector(ctx, doc, base);
    let port = required(ctx, doc, base, "port", "add the service's port, e.g. 8080")
        .and_then(|n| port_number(ctx, n, &join(base, "port")));
    let target_port = match optional(doc, "containerPort") {
        Some(n) => target_port(ctx, n, &join(base, "containerPort")),
        None => port.map(TargetPort::Number),
    };
    let protocol = protocol(ctx, doc, base);
    if ctx.error_count() > errors_before {
        return None;
    }
    Some(ServiceSpec {
        name: name?,
        body: ServiceBody {
            selector,
            ports: vec![ServicePort {
                name: None,
                port: port?,
                target_port: target_port?,
                protocol: protocol?,
                node_port: None,
            }],
            service_type: ServiceType::ClusterIP,
            proxy_protocol: ProxyProtocol::Off,
            last_applied: None,
        },
    })
}

/// The service's name and what its annotations ask of the load balancer.
fn metadata(ctx: &mut Ctx, doc: &Node, base: &str) -> (Option<String>, ProxyProtocol) {
    let path = join(base, "metadata");
    let what = "add metadata.name, e.g. \"hello\"";
    let Some(meta) = required(ctx, doc, base, "metadata", what) else {
        return (None, ProxyProtocol::Off);
    };
    if map_fields(ctx, meta, &path, &METADATA).is_none() {
        return (None, ProxyProtocol::Off);
    }
    if let Some(labels) = optional(meta, "labels") {
        string_map(ctx, labels, &join(&path, "labels"), true);
    }
    let proxy_protocol = optional(meta, "annotations")
        .map(|a| annotations::parse_service(ctx, a, &join(&path, "annotations")))
        .unwrap_or_default();
    (name(ctx, meta, &path, what), proxy_protocol)
}

fn name(ctx: &mut Ctx, meta: &Node, path: &str, what: &str) -> Option<String> {
    let name_node = required(ctx, meta, path, "name", what)?;
    let name_path = join(path, "name");
    let name = string(ctx, name_node, &name_path)?;
    if let Err(why) = validate::dns1123_label(&name) {
        ctx.error(&name_path, name_node.line, format!("name {why}"));
        return None;
    }
    Some(name)
}

/// `selector`: a plain label map; absent or empty matches no pod.
fn selector(ctx: &mut Ctx, parent: &Node, parent_path: &str) -> Labels {
    let path = join(parent_path, "selector");
    match optional(parent, "selector") {
        Some(node) if node.get("matchLabels").is_some() => {
            ctx.error(
                &path,
                node.line,
                "a Service selector is a plain label map (no matchLabels); write the labels directly under selector",
            );
            Labels::new()
        }
        Some(node) => string_map(ctx, node, &path, true),
        None => {
            let msg = "no selector: the service matches no pods and has no endpoints; add selector with the pods' labels";
            ctx.warn(&path, parent.line, msg);
            Labels::new()
        }
    }
}

fn service_type(ctx: &mut Ctx, node: &Node, path: &str) -> Option<ServiceType> {
    match node.as_str() {
        Some("ClusterIP") => Some(ServiceType::ClusterIP),
        Some("NodePort") => Some(ServiceType::NodePort),
        _ => {
            let msg = format!(
                "type {node} is not supported; use ClusterIP (reached from pods) or NodePort (also at every peer's address)"
            );
            ctx.error(path, node.line, msg);
            None
        }
    }
}

fn port(ctx: &mut Ctx, item: &Node, path: &str, service_type: ServiceType) -> Option<ServicePort> {
    let errors_before = ctx.error_count();
    map_fields(ctx, item, path, &PORT)?;
    let name = optional(item, "name").and_then(|n| {
        let name_path = join(path, "name");
        let name = string(ctx, n, &name_path)?;
        if let Err(why) = validate::dns1123_label(&name) {
            ctx.error(&name_path, n.line, format!("port name {why}"));
        }
        Some(name)
    });
    let port = required(
        ctx,
        item,
        path,
        "port",
        "give the service's port, e.g. 8080",
    )
    .and_then(|n| port_number(ctx, n, &join(path, "port")));
    let target_port = match optional(item, "targetPort") {
        Some(n) => target_port(ctx, n, &join(path, "targetPort")),
        // Kubernetes: the target defaults to the service port.
        None => port.map(TargetPort::Number),
    };
    let protocol = protocol(ctx, item, path);
    let node_port = optional(item, "nodePort").and_then(|n| {
        let node_port_path = join(path, "nodePort");
        if n.value == Value::Int(0) {
            return None; // Kubernetes' "allocate one"
        }
        if service_type != ServiceType::NodePort {
            let msg =
                "nodePort is only allowed with `type: NodePort`; set the type or remove nodePort";
            ctx.error(&node_port_path, n.line, msg);
            return None;
        }
        let (lo, hi) = (*NODE_PORT_RANGE.start(), *NODE_PORT_RANGE.end());
        let hint = format!("node ports are {lo} to {hi}; remove nodePort to have one allocated");
        let p = super::fields::integer(ctx, n, &node_port_path, lo.into(), hi.into(), &hint)?;
        u16::try_from(p).ok()
    });
    if ctx.error_count() > errors_before {
        return None;
    }
    Some(ServicePort {
        name,
        port: port?,
        target_port: target_port?,
        protocol: protocol?,
        node_port,
    })
}

fn port_number(ctx: &mut Ctx, node: &Node, path: &str) -> Option<u16> {
    super::fields::integer(ctx, node, path, 1, 65535, "ports are 1 to 65535")
        .and_then(|p| u16::try_from(p).ok())
}

/// A number, or the name of a container port (`http`).
fn target_port(ctx: &mut Ctx, node: &Node, path: &str) -> Option<TargetPort> {
    match &node.value {
        Value::Str(text) => {
            if let Ok(number) = text.parse::<u16>() {
                if number == 0 {
                    ctx.error(path, node.line, "0 is out of range: ports are 1 to 65535");
                    return None;
                }
                return Some(TargetPort::Number(number));
            }
            let valid = text.len() <= 15
                && text.chars().any(|c| c.is_ascii_lowercase())
                && validate::dns1123_label(text).is_ok();
            if !valid {
                let msg = format!(
                    "{text:?} is neither a port number nor a container port name (at most 15 lowercase letters, digits and '-')"
                );
                ctx.error(path, node.line, msg);
                return None;
            }
            Some(TargetPort::Name(text.clone()))
        }
        _ => port_number(ctx, node, path).map(TargetPort::Number),
    }
}

fn protocol(ctx: &mut Ctx, parent: &Node, parent_path: &str) -> Option<Protocol> {
    let Some(node) = optional(parent, "protocol") else {
        return Some(Protocol::Tcp);
    };
    let path = join(parent_path, "protocol");
    let text = string(ctx, node, &path)?;
    if text.eq_ignore_ascii_case("TCP") {
        return Some(Protocol::Tcp);
    }
    let msg = format!(
        "protocol {text:?} is not supported for services: Shoal's load balancers forward TCP only; use TCP"
    );
    ctx.error(&path, node.line, msg);
    None
}

/// Within one service: at least one port, names unique and present when
/// there are several, and no listening port (port or node port) twice.
fn check_ports(ctx: &mut Ctx, ports: &[ServicePort], sources: &[(String, Option<usize>)]) {
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut listening: BTreeMap<u16, String> = BTreeMap::new();
    for (p, (path, line)) in ports.iter().zip(sources) {
        match &p.name {
            Some(name) => {
                if let Some(other) = names.insert(name, path) {
                    let msg =
                        format!("duplicate port name {name:?} (also {other}); name each port once");
                    ctx.error(&join(path, "name"), *line, msg);
                }
            }
            None if ports.len() > 1 => {
                let msg = "a service with several ports must name each of them";
                ctx.error(&join(path, "name"), *line, msg);
            }
            None => {}
        }
        let listens = [("port", Some(p.port)), ("nodePort", p.node_port)];
        for (field, number) in listens {
            let Some(number) = number else { continue };
            let here = join(path, field);
            if let Some(other) = listening.insert(number, here.clone()) {
                let msg = format!(
                    "port {number} is used twice (also {other}); every port and node port of a service must differ"
                );
                ctx.error(&here, *line, msg);
            }
        }
    }
}
