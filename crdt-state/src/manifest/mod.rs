//! Manifests: YAML or JSON text in, validated [`RcSpec`]s and
//! [`ServiceSpec`]s out.
//!
//! Accepted: the 2014 `v1beta1` ReplicationController (the Kubernetes "hello"
//! example) and the Kubernetes `v1` ReplicationController, and Services in
//! both forms (`service`), as multi-document YAML or JSON, a single object
//! or a `kind: List` with `items`.
//!
//! Every problem of every document is reported at once, each with its
//! document, field path, line and what to do; harmless unknown fields are
//! warnings. Fields that would change how a pod runs and that Shoal cannot
//! honour (volumes, privileged, affinity, ...) are errors, never silently dropped.
//!
//! - [`tree`]: YAML/JSON → an untyped tree with lines (serde-saphyr `Spanned`).
//! - `fields`: typed access to the tree, recording problems by path.
//! - `v1`, `v1beta1`, `container`, `annotations`: the two forms.
//! - [`validate`]: names, labels, selector vs. labels, container conflicts.
//! - [`limits`]: how large and deep a manifest may be, said in words.
//! - [`quantity`]: `500m`, `128Mi`, ...
//! - [`render`]: an `RcSpec` back to a v1 manifest (what `validate` prints).

mod annotations;
mod container;
pub mod error;
mod fields;
pub mod limits;
pub mod quantity;
pub mod render;
mod service;
mod strategy;
pub mod tree;
mod v1;
mod v1beta1;
pub mod validate;

use std::collections::BTreeMap;

pub use annotations::{MAX_SURGE, MAX_UNAVAILABLE, PARTITION_POLICY, PROXY_PROTOCOL};
pub use error::{Diagnostic, ManifestError, ManifestProblem, ManifestWarning};

use crate::service::ServiceSpec;
use crate::service_checks;
use crate::spec::RcSpec;
use fields::{Ctx, index, join};
use tree::{Node, Value};

/// The specs an input declared, in input order, and what was noticed on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifests {
    pub specs: Vec<RcSpec>,
    pub services: Vec<ServiceSpec>,
    pub warnings: Vec<ManifestWarning>,
}

/// One object of a manifest.
enum Object {
    Rc(RcSpec),
    Service(ServiceSpec),
}

/// Where an object was declared: document, path prefix, line.
type Source = (usize, String, Option<usize>);

/// Parses and validates every ReplicationController and Service in `text`.
///
/// Fails if anything is wrong anywhere: a document with a problem never
/// yields a partial spec, and the error lists all problems of all documents.
pub fn parse_manifests(text: &str) -> Result<ParsedManifests, ManifestError> {
    let documents = tree::parse_documents(text).map_err(|e| {
        let message = match e.column {
            Some(col) if !e.over_limit && !e.message.contains("column") => {
                format!("{} (column {col})", e.message)
            }
            _ => e.message,
        };
        ManifestError {
            problems: vec![ManifestProblem(Diagnostic {
                document: 0,
                path: String::new(),
                line: e.line,
                message,
            })],
            warnings: Vec::new(),
        }
    })?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut specs: Vec<(RcSpec, usize, String, Option<usize>)> = Vec::new();
    let mut services: Vec<(ServiceSpec, Source)> = Vec::new();
    if documents.is_empty() {
        problems.push(ManifestProblem(Diagnostic {
            document: 0,
            path: String::new(),
            line: None,
            message:
                "no manifest found: the input is empty; give a ReplicationController or a Service"
                    .into(),
        }));
    }
    for (i, doc) in documents.iter().enumerate() {
        let mut ctx = Ctx::new(i + 1);
        for (base, object) in objects(&mut ctx, doc) {
            match parse_object(&mut ctx, object, &base) {
                Some(Object::Rc(spec)) => specs.push((spec, i + 1, base, object.line)),
                Some(Object::Service(spec)) => services.push((spec, (i + 1, base, object.line))),
                None => {}
            }
        }
        // Read top to bottom, whatever order the walk found them in.
        ctx.problems.sort_by_key(|p| p.0.line.unwrap_or(usize::MAX));
        ctx.warnings.sort_by_key(|w| w.0.line.unwrap_or(usize::MAX));
        problems.append(&mut ctx.problems);
        warnings.append(&mut ctx.warnings);
    }
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (spec, document, base, line) in &specs {
        if let Some(first) = first_seen.insert(&spec.name, *document) {
            problems.push(ManifestProblem(Diagnostic {
                document: *document,
                path: name_path(base, doc_at(&documents, *document, base)),
                line: *line,
                message: format!(
                    "ReplicationController {:?} is declared twice (also in doc {first}); names must be unique",
                    spec.name
                ),
            }));
        }
    }
    check_services(&documents, &services, &specs, &mut problems);
    if problems.is_empty() {
        Ok(ParsedManifests {
            specs: specs.into_iter().map(|(s, ..)| s).collect(),
            services: services.into_iter().map(|(s, _)| s).collect(),
            warnings,
        })
    } else {
        Err(ManifestError { problems, warnings })
    }
}

/// The objects of a document: itself, or the `items` of a `kind: List`.
fn objects<'a>(ctx: &mut Ctx, doc: &'a Node) -> Vec<(String, &'a Node)> {
    if doc.get("kind").and_then(Node::as_str) != Some("List") {
        return vec![(String::new(), doc)];
    }
    match doc.get("items").map(|n| &n.value) {
        Some(Value::Seq(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (index("items", i), item))
            .collect(),
        _ => {
            ctx.error(
                "items",
                doc.line,
                "a List needs `items`: a list of ReplicationControllers",
            );
            Vec::new()
        }
    }
}

/// Services of one manifest against each other and its RCs: names,
/// shared ports, named target ports (the same rules apply does against the
/// cluster, see [`service_checks`]).
fn check_services(
    documents: &[Node],
    services: &[(ServiceSpec, Source)],
    rcs: &[(RcSpec, usize, String, Option<usize>)],
    problems: &mut Vec<ManifestProblem>,
) {
    let mut problem = |(document, _, line): &Source, path: String, message: String| {
        problems.push(ManifestProblem(Diagnostic {
            document: *document,
            path,
            line: *line,
            message,
        }));
    };
    let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (spec, source)) in services.iter().enumerate() {
        let (document, base, _) = source;
        let name_path = name_path(base, doc_at(documents, *document, base));
        if let Some(first) = first_seen.insert(&spec.name, *document) {
            let message = format!(
                "Service {:?} is declared twice (also in doc {first}); names must be unique",
                spec.name
            );
            problem(source, name_path, message);
            continue;
        }
        let earlier = services[..i]
            .iter()
            .map(|(s, _)| (s.name.as_str(), &s.body));
        for message in service_checks::port_clashes(&spec.name, &spec.body, earlier) {
            problem(source, join(base, "spec.ports"), message);
        }
        let templates = || rcs.iter().map(|(rc, ..)| (rc.name.as_str(), &rc.template));
        let mut found = service_checks::host_port_clashes(&spec.name, &spec.body, templates());
        found.extend(service_checks::missing_target_ports(
            &spec.name,
            &spec.body,
            templates(),
        ));
        for message in found {
            problem(source, join(base, "spec.ports"), message);
        }
    }
}

/// Dispatches on `kind` and `apiVersion`.
fn parse_object(ctx: &mut Ctx, object: &Node, base: &str) -> Option<Object> {
    if !matches!(object.value, Value::Map(_)) {
        let msg = format!(
            "a manifest must be a mapping (a ReplicationController), got {}",
            object.value.kind_name()
        );
        ctx.error(base, object.line, msg);
        return None;
    }
    let kind_path = join(base, "kind");
    match object.get("kind") {
        Some(Node {
            value: Value::Str(kind),
            ..
        }) if kind == "ReplicationController" => {}
        Some(Node {
            value: Value::Str(kind),
            ..
        }) if kind == "Service" => return parse_service(ctx, object, base).map(Object::Service),
        Some(node) => {
            let kind = node
                .as_str()
                .map_or_else(|| node.to_string(), str::to_owned);
            let msg = format!(
                "kind {kind:?} is not supported; Shoal runs ReplicationControllers and Services (kind: ReplicationController or Service)"
            );
            ctx.error(&kind_path, node.line, msg);
            return None;
        }
        None => {
            let msg = "kind is missing; add `kind: ReplicationController`";
            ctx.error(&kind_path, object.line, msg);
            return None;
        }
    }
    let version_path = join(base, "apiVersion");
    match object.get("apiVersion") {
        Some(node) => match node.as_str() {
            Some("v1") => v1::parse(ctx, object, base).map(Object::Rc),
            Some("v1beta1") => v1beta1::parse(ctx, object, base).map(Object::Rc),
            _ => {
                let msg = format!(
                    "apiVersion {node} is not supported for a ReplicationController; use v1 (or the 2014 v1beta1)"
                );
                ctx.error(&version_path, node.line, msg);
                None
            }
        },
        // The 2014 form is recognisable by its shape even without a version.
        None if object.get("desiredState").is_some() => {
            v1beta1::parse(ctx, object, base).map(Object::Rc)
        }
        None => {
            let msg = "apiVersion is missing; add `apiVersion: v1`";
            ctx.error(&version_path, object.line, msg);
            None
        }
    }
}

/// A Service, v1 or the 2014 v1beta1 (recognisable by its `id`).
fn parse_service(ctx: &mut Ctx, object: &Node, base: &str) -> Option<ServiceSpec> {
    match object.get("apiVersion") {
        Some(node) => match node.as_str() {
            Some("v1") => service::parse_v1(ctx, object, base),
            Some("v1beta1") => service::parse_v1beta1(ctx, object, base),
            _ => {
                let msg = format!(
                    "apiVersion {node} is not supported for a Service; use v1 (or the 2014 v1beta1)"
                );
                ctx.error(&join(base, "apiVersion"), node.line, msg);
                None
            }
        },
        None if object.get("id").is_some() => service::parse_v1beta1(ctx, object, base),
        None => {
            let msg = "apiVersion is missing; add `apiVersion: v1`";
            ctx.error(&join(base, "apiVersion"), object.line, msg);
            None
        }
    }
}

fn doc_at<'a>(documents: &'a [Node], document: usize, base: &str) -> Option<&'a Node> {
    let doc = documents.get(document.checked_sub(1)?)?;
    if base.is_empty() {
        return Some(doc);
    }
    let i: usize = base
        .strip_prefix("items[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    match &doc.get("items")?.value {
        Value::Seq(items) => items.get(i),
        _ => None,
    }
}

/// `metadata.name` or `id`, whichever the object used.
fn name_path(base: &str, object: Option<&Node>) -> String {
    if object.is_some_and(|o| o.get("id").is_some()) {
        join(base, "id")
    } else {
        join(&join(base, "metadata"), "name")
    }
}
