//! One container of a pod template, in either manifest form.
//!
//! The two forms share names, images, ports and env; they differ in where
//! resources live (`cpu`/`memory` on the container in v1beta1, quantities
//! under `resources.requests` in v1), in what `command` means (v1beta1's
//! `command` replaced the image's CMD, which is v1's `args`), and in probes
//! (v1 only).

use std::collections::BTreeMap;

use super::fields::{
    Ctx, Schema, index, integer, join, map_fields, optional, required, sequence, string,
    string_list, u32_field,
};
use super::quantity;
use super::tree::{Node, Value};
use super::validate::ReadContainer;
use crate::image_ref;
use crate::spec::{
    ContainerSpec, EnvVar, PortName, PortSpec, Probe, ProbeAction, Protocol, PullPolicy, Resources,
};

/// Which manifest form the container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    V1beta1,
    V1,
}

const V1_CONTAINER: Schema = Schema {
    known: &[
        "name",
        "image",
        "command",
        "args",
        "env",
        "ports",
        "resources",
        "readinessProbe",
        "imagePullPolicy",
    ],
    unsupported: &[
        "volumeMounts",
        "volumeDevices",
        "securityContext",
        "livenessProbe",
        "startupProbe",
        "lifecycle",
        "workingDir",
        "envFrom",
        "stdin",
        "stdinOnce",
        "tty",
        "resizePolicy",
        "restartPolicy",
    ],
    ignored: &["terminationMessagePath", "terminationMessagePolicy"],
};

const V1BETA1_CONTAINER: Schema = Schema {
    known: &[
        "name",
        "image",
        "command",
        "ports",
        "env",
        "cpu",
        "memory",
        "imagePullPolicy",
    ],
    unsupported: &[
        "volumeMounts",
        "workingDir",
        "livenessProbe",
        "privileged",
        "lifecycle",
    ],
    ignored: &["terminationMessagePath"],
};

const PORT: Schema = Schema {
    known: &["containerPort", "hostPort", "protocol", "name"],
    unsupported: &["hostIP"],
    ignored: &[],
};

const ENV: Schema = Schema {
    known: &["name", "value"],
    unsupported: &["valueFrom"],
    ignored: &[],
};

const RESOURCES: Schema = Schema {
    known: &["requests", "limits"],
    unsupported: &["claims"],
    ignored: &[],
};

const PROBE: Schema = Schema {
    known: &[
        "httpGet",
        "tcpSocket",
        "exec",
        "initialDelaySeconds",
        "periodSeconds",
        "timeoutSeconds",
        "failureThreshold",
        "successThreshold",
    ],
    unsupported: &["grpc"],
    ignored: &["terminationGracePeriodSeconds"],
};

const HTTP_GET: Schema = Schema {
    known: &["path", "port", "scheme"],
    unsupported: &["host", "httpHeaders"],
    ignored: &[],
};

const TCP_SOCKET: Schema = Schema {
    known: &["port"],
    unsupported: &["host"],
    ignored: &[],
};

const EXEC: Schema = Schema {
    known: &["command"],
    unsupported: &[],
    ignored: &[],
};

/// Longest probe delay/period/timeout we accept: a day.
const MAX_PROBE_SECS: u32 = 86_400;

/// Reads one container. Always returns a value (with placeholders where a
/// field was bad) so that pod-level checks still run; the problems are in `ctx`.
pub(crate) fn parse(ctx: &mut Ctx, node: &Node, path: &str, form: Form) -> ReadContainer {
    let schema = match form {
        Form::V1 => &V1_CONTAINER,
        Form::V1beta1 => &V1BETA1_CONTAINER,
    };
    let mut c = ContainerSpec {
        name: String::new(),
        image: String::new(),
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        ports: Vec::new(),
        resources: Resources::default(),
        readiness_probe: None,
        image_pull_policy: PullPolicy::IfNotPresent,
    };
    let mut read = ReadContainer {
        spec: c.clone(),
        line: node.line,
        port_sources: Vec::new(),
    };
    if map_fields(ctx, node, path, schema).is_none() {
        return read;
    }
    if let Some(n) = required(ctx, node, path, "name", "name the container, e.g. \"web\"") {
        let name_path = join(path, "name");
        if let Some(name) = string(ctx, n, &name_path) {
            if let Err(why) = super::validate::dns1123_label(&name) {
                ctx.error(&name_path, n.line, format!("container name {why}"));
            }
            c.name = name;
        }
    }
    c.image = image(ctx, node, path);
    c.image_pull_policy = pull_policy(ctx, node, path, &c.image);
    let mut port_names = BTreeMap::new();
    if let Some(n) = optional(node, "ports") {
        (c.ports, read.port_sources) = ports(ctx, n, &join(path, "ports"), &mut port_names);
    }
    if let Some(n) = optional(node, "env") {
        c.env = env(ctx, n, &join(path, "env"));
    }
    match form {
        Form::V1 => {
            if let Some(n) = optional(node, "command") {
                c.command = string_list(ctx, n, &join(path, "command"));
            }
            if let Some(n) = optional(node, "args") {
                c.args = string_list(ctx, n, &join(path, "args"));
            }
            if let Some(n) = optional(node, "resources") {
                c.resources = resources(ctx, n, &join(path, "resources"));
            }
            if let Some(n) = optional(node, "readinessProbe") {
                c.readiness_probe = probe(ctx, n, &join(path, "readinessProbe"), &port_names);
            }
        }
        Form::V1beta1 => {
            if let Some(n) = optional(node, "command") {
                c.args = string_list(ctx, n, &join(path, "command"));
            }
            let cpu = u32_field(ctx, node, path, "cpu", 0, 0..=u32::MAX, " millicores");
            c.resources.cpu_millis = u64::from(cpu);
            if let Some(n) = optional(node, "memory") {
                let limit = i128::from(u64::MAX);
                if let Some(bytes) = integer(
                    ctx,
                    n,
                    &join(path, "memory"),
                    0,
                    limit,
                    "memory is in bytes",
                ) {
                    c.resources.memory_bytes = u64::try_from(bytes).unwrap_or_default();
                }
            }
        }
    }
    read.spec = c;
    read
}

fn image(ctx: &mut Ctx, node: &Node, path: &str) -> String {
    let what = "set the image to run, e.g. \"shoal-test/hello:1.0\"";
    let Some(n) = required(ctx, node, path, "image", what) else {
        return String::new();
    };
    let image_path = join(path, "image");
    let image = string(ctx, n, &image_path).unwrap_or_default();
    if image.trim().is_empty() {
        ctx.error(&image_path, n.line, format!("image is empty; {what}"));
    } else if let Err(why) = image_ref::parse(&image) {
        ctx.error(
            &image_path,
            n.line,
            format!("image {image:?} is not a valid image reference: {why}"),
        );
    }
    image
}

/// `imagePullPolicy`, or Kubernetes' default for the image when absent.
fn pull_policy(ctx: &mut Ctx, node: &Node, path: &str, image: &str) -> PullPolicy {
    let default = PullPolicy::default_for(image);
    let Some(n) = optional(node, "imagePullPolicy") else {
        return default;
    };
    let policy_path = join(path, "imagePullPolicy");
    let Some(text) = string(ctx, n, &policy_path) else {
        return default;
    };
    PullPolicy::from_name(&text).unwrap_or_else(|| {
        ctx.error(
            &policy_path,
            n.line,
            format!(
                "imagePullPolicy {text:?} is not supported; use one of {}",
                PullPolicy::NAMES.join(", ")
            ),
        );
        default
    })
}

/// A port number in 1..=65535.
fn port_number(ctx: &mut Ctx, node: &Node, path: &str) -> Option<u16> {
    integer(ctx, node, path, 1, 65535, "ports are 1 to 65535").and_then(|p| u16::try_from(p).ok())
}

fn ports(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    names: &mut BTreeMap<String, u16>,
) -> (Vec<PortSpec>, Vec<(usize, Option<usize>)>) {
    let mut out = Vec::new();
    let mut sources = Vec::new();
    for (i, item) in sequence(ctx, node, path)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let p = index(path, i);
        if map_fields(ctx, item, &p, &PORT).is_none() {
            continue;
        }
        let what = "set the port the container listens on, e.g. 80";
        let container_port = required(ctx, item, &p, "containerPort", what)
            .and_then(|n| port_number(ctx, n, &join(&p, "containerPort")));
        let host_port = match optional(item, "hostPort") {
            // 0 is Kubernetes' "no host port".
            Some(n) if n.value == Value::Int(0) => None,
            Some(n) => port_number(ctx, n, &join(&p, "hostPort")),
            None => None,
        };
        let protocol = optional(item, "protocol").map_or(Some(Protocol::Tcp), |n| {
            let proto_path = join(&p, "protocol");
            let text = string(ctx, n, &proto_path)?;
            match text.to_ascii_uppercase().as_str() {
                "TCP" => Some(Protocol::Tcp),
                "UDP" => Some(Protocol::Udp),
                _ => {
                    ctx.error(
                        &proto_path,
                        n.line,
                        format!("protocol {text:?} is not supported; use TCP or UDP"),
                    );
                    None
                }
            }
        });
        let mut port_name = None;
        if let Some(n) = optional(item, "name") {
            let name_path = join(&p, "name");
            if let Some(name) = string(ctx, n, &name_path) {
                let valid = !name.is_empty()
                    && name.len() <= 15
                    && name.chars().any(|c| c.is_ascii_lowercase())
                    && super::validate::dns1123_label(&name).is_ok();
                if !valid {
                    ctx.error(
                        &name_path,
                        n.line,
                        format!("port name {name:?} is invalid; use at most 15 lowercase letters, digits and '-', e.g. \"http\""),
                    );
                } else if let Some(port) = container_port
                    && names.insert(name.clone(), port).is_some()
                {
                    ctx.error(
                        &name_path,
                        n.line,
                        format!("duplicate port name {name:?}; name each port once"),
                    );
                } else {
                    port_name = PortName::new(&name);
                }
            }
        }
        if let (Some(container_port), Some(protocol)) = (container_port, protocol) {
            out.push(PortSpec {
                container_port,
                host_port,
                protocol,
                name: port_name,
            });
            sources.push((i, item.line));
        }
    }
    (out, sources)
}

fn env(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<EnvVar> {
    let mut out: Vec<EnvVar> = Vec::new();
    for (i, item) in sequence(ctx, node, path)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let p = index(path, i);
        if map_fields(ctx, item, &p, &ENV).is_none() {
            continue;
        }
        let Some(name) = required(ctx, item, &p, "name", "name the variable")
            .and_then(|n| string(ctx, n, &join(&p, "name")))
        else {
            continue;
        };
        if name.is_empty() || name.contains('=') {
            ctx.error(
                &join(&p, "name"),
                item.line,
                format!("environment variable name {name:?} must be non-empty and contain no '='"),
            );
        }
        let value = optional(item, "value")
            .and_then(|n| string(ctx, n, &join(&p, "value")))
            .unwrap_or_default();
        if out.iter().any(|e| e.name == name) {
            ctx.warn(
                &join(&p, "name"),
                item.line,
                format!("environment variable {name:?} is set twice; the last value wins"),
            );
            out.retain(|e| e.name != name);
        }
        out.push(EnvVar { name, value });
    }
    out
}

fn resources(ctx: &mut Ctx, node: &Node, path: &str) -> Resources {
    let mut out = Resources::default();
    if map_fields(ctx, node, path, &RESOURCES).is_none() {
        return out;
    }
    if let Some(limits) = optional(node, "limits") {
        ctx.warn(
            &join(path, "limits"),
            limits.line,
            "limits are not enforced by Shoal; ignored (placement uses requests)",
        );
    }
    let Some(requests) = optional(node, "requests") else {
        return out;
    };
    let req_path = join(path, "requests");
    let Value::Map(entries) = &requests.value else {
        ctx.error(
            &req_path,
            requests.line,
            "must be a mapping like {cpu: 100m, memory: 64Mi}",
        );
        return out;
    };
    for (key, value) in entries {
        let key_path = join(&req_path, key);
        let text = match &value.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            other => {
                ctx.error(
                    &key_path,
                    value.line,
                    format!(
                        "must be a quantity like 100m or 64Mi, got {}",
                        other.kind_name()
                    ),
                );
                continue;
            }
        };
        let parsed = match key.as_str() {
            "cpu" => quantity::parse_cpu_millis(&text).map(|v| out.cpu_millis = v),
            "memory" => quantity::parse_memory_bytes(&text).map(|v| out.memory_bytes = v),
            "ephemeral-storage" => {
                ctx.warn(
                    &key_path,
                    value.line,
                    "ignored: Shoal places by cpu and memory only",
                );
                Ok(())
            }
            _ => Err(format!(
                "resource {key:?} is not supported; Shoal places by cpu and memory only, remove it"
            )),
        };
        if let Err(why) = parsed {
            ctx.error(&key_path, value.line, why);
        }
    }
    out
}

fn probe(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    port_names: &BTreeMap<String, u16>,
) -> Option<Probe> {
    map_fields(ctx, node, path, &PROBE)?;
    let handlers: Vec<&str> = ["httpGet", "tcpSocket", "exec"]
        .into_iter()
        .filter(|k| optional(node, k).is_some())
        .collect();
    if handlers.len() != 1 {
        let found = if handlers.is_empty() {
            "none".to_owned()
        } else {
            handlers.join(" and ")
        };
        ctx.error(
            path,
            node.line,
            format!("a probe needs exactly one of httpGet, tcpSocket or exec (found {found})"),
        );
        return None;
    }
    if let Some(n) = optional(node, "successThreshold")
        && n.value != Value::Int(1)
    {
        ctx.error(
            &join(path, "successThreshold"),
            n.line,
            "only successThreshold 1 is supported; remove it",
        );
    }
    let handler_path = join(path, handlers[0]);
    let handler = optional(node, handlers[0])?;
    let action = match handlers[0] {
        "httpGet" => {
            map_fields(ctx, handler, &handler_path, &HTTP_GET)?;
            if let Some(n) = optional(handler, "scheme") {
                let scheme = string(ctx, n, &join(&handler_path, "scheme"));
                if scheme.as_deref() != Some("HTTP") {
                    ctx.error(
                        &join(&handler_path, "scheme"),
                        n.line,
                        "only HTTP probes are supported; remove scheme or set it to HTTP",
                    );
                }
            }
            let path_value = optional(handler, "path")
                .and_then(|n| string(ctx, n, &join(&handler_path, "path")))
                .unwrap_or_else(|| "/".to_owned());
            let port = probe_port(ctx, handler, &handler_path, port_names)?;
            ProbeAction::HttpGet {
                path: path_value,
                port,
            }
        }
        "tcpSocket" => {
            map_fields(ctx, handler, &handler_path, &TCP_SOCKET)?;
            ProbeAction::TcpSocket {
                port: probe_port(ctx, handler, &handler_path, port_names)?,
            }
        }
        _ => {
            map_fields(ctx, handler, &handler_path, &EXEC)?;
            let command = required(ctx, handler, &handler_path, "command", "give the command")
                .map(|n| string_list(ctx, n, &join(&handler_path, "command")))?;
            if command.is_empty() {
                ctx.error(
                    &join(&handler_path, "command"),
                    handler.line,
                    "command is empty",
                );
            }
            ProbeAction::Exec { command }
        }
    };
    let mut field = |key: &str, default: u32, min: u32, unit: &str| {
        u32_field(ctx, node, path, key, default, min..=MAX_PROBE_SECS, unit)
    };
    Some(Probe {
        action,
        initial_delay_secs: field("initialDelaySeconds", 0, 0, " seconds"),
        period_secs: field("periodSeconds", 10, 1, " seconds"),
        timeout_secs: field("timeoutSeconds", 1, 1, " seconds"),
        failure_threshold: field("failureThreshold", 3, 1, ""),
    })
}

/// A probe's `port`: a number, or the name of one of the container's ports.
fn probe_port(
    ctx: &mut Ctx,
    handler: &Node,
    handler_path: &str,
    port_names: &BTreeMap<String, u16>,
) -> Option<u16> {
    let n = required(
        ctx,
        handler,
        handler_path,
        "port",
        "give the port to probe, e.g. 80",
    )?;
    let port_path = join(handler_path, "port");
    match &n.value {
        Value::Str(name) => {
            if let Ok(number) = name.parse::<u16>() {
                if number == 0 {
                    ctx.error(
                        &port_path,
                        n.line,
                        "0 is out of range: ports are 1 to 65535",
                    );
                    return None;
                }
                return Some(number);
            }
            let found = port_names.get(name).copied();
            if found.is_none() {
                ctx.error(
                    &port_path,
                    n.line,
                    format!("named port {name:?} is not a port of this container; name it under ports or give the number"),
                );
            }
            found
        }
        _ => port_number(ctx, n, &port_path),
    }
}
