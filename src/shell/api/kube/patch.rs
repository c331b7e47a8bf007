//! The three patch forms kubectl sends, applied to an object's JSON:
//! strategic merge (client-side `apply`, `edit`, `patch`), JSON merge
//! (RFC 7386; `scale`, `patch --type merge`) and JSON patch (RFC 6902).
//!
//! Strategic merge keys lists the way Kubernetes keys them for the fields
//! Shoal supports: containers and env by `name`, container ports by
//! `containerPort`, service ports by `port`; other lists are replaced
//! whole. Directives: `$patch: replace|delete` (object and list element),
//! `$retainKeys`; `$setElementOrder/...` only orders, and Shoal keeps the
//! patched order, so it is dropped.

use serde_json::{Map, Value};

use super::status::KubeError;

/// The lists merged by key, as Kubernetes keys them: (the schema of the
/// object holding the list, the list's field, its merge key). The OpenAPI
/// document tells kubectl the same (`x-kubernetes-patch-merge-key`), so its
/// three-way patch keys them as this server merges them.
pub const MERGED_LISTS: [(&str, &str, &str); 7] = [
    ("io.k8s.api.core.v1.PodSpec", "containers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "name"),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "name"),
    ("io.k8s.api.core.v1.Container", "env", "name"),
    ("io.k8s.api.core.v1.Container", "ports", "containerPort"),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "mountPath"),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "port"),
];

/// Merge key of the list stored under `key`, given one of its elements
/// (which tells a container's ports from a service's).
fn merge_key(key: &str, element: &Value) -> Option<&'static str> {
    let keys: Vec<&'static str> = MERGED_LISTS
        .iter()
        .filter(|(_, field, _)| *field == key)
        .map(|(_, _, merge)| *merge)
        .collect();
    keys.iter()
        .copied()
        .find(|k| element.get(k).is_some())
        .or(keys.last().copied())
}

pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), KubeError> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(KubeError::bad_request(format!(
                "unknown strategic merge directive $patch: {other:?}"
            )));
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let object = target.as_object_mut().expect("made an object above");
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        object.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                object.remove(key);
            }
            Value::Array(items) => {
                let keyed = items.first().and_then(|first| merge_key(key, first));
                match (keyed, object.get_mut(key)) {
                    (Some(merge), Some(Value::Array(current))) => {
                        merge_list(current, items, merge)?;
                    }
                    _ => {
                        let kept: Vec<Value> = items
                            .iter()
                            .filter(|i| i.get("$patch").is_none())
                            .cloned()
                            .collect();
                        object.insert(key.clone(), Value::Array(kept));
                    }
                }
            }
            Value::Object(_) => {
                let slot = object.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value)?;
                if slot.is_null() {
                    object.remove(key);
                }
            }
            other => {
                object.insert(key.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(current: &mut Vec<Value>, patch: &[Value], key: &str) -> Result<(), KubeError> {
    for element in patch {
        let Some(id) = element.get(key) else {
            return Err(KubeError::bad_request(format!(
                "a list element of the patch has no {key:?}, the key its list merges by"
            )));
        };
        let found = current.iter().position(|c| c.get(key) == Some(id));
        let delete = element.get("$patch").and_then(Value::as_str) == Some("delete");
        match (found, delete) {
            (Some(at), true) => {
                current.remove(at);
            }
            (None, true) => {}
            (Some(at), false) => strategic_merge(&mut current[at], element)?,
            (None, false) => {
                let mut added = Value::Null;
                strategic_merge(&mut added, element)?;
                current.push(added);
            }
        }
    }
    Ok(())
}

/// RFC 7386: objects merge, `null` removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let object = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// RFC 6902: add, remove, replace, move, copy, test; all or nothing.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), KubeError> {
    let Value::Array(ops) = ops else {
        return Err(KubeError::bad_request(
            "a JSON patch is a list of operations ([{\"op\": ..., \"path\": ...}])",
        ));
    };
    let mut work = target.clone();
    for (i, op) in ops.iter().enumerate() {
        let fail = |why: String| KubeError::invalid(format!("JSON patch operation {i}: {why}"));
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("has no \"path\"".to_owned()))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| fail("has no \"value\"".to_owned()))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| fail("has no \"from\"".to_owned()))
        };
        match name {
            "add" => add(&mut work, path, value()?).map_err(fail)?,
            "remove" => {
                remove(&mut work, path).map_err(fail)?;
            }
            "replace" => {
                remove(&mut work, path).map_err(fail)?;
                add(&mut work, path, value()?).map_err(fail)?;
            }
            "move" => {
                let moved = remove(&mut work, from()?).map_err(fail)?;
                add(&mut work, path, moved).map_err(fail)?;
            }
            "copy" => {
                let copied = work
                    .pointer(from()?)
                    .cloned()
                    .ok_or_else(|| fail(format!("nothing at {:?}", from().unwrap_or_default())))?;
                add(&mut work, path, copied).map_err(fail)?;
            }
            "test" => {
                if work.pointer(path) != Some(&value()?) {
                    return Err(fail(format!("test failed at {path:?}")));
                }
            }
            other => return Err(fail(format!("unknown op {other:?}"))),
        }
    }
    *target = work;
    Ok(())
}

/// `/a/b/0` → (`/a/b`, `0`), with `~1` and `~0` unescaped.
fn split(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let at = if last == "-" {
                list.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= list.len())
                    .ok_or_else(|| format!("{last:?} is not an index of {parent:?}"))?
            };
            list.insert(at, value);
            Ok(())
        }
        _ => Err(format!("nothing to add into at {parent:?}")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    let missing = || format!("nothing at {path:?}");
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last).ok_or_else(missing),
        Some(Value::Array(list)) => {
            let at = last.parse::<usize>().ok().filter(|i| *i < list.len());
            at.map(|i| list.remove(i)).ok_or_else(missing)
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rc() -> Value {
        json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "web", "image": "a:1", "ports": [{"containerPort": 80}, {"containerPort": 90}]},
            {"name": "side", "image": "s:1"}
        ]}}}})
    }

    #[test]
    fn strategic_merge_keys_containers_by_name_and_ports_by_container_port() {
        let mut target = rc();
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
        "containers": [
            {"name": "web", "image": "a:2", "ports": [{"containerPort": 90, "$patch": "delete"}]},
            {"name": "side", "$patch": "delete"}
        ]}}}});
        strategic_merge(&mut target, &patch).unwrap();
        assert_eq!(
            target,
            json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "web", "image": "a:2", "ports": [{"containerPort": 80}]}
            ]}}}})
        );
    }

    #[test]
    fn merge_patch_removes_nulls_and_replaces_lists() {
        let mut target = rc();
        merge(
            &mut target,
            &json!({"spec": {"replicas": null, "template": {"spec": {"containers": []}}}}),
        );
        assert_eq!(
            target,
            json!({"spec": {"template": {"spec": {"containers": []}}}})
        );
    }

    #[test]
    fn json_patch_applies_all_operations_or_none() {
        let mut target = rc();
        let ops = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "x", "image": "x:1"}},
            {"op": "test", "path": "/spec/replicas", "value": 5}
        ]);
        json_patch(&mut target, &ops).unwrap();
        assert_eq!(target["spec"]["replicas"], 5);
        assert_eq!(
            target["spec"]["template"]["spec"]["containers"][2]["name"],
            "x"
        );
        let failing = json!([
            {"op": "replace", "path": "/spec/replicas", "value": 7},
            {"op": "test", "path": "/spec/replicas", "value": 8}
        ]);
        let err = json_patch(&mut target, &failing).unwrap_err();
        assert!(err.message.contains("operation 1"), "{}", err.message);
        assert_eq!(
            target["spec"]["replicas"], 5,
            "a failed patch changes nothing"
        );
    }
}
