//! Shoal's own settings, carried as annotations so a manifest stays a valid
//! Kubernetes object. On an RC: `shoal.io/max-surge`,
//! `shoal.io/max-unavailable` (a number or a percentage),
//! `shoal.io/auto-rollback`, `shoal.io/partition-policy`; a v1 manifest may
//! also say the budget as a Kubernetes Deployment does
//! (`spec.strategy.rollingUpdate`), which wins. On a Service:
//! `shoal.io/proxy-protocol` (`"v1"` or `"v2"`).

use super::fields::{Ctx, join, suggestion};
use super::tree::{Node, Value};
use crate::service::ProxyProtocol;
use crate::spec::{Allowance, PartitionPolicy, UpdateStrategy};

pub const MAX_SURGE: &str = "shoal.io/max-surge";
pub const MAX_UNAVAILABLE: &str = "shoal.io/max-unavailable";
pub const PARTITION_POLICY: &str = "shoal.io/partition-policy";
pub const AUTO_ROLLBACK: &str = "shoal.io/auto-rollback";
const KNOWN: [&str; 4] = [MAX_SURGE, MAX_UNAVAILABLE, PARTITION_POLICY, AUTO_ROLLBACK];
pub const PROXY_PROTOCOL: &str = "shoal.io/proxy-protocol";
const KNOWN_FOR_SERVICES: [&str; 1] = [PROXY_PROTOCOL];

/// Reads a Service's annotations mapping at `path`: whether its endpoints
/// get a PROXY protocol header. Others' annotations are kept out.
pub(crate) fn parse_service(ctx: &mut Ctx, node: &Node, path: &str) -> ProxyProtocol {
    let mut proxy = ProxyProtocol::Off;
    let Some(entries) = entries(ctx, node, path) else {
        return proxy;
    };
    for (key, value) in entries {
        let key_path = join(path, key);
        let Some(text) = text(ctx, key, value, &key_path) else {
            continue;
        };
        match key.as_str() {
            PROXY_PROTOCOL => match text.as_str() {
                "v1" => proxy = ProxyProtocol::V1,
                "v2" => proxy = ProxyProtocol::V2,
                _ => ctx.error(
                    &key_path,
                    value.line,
                    format!("{text:?} is not a PROXY protocol version; write \"v1\" (text header) or \"v2\" (binary), or leave the annotation out"),
                ),
            },
            _ if key.starts_with("shoal.io/") => {
                let hint = suggestion(key, &KNOWN_FOR_SERVICES)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                let msg = format!("unknown Shoal annotation for a Service, ignored{hint}");
                ctx.warn(&key_path, value.line, msg);
            }
            _ => {}
        }
    }
    proxy
}

/// The entries of an annotations mapping, or an error at `path`.
fn entries<'a>(ctx: &mut Ctx, node: &'a Node, path: &str) -> Option<&'a [(String, Node)]> {
    match &node.value {
        Value::Map(entries) => Some(entries),
        other => {
            ctx.error(
                path,
                node.line,
                format!("must be a mapping of strings, got {}", other.kind_name()),
            );
            None
        }
    }
}

/// An annotation's value as text. Annotation values are strings in
/// Kubernetes; a bare number is accepted for ours.
fn text(ctx: &mut Ctx, key: &str, value: &Node, key_path: &str) -> Option<String> {
    match &value.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) if key.starts_with("shoal.io/") => Some(i.to_string()),
        other => {
            ctx.error(
                key_path,
                value.line,
                format!(
                    "annotation values must be strings, got {}; put it in quotes",
                    other.kind_name()
                ),
            );
            None
        }
    }
}

/// Reads the annotations mapping at `path`; others' annotations are kept out
/// of the spec without comment (they are metadata, not behaviour).
pub(crate) fn parse(ctx: &mut Ctx, node: &Node, path: &str) -> (UpdateStrategy, PartitionPolicy) {
    let mut strategy = UpdateStrategy::default();
    let mut policy = PartitionPolicy::default();
    let Some(entries) = entries(ctx, node, path) else {
        return (strategy, policy);
    };
    let mut budget_line = node.line;
    for (key, value) in entries {
        let key_path = join(path, key);
        let Some(text) = text(ctx, key, value, &key_path) else {
            continue;
        };
        match key.as_str() {
            MAX_SURGE | MAX_UNAVAILABLE => {
                let n = match parse_allowance(&text) {
                    Ok(n) => n,
                    Err(why) => {
                        ctx.error(&key_path, value.line, why);
                        continue;
                    }
                };
                if key == MAX_SURGE {
                    strategy.max_surge = n;
                } else {
                    strategy.max_unavailable = n;
                }
                budget_line = value.line;
            }
            AUTO_ROLLBACK => match text.as_str() {
                "true" => strategy.auto_rollback = true,
                "false" => strategy.auto_rollback = false,
                _ => ctx.error(
                    &key_path,
                    value.line,
                    format!("{text:?} is not a boolean; write \"true\" or \"false\""),
                ),
            },
            PARTITION_POLICY => match text.as_str() {
                "available" => policy = PartitionPolicy::Available,
                "at-most-declared" => policy = PartitionPolicy::AtMostDeclared,
                _ => ctx.error(
                    &key_path,
                    value.line,
                    format!("{text:?} is not a partition policy; use \"available\" (keep the declared count on every side) or \"at-most-declared\""),
                ),
            },
            _ if key.starts_with("shoal.io/") => {
                let hint = suggestion(key, &KNOWN)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                ctx.warn(&key_path, value.line, format!("unknown Shoal annotation, ignored{hint}"));
            }
            _ => {}
        }
    }
    if strategy.max_surge.is_zero() && strategy.max_unavailable.is_zero() {
        ctx.error(
            path,
            budget_line,
            format!("{MAX_SURGE} and {MAX_UNAVAILABLE} are both 0, so a rolling update could never make progress; allow at least one"),
        );
    }
    (strategy, policy)
}

/// `"1"` or `"25%"`: a number of replicas or a percentage of them.
pub(crate) fn parse_allowance(text: &str) -> Result<Allowance, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<u32>() {
            Ok(p) if p <= 100 => Ok(Allowance::Percent(p)),
            _ => Err(format!(
                "{text:?} is not a percentage between 0% and 100%; write e.g. \"25%\""
            )),
        };
    }
    t.parse::<u32>().map(Allowance::Count).map_err(|_| {
        format!("{text:?} is not a whole number of replicas or a percentage; write e.g. \"1\" or \"25%\"")
    })
}
