//! Shoal's own settings, carried as annotations so a manifest stays a valid
//! Kubernetes object: `shoal.io/max-surge`, `shoal.io/max-unavailable`,
//! `shoal.io/partition-policy`.

use super::fields::{Ctx, join, suggestion};
use super::tree::{Node, Value};
use crate::spec::{PartitionPolicy, UpdateStrategy};

pub const MAX_SURGE: &str = "shoal.io/max-surge";
pub const MAX_UNAVAILABLE: &str = "shoal.io/max-unavailable";
pub const PARTITION_POLICY: &str = "shoal.io/partition-policy";
const KNOWN: [&str; 3] = [MAX_SURGE, MAX_UNAVAILABLE, PARTITION_POLICY];

/// Reads the annotations mapping at `path`; others' annotations are kept out
/// of the spec without comment (they are metadata, not behaviour).
pub(crate) fn parse(ctx: &mut Ctx, node: &Node, path: &str) -> (UpdateStrategy, PartitionPolicy) {
    let mut strategy = UpdateStrategy::default();
    let mut policy = PartitionPolicy::default();
    let Value::Map(entries) = &node.value else {
        ctx.error(
            path,
            node.line,
            format!(
                "must be a mapping of strings, got {}",
                node.value.kind_name()
            ),
        );
        return (strategy, policy);
    };
    let mut budget_line = node.line;
    for (key, value) in entries {
        let key_path = join(path, key);
        // Annotation values are strings in Kubernetes; a bare number is accepted for ours.
        let text = match &value.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) if key.starts_with("shoal.io/") => i.to_string(),
            other => {
                ctx.error(
                    &key_path,
                    value.line,
                    format!(
                        "annotation values must be strings, got {}; put it in quotes",
                        other.kind_name()
                    ),
                );
                continue;
            }
        };
        match key.as_str() {
            MAX_SURGE | MAX_UNAVAILABLE => {
                let Ok(n) = text.trim().parse::<u32>() else {
                    ctx.error(
                        &key_path,
                        value.line,
                        format!("{text:?} is not a whole number of replicas; write e.g. \"1\" (percentages are not supported)"),
                    );
                    continue;
                };
                if key == MAX_SURGE {
                    strategy.max_surge = n;
                } else {
                    strategy.max_unavailable = n;
                }
                budget_line = value.line;
            }
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
    if strategy.max_surge == 0 && strategy.max_unavailable == 0 {
        ctx.error(
            path,
            budget_line,
            format!("{MAX_SURGE} and {MAX_UNAVAILABLE} are both 0, so a rolling update could never make progress; allow at least one"),
        );
    }
    (strategy, policy)
}
