//! Rules that a whole field or several fields together must satisfy: names,
//! label syntax, selector vs. labels, and conflicts between containers.

use std::collections::BTreeMap;

use super::fields::{Ctx, index, join};
use crate::spec::{ContainerSpec, Labels, Protocol};

/// Most replicas one RC may ask for: more is a typo, not a plan.
pub const MAX_REPLICAS: u32 = 100_000;

/// The rule for a replica count that comes without a manifest (`scale`
/// through the API or a peer command): at most [`MAX_REPLICAS`]. One
/// message for every door, so a user sees the same refusal everywhere.
pub fn replicas(replicas: u32) -> Result<(), String> {
    if replicas > MAX_REPLICAS {
        return Err(format!(
            "replicas must be between 0 and {MAX_REPLICAS}, not {replicas}"
        ));
    }
    Ok(())
}

/// Checks a DNS-1123 label (RFC 1123): what RC and container names must be.
pub fn dns1123_label(name: &str) -> Result<(), String> {
    let fix = "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. \"hello-controller\")";
    if name.is_empty() {
        return Err(format!("must not be empty; {fix}"));
    }
    if name.len() > 63 {
        return Err(format!("{name:?} is {} characters long; {fix}", name.len()));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let valid_ends = !name.starts_with('-') && !name.ends_with('-');
    if !valid_chars || !valid_ends {
        return Err(format!("{name:?} is not a valid DNS-1123 label; {fix}"));
    }
    Ok(())
}

/// Turns a 2014-style id into a DNS-1123 label: `helloController` →
/// `hello-controller`, `my_app` → `my-app`. The result may still be invalid
/// (then `dns1123_label` says why).
pub fn normalize_legacy_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 4);
    let mut prev_lower_or_digit = false;
    for c in id.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower_or_digit {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower_or_digit = false;
        } else if c == '_' || c == '.' || c == ' ' {
            out.push('-');
            prev_lower_or_digit = false;
        } else {
            out.push(c);
            prev_lower_or_digit = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

/// Label keys: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|part| dns1123_label(part).is_ok());
        if !ok {
            return Err(format!(
                "label key {key:?} has an invalid prefix; a prefix is a lowercase DNS name like \"example.com\""
            ));
        }
    }
    label_name(name).map_err(|why| format!("label key {key:?} {why}"))
}

/// Label values: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting
/// and ending alphanumeric.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    label_name(value).map_err(|why| format!("label value {value:?} {why}"))
}

fn label_name(name: &str) -> Result<(), String> {
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !chars_ok || !ends_ok {
        return Err("must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

/// `{app: web, tier: fe}`: how label sets appear in messages.
pub fn show_labels(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// An RC's selector in either manifest version: the one written (with its
/// line) or, absent or empty, the template's labels, as Kubernetes defaults
/// it (reported at `spec_line`); either way it must pass
/// [`selector_matches`].
pub(crate) fn rc_selector(
    ctx: &mut Ctx,
    written: Option<(Labels, Option<usize>)>,
    template_labels: &Labels,
    spec_line: Option<usize>,
    selector_path: &str,
    labels_path: &str,
) -> Labels {
    let (selector, line) = match written {
        Some((s, line)) if !s.is_empty() => (s, line),
        _ => (template_labels.clone(), spec_line),
    };
    selector_matches(
        ctx,
        &selector,
        template_labels,
        selector_path,
        labels_path,
        line,
    );
    selector
}

/// The Kubernetes API server's rule: a non-empty selector whose every
/// key/value appears in the template labels, or the RC would never see its pods.
pub(crate) fn selector_matches(
    ctx: &mut Ctx,
    selector: &Labels,
    labels: &Labels,
    selector_path: &str,
    labels_path: &str,
    line: Option<usize>,
) {
    if selector.is_empty() {
        ctx.error(
            selector_path,
            line,
            format!("selector is empty; give the pods labels in {labels_path} (the selector defaults to them)"),
        );
        return;
    }
    let missing: Labels = selector
        .iter()
        .filter(|(k, v)| labels.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !missing.is_empty() {
        let partly = if missing.len() < selector.len() {
            format!(" (missing {})", show_labels(&missing))
        } else {
            String::new()
        };
        ctx.error(
            selector_path,
            line,
            format!(
                "selector {} does not match template labels {}{partly}; make every selector label appear in {labels_path}",
                show_labels(selector),
                show_labels(labels),
            ),
        );
    }
}

/// A container as read, with where it and each port it kept came from, so
/// that pod-level errors name source indices even when a bad port was dropped.
#[derive(Debug, Clone)]
pub(crate) struct ReadContainer {
    pub spec: ContainerSpec,
    pub line: Option<usize>,
    /// `(index in the source list, line)` of each entry of `spec.ports`.
    pub port_sources: Vec<(usize, Option<usize>)>,
}

/// Conflicts between the containers of one pod, which share a network
/// namespace: duplicate names, and the same port (or host port) twice.
pub(crate) fn pod_containers(
    ctx: &mut Ctx,
    containers: &[ReadContainer],
    containers_path: &str,
    line: Option<usize>,
) {
    if containers.is_empty() {
        ctx.error(
            containers_path,
            line,
            "a pod needs at least one container; add one with a name and an image",
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ports: BTreeMap<(u16, Protocol), String> = BTreeMap::new();
    let mut host_ports: BTreeMap<(u16, Protocol), String> = BTreeMap::new();
    for (i, read) in containers.iter().enumerate() {
        let c = &read.spec;
        let path = index(containers_path, i);
        let line = read.line.or(line);
        if let Some(first) = names.insert(&c.name, i) {
            ctx.error(
                &join(&path, "name"),
                line,
                format!(
                    "duplicate container name {:?} (also {}); give each container its own name",
                    c.name,
                    index(containers_path, first)
                ),
            );
        }
        for (j, p) in c.ports.iter().enumerate() {
            let (source, port_line) = read.port_sources.get(j).copied().unwrap_or((j, None));
            let port_path = index(&join(&path, "ports"), source);
            let line = port_line.or(line);
            let key = (p.container_port, p.protocol);
            if let Some(other) = ports.insert(key, port_path.clone()) {
                ctx.error(
                    &join(&port_path, "containerPort"),
                    line,
                    format!(
                        "duplicate port {}/{} (also {other}); containers of a pod share one network, so each port can be used once",
                        p.container_port,
                        p.protocol.as_str()
                    ),
                );
            }
            if let Some(host) = p.host_port
                && let Some(other) = host_ports.insert((host, p.protocol), port_path.clone())
            {
                ctx.error(
                    &join(&port_path, "hostPort"),
                    line,
                    format!(
                        "duplicate host port {host}/{} (also {other}); each host port can be bound once per node",
                        p.protocol.as_str()
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PortSpec, Resources};

    #[test]
    fn dns1123_labels() {
        for ok in [
            "hello",
            "hello-controller",
            "a",
            "web-1",
            "1web",
            &"a".repeat(63),
        ] {
            assert!(dns1123_label(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Hello",
            "helloController",
            "-web",
            "web-",
            "we_b",
            "web.app",
            &"a".repeat(64),
        ] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_ids_normalize_to_kebab_case() {
        assert_eq!(normalize_legacy_id("helloController"), "hello-controller");
        assert_eq!(normalize_legacy_id("HelloController"), "hello-controller");
        assert_eq!(normalize_legacy_id("my_app2Server"), "my-app2-server");
        assert_eq!(normalize_legacy_id("hello"), "hello");
        assert_eq!(normalize_legacy_id("webAPI"), "web-api");
    }

    #[test]
    fn label_syntax() {
        assert!(label_key("app").is_ok());
        assert!(label_key("shoal.io/role").is_ok());
        assert!(label_key("Bad Key").is_err());
        assert!(label_key("/x").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x-3").is_ok());
        assert!(label_value("-x").is_err());
        assert!(label_value(&"v".repeat(64)).is_err());
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_must_be_a_subset_of_template_labels() {
        let mut ctx = Ctx::new(1);
        let template = labels(&[("app", "web"), ("tier", "fe")]);
        selector_matches(
            &mut ctx,
            &labels(&[("app", "web")]),
            &template,
            "spec.selector",
            "t",
            None,
        );
        assert!(ctx.problems.is_empty());
        selector_matches(
            &mut ctx,
            &labels(&[("app", "api")]),
            &template,
            "spec.selector",
            "t",
            Some(4),
        );
        selector_matches(
            &mut ctx,
            &Labels::new(),
            &template,
            "spec.selector",
            "t",
            None,
        );
        assert_eq!(ctx.problems.len(), 2);
        let msg = &ctx.problems[0].0.message;
        assert!(msg.contains("selector {app: api} does not match"), "{msg}");
        assert_eq!(ctx.problems[0].0.line, Some(4));
        assert!(ctx.problems[1].0.message.contains("empty"));
    }

    fn container(name: &str, ports: &[(u16, Option<u16>)]) -> ReadContainer {
        let spec = ContainerSpec {
            name: name.into(),
            image: "img".into(),
            command: vec![],
            args: vec![],
            env: vec![],
            ports: ports
                .iter()
                .map(|&(container_port, host_port)| PortSpec {
                    container_port,
                    host_port,
                    protocol: Protocol::Tcp,
                    name: None,
                })
                .collect(),
            resources: Resources::default(),
            readiness_probe: None,
            image_pull_policy: crate::spec::PullPolicy::IfNotPresent,
        };
        ReadContainer {
            port_sources: (0..ports.len()).map(|j| (j, None)).collect(),
            spec,
            line: None,
        }
    }

    #[test]
    fn containers_of_a_pod_must_not_collide() {
        let mut ctx = Ctx::new(1);
        let cs = [
            container("web", &[(80, Some(8080))]),
            container("web", &[(80, None), (81, Some(8080))]),
        ];
        pod_containers(&mut ctx, &cs, "c", None);
        let paths: Vec<&str> = ctx.problems.iter().map(|p| p.0.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "c[1].name",
                "c[1].ports[0].containerPort",
                "c[1].ports[1].hostPort"
            ]
        );
    }

    #[test]
    fn a_pod_needs_a_container() {
        let mut ctx = Ctx::new(1);
        pod_containers(&mut ctx, &[], "spec.template.spec.containers", Some(9));
        assert_eq!(ctx.problems[0].0.path, "spec.template.spec.containers");
    }
}
