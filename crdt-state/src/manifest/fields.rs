//! Walking one document: typed field access that records problems instead of
//! stopping at the first, and the known/unsupported/ignored field lists.

use std::ops::RangeInclusive;

use super::error::{Diagnostic, ManifestProblem, ManifestWarning};
use super::tree::{Node, Value};
use crate::spec::Labels;

/// Collects the findings of one document while it is walked.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub document: usize,
    pub problems: Vec<ManifestProblem>,
    pub warnings: Vec<ManifestWarning>,
}

impl Ctx {
    pub fn new(document: usize) -> Ctx {
        Ctx {
            document,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn diagnostic(&self, path: &str, line: Option<usize>, message: String) -> Diagnostic {
        Diagnostic {
            document: self.document,
            path: path.to_owned(),
            line,
            message,
        }
    }

    pub fn error(&mut self, path: &str, line: Option<usize>, message: impl Into<String>) {
        let d = self.diagnostic(path, line, message.into());
        self.problems.push(ManifestProblem(d));
    }

    pub fn warn(&mut self, path: &str, line: Option<usize>, message: impl Into<String>) {
        let d = self.diagnostic(path, line, message.into());
        self.warnings.push(ManifestWarning(d));
    }

    pub fn error_count(&self) -> usize {
        self.problems.len()
    }
}

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// How a mapping's fields are treated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    /// Read by the walker.
    pub known: &'static [&'static str],
    /// Would change behaviour if honoured, and Shoal can't: an error unless inert.
    pub unsupported: &'static [&'static str],
    /// Meaningless to Shoal and harmless to drop: a warning.
    pub ignored: &'static [&'static str],
}

/// Returns the entries of a mapping node after checking its keys against
/// `schema`; reports (and returns `None` for) a node that is not a mapping.
pub(crate) fn map_fields<'a>(
    ctx: &mut Ctx,
    node: &'a Node,
    path: &str,
    schema: &Schema,
) -> Option<&'a [(String, Node)]> {
    let Value::Map(entries) = &node.value else {
        ctx.error(
            path,
            node.line,
            format!("must be a mapping, got {}", node.value.kind_name()),
        );
        return None;
    };
    for (key, value) in entries {
        let key_path = join(path, key);
        if schema.known.contains(&key.as_str()) {
            continue;
        }
        if schema.unsupported.contains(&key.as_str()) {
            if !value.is_inert() {
                let (active, line) = first_active(value, &key_path);
                ctx.error(
                    &active,
                    line.or(value.line),
                    "not supported by Shoal; remove this field (it would change how the pod runs)",
                );
            }
        } else if schema.ignored.contains(&key.as_str()) {
            ctx.warn(&key_path, value.line, "ignored: has no effect in Shoal");
        } else {
            let hint = suggestion(key, schema.known)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            ctx.warn(
                &key_path,
                value.line,
                format!("unknown field, ignored{hint}"),
            );
        }
    }
    Some(entries)
}

/// Path and line of the first non-inert leaf under `node`: points the error
/// at `securityContext.privileged` rather than at `securityContext`.
fn first_active(node: &Node, path: &str) -> (String, Option<usize>) {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(_, v)| !v.is_inert()).map_or_else(
            || (path.to_owned(), node.line),
            |(k, v)| first_active(v, &join(path, k)),
        ),
        _ => (path.to_owned(), node.line),
    }
}

/// The known field closest to a misspelled one (edit distance ≤ 2).
pub(crate) fn suggestion(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A required field: reports it missing at the parent's path and line.
pub(crate) fn required<'a>(
    ctx: &mut Ctx,
    parent: &'a Node,
    parent_path: &str,
    key: &str,
    what_to_do: &str,
) -> Option<&'a Node> {
    match parent.get(key) {
        Some(node) if !matches!(node.value, Value::Null) => Some(node),
        _ => {
            ctx.error(
                &join(parent_path, key),
                parent.line,
                format!("required field is missing; {what_to_do}"),
            );
            None
        }
    }
}

/// An optional field that is present and not null.
pub(crate) fn optional<'a>(parent: &'a Node, key: &str) -> Option<&'a Node> {
    parent
        .get(key)
        .filter(|node| !matches!(node.value, Value::Null))
}

pub(crate) fn string(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            ctx.error(
                path,
                node.line,
                format!(
                    "must be a string, got {} ({node}); put it in quotes",
                    node.value.kind_name()
                ),
            );
            None
        }
        other => {
            ctx.error(
                path,
                node.line,
                format!("must be a string, got {}", other.kind_name()),
            );
            None
        }
    }
}

/// An integer in `min..=max`; `hint` states the range for the user.
pub(crate) fn integer(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    min: i128,
    max: i128,
    hint: &str,
) -> Option<i128> {
    let Value::Int(i) = node.value else {
        ctx.error(
            path,
            node.line,
            format!(
                "must be an integer, got {} ({node})",
                node.value.kind_name()
            ),
        );
        return None;
    };
    if i < min || i > max {
        ctx.error(path, node.line, format!("{i} is out of range: {hint}"));
        return None;
    }
    Some(i)
}

/// An integer field within `range`, with a default when absent. The error
/// names the range it checked (`unit` follows its bounds, e.g. " seconds"),
/// so the message cannot drift from the limit.
pub(crate) fn u32_field(
    ctx: &mut Ctx,
    parent: &Node,
    parent_path: &str,
    key: &str,
    default: u32,
    range: RangeInclusive<u32>,
    unit: &str,
) -> u32 {
    let (min, max) = (*range.start(), *range.end());
    match optional(parent, key) {
        None => default,
        Some(node) => {
            let hint = format!("{key} must be between {min} and {max}{unit}");
            integer(
                ctx,
                node,
                &join(parent_path, key),
                min.into(),
                max.into(),
                &hint,
            )
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(default)
        }
    }
}

pub(crate) fn sequence<'a>(ctx: &mut Ctx, node: &'a Node, path: &str) -> Option<&'a [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        other => {
            ctx.error(
                path,
                node.line,
                format!("must be a list, got {}", other.kind_name()),
            );
            None
        }
    }
}

/// A list of strings (`command`, `args`).
pub(crate) fn string_list(ctx: &mut Ctx, node: &Node, path: &str) -> Vec<String> {
    let Some(items) = sequence(ctx, node, path) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| string(ctx, item, &index(path, i)))
        .collect()
}

/// A string-to-string mapping (labels, selectors, nodeSelector, annotations).
/// With `check_labels`, keys and values must be valid Kubernetes label syntax.
pub(crate) fn string_map(ctx: &mut Ctx, node: &Node, path: &str, check_labels: bool) -> Labels {
    let mut out = Labels::new();
    let Value::Map(entries) = &node.value else {
        ctx.error(
            path,
            node.line,
            format!(
                "must be a mapping of strings, got {}",
                node.value.kind_name()
            ),
        );
        return out;
    };
    for (key, value) in entries {
        let key_path = join(path, key);
        let Some(text) = string(ctx, value, &key_path) else {
            continue;
        };
        if check_labels {
            if let Err(why) = super::validate::label_key(key) {
                ctx.error(&key_path, value.line, why);
            }
            if let Err(why) = super::validate::label_value(&text) {
                ctx.error(&key_path, value.line, why);
            }
        }
        out.insert(key.clone(), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tree::parse_documents;

    const SCHEMA: Schema = Schema {
        known: &["replicas", "selector"],
        unsupported: &["volumes", "securityContext"],
        ignored: &["status"],
    };

    fn walk(yaml: &str) -> Ctx {
        let doc = parse_documents(yaml).unwrap().remove(0);
        let mut ctx = Ctx::new(1);
        map_fields(&mut ctx, &doc, "spec", &SCHEMA);
        ctx
    }

    #[test]
    fn a_u32_field_error_names_the_range_it_checked() {
        let doc = parse_documents("replicas: 8\n").unwrap().remove(0);
        let mut ctx = Ctx::new(1);
        assert_eq!(
            u32_field(&mut ctx, &doc, "spec", "replicas", 1, 2..=7, " pods"),
            1
        );
        let message = &ctx.problems[0].0.message;
        assert_eq!(
            message,
            "8 is out of range: replicas must be between 2 and 7 pods"
        );

        let doc = parse_documents("replicas: 1\n").unwrap().remove(0);
        let mut ctx = Ctx::new(1);
        assert_eq!(
            u32_field(&mut ctx, &doc, "spec", "replicas", 3, 2..=7, ""),
            3
        );
        assert!(ctx.problems[0].0.message.contains("between 2 and 7"));
    }

    #[test]
    fn unknown_fields_warn_and_suggest_the_known_one() {
        let ctx = walk("replica: 2\n");
        assert!(ctx.problems.is_empty());
        assert_eq!(ctx.warnings[0].0.path, "spec.replica");
        assert!(ctx.warnings[0].0.message.contains("`replicas`"));
    }

    #[test]
    fn unsupported_fields_are_errors_pointing_at_the_active_leaf() {
        let ctx = walk("securityContext:\n  runAsNonRoot: false\n  privileged: true\n");
        assert_eq!(ctx.problems.len(), 1);
        assert_eq!(ctx.problems[0].0.path, "spec.securityContext.privileged");
        assert_eq!(ctx.problems[0].0.line, Some(3));
        assert!(ctx.problems[0].0.message.contains("not supported"));
    }

    #[test]
    fn inert_unsupported_fields_are_accepted() {
        let ctx = walk("volumes: []\nsecurityContext: {privileged: false}\n");
        assert!(ctx.problems.is_empty());
        assert!(ctx.warnings.is_empty());
    }

    #[test]
    fn ignored_fields_warn() {
        let ctx = walk("status: {replicas: 3}\n");
        assert!(ctx.problems.is_empty());
        assert_eq!(ctx.warnings[0].0.path, "spec.status");
    }

    #[test]
    fn numbers_where_strings_belong_ask_for_quotes() {
        let doc = parse_documents("version: 1\n").unwrap().remove(0);
        let mut ctx = Ctx::new(1);
        let labels = string_map(&mut ctx, &doc, "labels", true);
        assert!(labels.is_empty());
        assert_eq!(ctx.problems[0].0.path, "labels.version");
        assert!(ctx.problems[0].0.message.contains("quotes"));
    }
}
