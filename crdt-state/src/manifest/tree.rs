//! A generic document tree with source lines, parsed from YAML or JSON.
//!
//! Manifests are read in two steps: first into this untyped tree, then by
//! hand-written walkers (`v1`, `v1beta1`) that know every field. Walking a
//! tree rather than deriving `Deserialize` on typed structs is what lets us
//! collect *all* problems of a document, name each by its field path, warn
//! about unknown fields instead of failing, and point at the YAML line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::limits::ParseLimits;

/// One value of the document and the line it starts on (1-based), when known.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    /// `None` for JSON that only `serde_json` could read (it has no spans).
    pub line: Option<usize>,
}

/// The shape of a YAML/JSON value. Map entries keep their source order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Value {
    /// How the value's type is named in messages ("got a list").
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The entry `key` of a mapping node; `None` for a missing key or a non-map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string value, if this node is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// True for values that ask for nothing: null, `false`, `0`, `""`, `[]`,
    /// `{}`, or a mapping of such. An unsupported field set to one of these
    /// does not change behaviour, so it can be accepted.
    pub fn is_inert(&self) -> bool {
        match &self.value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Float(f) => *f == 0.0,
            Value::Str(s) => s.is_empty(),
            Value::Seq(items) => items.is_empty(),
            Value::Map(entries) => entries.iter().all(|(_, v)| v.is_inert()),
        }
    }

    /// Converts a `serde_json` value (no line information).
    pub fn from_json(value: serde_json::Value) -> Node {
        let value = match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::Int(i128::from(i)),
                (None, Some(u)) => Value::Int(i128::from(u)),
                _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => {
                Value::Seq(items.into_iter().map(Node::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| (k, Node::from_json(v)))
                    .collect(),
            ),
        };
        Node { value, line: None }
    }
}

impl fmt::Display for Node {
    /// Compact flow form for messages: `{app: web}`, `[a, b]`, `80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Seq(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    /// Through `serde_saphyr::Spanned` so that each node carries its line.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(deserializer)?;
        let line = usize::try_from(spanned.referenced.line())
            .ok()
            .filter(|&l| l > 0);
        Ok(Node {
            value: spanned.value,
            line,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key.0, value));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: any scalar, kept as text (`80: x` has the key "80").
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Str(s) => Ok(Key(s)),
            Value::Int(i) => Ok(Key(i.to_string())),
            Value::Bool(b) => Ok(Key(b.to_string())),
            Value::Float(x) => Ok(Key(x.to_string())),
            Value::Null => Ok(Key("null".to_owned())),
            other => Err(de::Error::custom(format!(
                "a mapping key must be a plain scalar, not {}",
                other.kind_name()
            ))),
        }
    }
}

/// A syntax error in the input, located where the parser could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The input is well-formed as far as read, but over a [`ParseLimits`] budget.
    pub over_limit: bool,
}

/// Parses every document of `text`: YAML (multi-document, `---`) or JSON.
///
/// JSON is read by the YAML parser too (JSON is YAML's flow syntax), which
/// gives it lines; the few JSON texts YAML refuses (tabs used as indentation,
/// for one) are read by `serde_json` without lines. Empty documents are skipped.
/// Input over a [`ParseLimits::DEFAULT`] budget is refused with the limit.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    parse_documents_within(text, &ParseLimits::DEFAULT)
}

/// [`parse_documents`] under other limits (the tests use small ones).
pub(crate) fn parse_documents_within(
    text: &str,
    limits: &ParseLimits,
) -> Result<Vec<Node>, SyntaxError> {
    let looks_like_json = matches!(text.trim_start().chars().next(), Some('{' | '['));
    if looks_like_json {
        let json = serde_json::from_str::<serde_json::Value>(text).map_err(|e| SyntaxError {
            line: Some(e.line()),
            column: Some(e.column()),
            message: format!("invalid JSON: {e}"),
            over_limit: false,
        })?;
        return match parse_yaml(text, limits) {
            Ok(docs) if docs.len() == 1 => Ok(docs),
            // Over a limit as YAML is over it as JSON too.
            Err(e) if e.over_limit => Err(e),
            _ => Ok(vec![Node::from_json(json)]),
        };
    }
    parse_yaml(text, limits)
}

fn parse_yaml(text: &str, limits: &ParseLimits) -> Result<Vec<Node>, SyntaxError> {
    // YAML 1.2 booleans only: `y`, `yes`, `on` stay strings (no "Norway problem").
    let options = serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        budget: Some(limits.budget()),
    };
    serde_saphyr::from_multiple_with_options::<Node>(text, options).map_err(|e| {
        let location = e.location();
        let (message, over_limit) = match e.without_snippet() {
            serde_saphyr::Error::Budget { breach, .. } => (limits.explain(breach), true),
            other => {
                let rendered = other.render_with_options(serde_saphyr::render_options! {
                    snippets: serde_saphyr::SnippetMode::Off,
                });
                (format!("invalid YAML: {}", rendered.trim()), false)
            }
        };
        SyntaxError {
            line: location.and_then(|l| usize::try_from(l.line()).ok()),
            column: location.and_then(|l| usize::try_from(l.column()).ok()),
            message,
            over_limit,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_nodes_carry_their_lines() {
        let docs = parse_documents("a: 1\nb:\n  c: [x, 2]\n").unwrap();
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!(doc.get("a").unwrap().line, Some(1));
        assert_eq!(doc.get("a").unwrap().value, Value::Int(1));
        let c = doc.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.line, Some(3));
        assert_eq!(c.to_string(), "[\"x\", 2]");
    }

    #[test]
    fn several_yaml_documents_are_all_read() {
        let docs = parse_documents("a: 1\n---\nb: 2\n---\nc: 3\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[2].get("c").unwrap().line, Some(5));
    }

    #[test]
    fn json_is_read_with_lines() {
        let docs = parse_documents("{\n  \"a\": {\n    \"b\": \"x\"\n  }\n}\n").unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].get("a").unwrap().get("b").unwrap().line, Some(3));
    }

    #[test]
    fn malformed_yaml_reports_its_line() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
        assert!(err.message.starts_with("invalid YAML"), "{err:?}");
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let err = parse_documents("{\n  \"a\": 1,\n  \"b\" 2\n}\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.column.is_some());
    }

    #[test]
    fn duplicate_keys_are_a_syntax_error() {
        let err = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.line, Some(2), "{err:?}");
    }

    #[test]
    fn yaml_1_1_booleans_stay_strings() {
        let docs = parse_documents("a: y\nb: on\nc: true\n").unwrap();
        assert_eq!(docs[0].get("a").unwrap().value, Value::Str("y".into()));
        assert_eq!(docs[0].get("b").unwrap().value, Value::Str("on".into()));
        assert_eq!(docs[0].get("c").unwrap().value, Value::Bool(true));
    }

    #[test]
    fn inert_values_ask_for_nothing() {
        let docs = parse_documents("a: {x: false, y: []}\nb: {x: true}\n").unwrap();
        assert!(docs[0].get("a").unwrap().is_inert());
        assert!(!docs[0].get("b").unwrap().is_inert());
    }
}
