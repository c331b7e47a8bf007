//! The rollout settings of a v1 manifest, where a Kubernetes user looks for
//! them: a Deployment's `spec.strategy.rollingUpdate.{maxSurge,
//! maxUnavailable}`, `spec.minReadySeconds` and
//! `spec.progressDeadlineSeconds`, accepted on the ReplicationController.
//! They override the `shoal.io/` annotations, which keep working.

use super::annotations::parse_allowance;
use super::fields::{Ctx, Schema, join, map_fields, optional, string, u32_field};
use super::tree::{Node, Value};
use crate::spec::{Allowance, UpdateStrategy};

const STRATEGY: Schema = Schema {
    known: &["type", "rollingUpdate"],
    unsupported: &[],
    ignored: &[],
};

const ROLLING_UPDATE: Schema = Schema {
    known: &["maxSurge", "maxUnavailable"],
    unsupported: &[],
    ignored: &[],
};

/// A day: longer deadlines are almost certainly a unit mistake.
const MAX_DEADLINE_SECS: u32 = 86_400;

/// Reads the rollout fields of `spec` (at `spec_path`) into `strategy`.
pub(crate) fn parse(ctx: &mut Ctx, spec: &Node, spec_path: &str, strategy: &mut UpdateStrategy) {
    strategy.min_ready_secs = u32_field(
        ctx,
        spec,
        spec_path,
        "minReadySeconds",
        strategy.min_ready_secs,
        0..=MAX_DEADLINE_SECS,
        " seconds",
    );
    strategy.progress_deadline_secs = u32_field(
        ctx,
        spec,
        spec_path,
        "progressDeadlineSeconds",
        strategy.progress_deadline_secs,
        1..=MAX_DEADLINE_SECS,
        " seconds (a new pod may take this long to become ready)",
    );
    let Some(node) = optional(spec, "strategy") else {
        return;
    };
    let path = join(spec_path, "strategy");
    if map_fields(ctx, node, &path, &STRATEGY).is_none() {
        return;
    }
    if let Some(kind) = optional(node, "type") {
        let kind_path = join(&path, "type");
        if let Some(kind_text) = string(ctx, kind, &kind_path)
            && kind_text != "RollingUpdate"
        {
            ctx.error(
                &kind_path,
                kind.line,
                format!("{kind_text:?} is not supported; Shoal rolls out with \"RollingUpdate\""),
            );
        }
    }
    let Some(rolling) = optional(node, "rollingUpdate") else {
        return;
    };
    let rolling_path = join(&path, "rollingUpdate");
    if map_fields(ctx, rolling, &rolling_path, &ROLLING_UPDATE).is_none() {
        return;
    }
    for (key, slot) in [
        ("maxSurge", &mut strategy.max_surge),
        ("maxUnavailable", &mut strategy.max_unavailable),
    ] {
        if let Some(value) = optional(rolling, key)
            && let Some(n) = allowance(ctx, value, &join(&rolling_path, key))
        {
            *slot = n;
        }
    }
    if strategy.max_surge.is_zero() && strategy.max_unavailable.is_zero() {
        ctx.error(
            &rolling_path,
            rolling.line,
            "maxSurge and maxUnavailable are both 0, so a rollout could never make progress; allow at least one",
        );
    }
}

/// `1` or `"25%"`, as Kubernetes' int-or-string.
fn allowance(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Allowance> {
    let text = match &node.value {
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.clone(),
        other => {
            ctx.error(
                path,
                node.line,
                format!(
                    "must be a number or a percentage, got {}",
                    other.kind_name()
                ),
            );
            return None;
        }
    };
    parse_allowance(&text)
        .map_err(|why| ctx.error(path, node.line, why))
        .ok()
}
