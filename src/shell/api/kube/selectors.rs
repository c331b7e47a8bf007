//! `labelSelector` and `fieldSelector` of list and watch requests.
//!
//! Labels: Kubernetes' equality- and set-based forms (`a=b`, `a==b`,
//! `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`). Fields: `metadata.name`
//! and `metadata.namespace` with `=`, `==`, `!=` (what kubectl's `delete`
//! and `wait` use); any other field is refused with the list of known ones,
//! except on events, which `describe` selects by `involvedObject.*`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::status::KubeError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label and field selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selector {
    /// `known`: the fields the kind can be selected by besides
    /// `metadata.name`/`metadata.namespace`; `None` accepts every field name
    /// (events: an unknown one selects nothing).
    pub fn parse(
        labels: Option<&str>,
        fields: Option<&str>,
        known: Option<&[&str]>,
    ) -> Result<Selector, KubeError> {
        let labels = requirements(labels.unwrap_or_default(), "labelSelector")?;
        let fields = requirements(fields.unwrap_or_default(), "fieldSelector")?;
        let Some(known) = known else {
            return Ok(Selector { labels, fields });
        };
        for field in &fields {
            let key = match field {
                Requirement::Equals(k, _) | Requirement::NotEquals(k, _) => k,
                _ => {
                    return Err(KubeError::bad_request(
                        "fieldSelector supports only field=value and field!=value",
                    ));
                }
            };
            if key != "metadata.name"
                && key != "metadata.namespace"
                && !known.contains(&key.as_str())
            {
                let mut all = vec!["metadata.name", "metadata.namespace"];
                all.extend(known);
                return Err(KubeError::bad_request(format!(
                    "field label not supported: {key} (this kind is selected by {})",
                    all.join(", ")
                )));
            }
        }
        Ok(Selector { labels, fields })
    }

    /// `extra`: the object's selectable fields beyond its metadata.
    pub fn matches(&self, meta: &ObjectMeta, extra: &BTreeMap<String, String>) -> bool {
        let empty = BTreeMap::new();
        let labels = meta.labels.as_ref().unwrap_or(&empty);
        let mut fields = extra.clone();
        fields.insert(
            "metadata.name".to_owned(),
            meta.name.clone().unwrap_or_default(),
        );
        fields.insert(
            "metadata.namespace".to_owned(),
            meta.namespace.clone().unwrap_or_default(),
        );
        self.labels.iter().all(|r| holds(r, labels))
            && self.fields.iter().all(|r| holds(r, &fields))
    }
}

fn holds(requirement: &Requirement, values: &BTreeMap<String, String>) -> bool {
    match requirement {
        Requirement::Equals(k, v) => values.get(k) == Some(v),
        Requirement::NotEquals(k, v) => values.get(k) != Some(v),
        Requirement::Exists(k) => values.contains_key(k),
        Requirement::Absent(k) => !values.contains_key(k),
        Requirement::In(k, set) => values.get(k).is_some_and(|v| set.contains(v)),
        Requirement::NotIn(k, set) => values.get(k).is_none_or(|v| !set.contains(v)),
    }
}

/// Splits at commas outside parentheses, then reads each requirement.
fn requirements(text: &str, what: &str) -> Result<Vec<Requirement>, KubeError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| requirement(p).ok_or_else(|| bad(what, p)))
        .collect()
}

fn bad(what: &str, part: &str) -> KubeError {
    KubeError::bad_request(format!(
        "unable to parse requirement {part:?} of {what}: write key=value, key!=value, key, !key, \
         key in (a,b) or key notin (a,b)"
    ))
}

fn requirement(part: &str) -> Option<Requirement> {
    let word = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && !s.contains([' ', '=', '!', '(', ')'])).then(|| s.to_owned())
    };
    let value = |s: &str| {
        let s = s.trim();
        (!s.contains([' ', '=', '!', '(', ')', ','])).then(|| s.to_owned())
    };
    if let Some((k, v)) = part.split_once("!=") {
        return Some(Requirement::NotEquals(word(k)?, value(v)?));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Some(Requirement::Equals(word(k)?, value(v)?));
    }
    if let Some(k) = part.strip_prefix('!') {
        return Some(Requirement::Absent(word(k)?));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, set)) = part.split_once(op) {
            let set = set.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values: Option<Vec<String>> = set.split(',').map(value).collect();
            let (k, values) = (word(k)?, values?);
            return Some(if notin {
                Requirement::NotIn(k, values)
            } else {
                Requirement::In(k, values)
            });
        }
    }
    Some(Requirement::Exists(word(part)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("default".to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn label_selectors_of_every_form_select_as_kubernetes_does() {
        let web = meta("web-0", &[("app", "web"), ("tier", "front")]);
        let db = meta("db-0", &[("app", "db")]);
        let cases = [
            ("app=web", true, false),
            ("app==web,tier=front", true, false),
            ("app!=web", false, true),
            ("tier", true, false),
            ("!tier", false, true),
            ("app in (web, db)", true, true),
            ("app notin (web),!tier", false, true),
            ("", true, true),
        ];
        for (selector, on_web, on_db) in cases {
            let s = Selector::parse(Some(selector), None, Some(&[])).unwrap();
            assert_eq!(
                s.matches(&web, &BTreeMap::new()),
                on_web,
                "{selector} on web"
            );
            assert_eq!(s.matches(&db, &BTreeMap::new()), on_db, "{selector} on db");
        }
    }

    #[test]
    fn field_selectors_select_by_name_and_refuse_other_fields() {
        let s = Selector::parse(None, Some("metadata.name=web-0"), Some(&[])).unwrap();
        let none = BTreeMap::new();
        assert!(s.matches(&meta("web-0", &[]), &none));
        assert!(!s.matches(&meta("web-1", &[]), &none));
        let s = Selector::parse(
            None,
            Some("spec.nodeName=n1,status.phase!=Failed"),
            Some(&["spec.nodeName", "status.phase"]),
        )
        .unwrap();
        let on = |node: &str, phase: &str| {
            BTreeMap::from([
                ("spec.nodeName".to_owned(), node.to_owned()),
                ("status.phase".to_owned(), phase.to_owned()),
            ])
        };
        assert!(s.matches(&meta("web-0", &[]), &on("n1", "Running")));
        assert!(!s.matches(&meta("web-0", &[]), &on("n2", "Running")));
        assert!(!s.matches(&meta("web-0", &[]), &on("n1", "Failed")));
        let err = Selector::parse(None, Some("status.phase=Running"), Some(&[])).unwrap_err();
        assert!(err.message.contains("status.phase"), "{}", err.message);
        let err = Selector::parse(Some("app=(x"), None, Some(&[])).unwrap_err();
        assert!(err.message.contains("app=(x"), "{}", err.message);
    }
}
