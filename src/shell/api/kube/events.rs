//! The cluster's events (see [`crate::shell::events`]) as `v1.Event`
//! objects: `kubectl get events` and the Events section of `describe`.
//!
//! - **Gathered per request**: events are not in the replicated state, so a
//!   list asks every live peer (the fan-out `shoal get events` uses); peers
//!   that did not answer are named in a `Warning` header, which kubectl
//!   prints.
//! - **involvedObject.uid** is the uid the object itself is served with, so
//!   `describe`'s `involvedObject.uid=` selector finds them. An event seen
//!   before an RC, pod or service was (re)created is about an earlier object
//!   of that name and gets no uid: `describe` of the new one leaves it out;
//!   so does an event about a pod of that name that another node ran.
//! - **metadata.name** is `OBJECT.HASH`, the hash of what makes the event
//!   distinct (object, type, reason, message, recording host), so a repeat
//!   keeps its name and a watch sees it MODIFIED with a higher `count`.
//! - Every event is in namespace `default`, a node's too (as in
//!   Kubernetes); its involvedObject has no namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;

use super::kinds::Item;
use super::objects;
use crate::cli::human;
use crate::shell::events::EventJson;
use crate::shell::handle::Snapshot;

/// Who the events say recorded them (`source.component`; `describe`'s
/// FROM column prints it with the host).
const COMPONENT: &str = "shoal";

/// What `retry at` suffix a back-off's message carries; it changes with
/// every retry, so the event's name leaves it out.
const RETRY_SUFFIX: &str = "; next retry at ";

/// The events as items, in the order given (oldest last-seen first).
pub fn items(snapshot: &Snapshot, events: &[EventJson], cells_only: bool) -> Vec<Item> {
    let known = KnownObjects::of(snapshot);
    let now = human::now_ms();
    events
        .iter()
        .map(|e| {
            let event = event_object(e, &known);
            Item {
                fields: fields(&event),
                meta: event.metadata.clone(),
                json: if cells_only {
                    Value::Null
                } else {
                    serde_json::to_value(&event).unwrap_or_default()
                },
                cells: row(&event, now),
            }
        })
        .collect()
}

/// Each served object's uid, creation time (ms) and node (pods), by kind
/// and name.
struct KnownObjects(BTreeMap<(String, String), Known>);

struct Known {
    uid: String,
    created_ms: u64,
    node: Option<String>,
}

impl KnownObjects {
    fn of(snapshot: &Snapshot) -> KnownObjects {
        let mut known = BTreeMap::new();
        let mut add = |kind: &str, meta: &ObjectMeta, node: Option<String>| {
            if let (Some(name), Some(uid)) = (&meta.name, &meta.uid) {
                let created_ms = meta
                    .creation_timestamp
                    .as_ref()
                    .map_or(0, |Time(t)| u64::try_from(t.as_millisecond()).unwrap_or(0));
                let value = Known {
                    uid: uid.clone(),
                    created_ms,
                    node,
                };
                known.insert((kind.to_owned(), name.clone()), value);
            }
        };
        for o in objects::rcs(snapshot) {
            add("ReplicationController", &o.metadata, None);
        }
        for o in objects::pods(snapshot) {
            let node = o.spec.as_ref().and_then(|s| s.node_name.clone());
            add("Pod", &o.metadata, node);
        }
        for o in objects::nodes(snapshot) {
            add("Node", &o.metadata, None);
        }
        for o in objects::service_objects(snapshot) {
            add("Service", &o.metadata, None);
        }
        KnownObjects(known)
    }

    /// The uid of the object `e` is about, if it is the one served now.
    fn uid(&self, e: &EventJson) -> Option<String> {
        let kind = e.involved_object.kind.as_str();
        let known = self
            .0
            .get(&(kind.to_owned(), e.involved_object.name.clone()))?;
        // A node's uid does not change with its restarts; the others' is
        // their creation's, and creation times have whole seconds.
        let earlier = kind != "Node" && e.last_ms / 1000 * 1000 < known.created_ms;
        // A pod of that name that another node ran (before a move or a
        // rollout) is another pod: its node records what happens to it.
        let elsewhere = !e.cluster_wide
            && known
                .node
                .as_ref()
                .is_some_and(|node| *node != e.source.host);
        (!earlier && !elsewhere).then(|| known.uid.clone())
    }
}

fn event_object(e: &EventJson, known: &KnownObjects) -> Event {
    let namespaced = e.involved_object.kind != "Node";
    let namespace = || Some("default".to_owned());
    Event {
        metadata: ObjectMeta {
            name: Some(name(e)),
            namespace: namespace(),
            uid: Some(objects::uid("event", &name(e), None)),
            resource_version: Some((u128::from(e.last_ms) << 32 | u128::from(e.count)).to_string()),
            creation_timestamp: objects::time_ms(e.first_ms),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some(e.involved_object.kind.clone()),
            name: Some(e.involved_object.name.clone()),
            namespace: if namespaced { namespace() } else { None },
            uid: known.uid(e),
            ..ObjectReference::default()
        },
        reason: Some(e.reason.clone()),
        message: Some(e.message.clone()),
        type_: Some(e.kind.clone()),
        count: Some(i32::try_from(e.count).unwrap_or(i32::MAX)),
        first_timestamp: objects::time_ms(e.first_ms),
        last_timestamp: objects::time_ms(e.last_ms),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: Some(e.source.host.clone()),
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        reporting_instance: Some(e.source.host.clone()),
        ..Event::default()
    }
}

/// `hello.5f3a9c0e1b2d4a68`: the object's name and a hash of what makes
/// the event distinct (see the module note).
fn name(e: &EventJson) -> String {
    let message = e
        .message
        .split_once(RETRY_SUFFIX)
        .map_or(e.message.as_str(), |(m, _)| m);
    // A cluster-wide event is one row whichever peers recorded it.
    let host = if e.cluster_wide { "*" } else { &e.source.host };
    let key = format!(
        "{}\n{}\n{}\n{}\n{message}\n{host}",
        e.involved_object.kind, e.involved_object.name, e.kind, e.reason
    );
    let hash = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    format!("{}.{hash:016x}", e.involved_object.name)
}

/// The fields an event can be selected by (`describe` sends the
/// `involvedObject.*` ones).
fn fields(event: &Event) -> BTreeMap<String, String> {
    let object = &event.involved_object;
    let source = event.source.as_ref().and_then(|s| s.component.clone());
    [
        ("involvedObject.kind", object.kind.clone()),
        ("involvedObject.name", object.name.clone()),
        (
            "involvedObject.namespace",
            Some(object.namespace.clone().unwrap_or_default()),
        ),
        ("involvedObject.uid", object.uid.clone()),
        ("involvedObject.apiVersion", object.api_version.clone()),
        ("reason", event.reason.clone()),
        ("type", event.type_.clone()),
        ("source", source.clone()),
        ("reportingComponent", source),
    ]
    .into_iter()
    .filter_map(|(field, value)| Some((field.to_owned(), value?)))
    .collect()
}

/// kubectl's columns: LAST SEEN (`5m`, or `5m (x3 over 20m)`), TYPE,
/// REASON, OBJECT (`replicationcontroller/hello`), MESSAGE.
fn row(event: &Event, now_ms: u64) -> Vec<Value> {
    let ms = |t: &Option<Time>| {
        t.as_ref()
            .map_or(0, |Time(t)| u64::try_from(t.as_millisecond()).unwrap_or(0))
    };
    let last = human::age(ms(&event.last_timestamp), now_ms);
    let last_seen = match event.count {
        Some(count) if count > 1 => format!(
            "{last} (x{count} over {})",
            human::age(ms(&event.first_timestamp), now_ms)
        ),
        _ => last,
    };
    let object = &event.involved_object;
    vec![
        last_seen.into(),
        event.type_.clone().unwrap_or_default().into(),
        event.reason.clone().unwrap_or_default().into(),
        format!(
            "{}/{}",
            object.kind.as_deref().unwrap_or_default().to_lowercase(),
            object.name.as_deref().unwrap_or_default()
        )
        .into(),
        event.message.clone().unwrap_or_default().into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::events::store::{ObjectRef, Source};

    fn event(kind: &str, name: &str, message: &str, host: &str, count: u32) -> EventJson {
        EventJson {
            kind: "Warning".into(),
            reason: "BackOff".into(),
            message: message.into(),
            involved_object: ObjectRef {
                kind: kind.into(),
                name: name.into(),
            },
            count,
            first_timestamp: String::new(),
            last_timestamp: String::new(),
            first_ms: 1_796_190_000_000,
            last_ms: 1_796_190_060_000,
            source: Source { host: host.into() },
            cluster_wide: false,
        }
    }

    #[test]
    fn a_repeat_keeps_its_name_and_another_host_gets_another() {
        let first = event(
            "Pod",
            "hello-0",
            "Back-off; next retry at 12:00",
            "node0",
            1,
        );
        let again = event(
            "Pod",
            "hello-0",
            "Back-off; next retry at 12:05",
            "node0",
            4,
        );
        let elsewhere = event(
            "Pod",
            "hello-0",
            "Back-off; next retry at 12:00",
            "node1",
            1,
        );
        assert_eq!(name(&first), name(&again));
        assert_ne!(name(&first), name(&elsewhere));
        assert!(name(&first).starts_with("hello-0."), "{}", name(&first));
    }

    #[test]
    fn only_events_of_the_object_served_now_carry_its_uid() {
        let pod = Known {
            uid: "u".into(),
            created_ms: 1_796_190_030_000,
            node: Some("node1".into()),
        };
        let known = KnownObjects(BTreeMap::from([(("Pod".into(), "hello-0".into()), pod)]));
        let on = |host: &str, last_ms: u64| {
            let mut e = event("Pod", "hello-0", "m", host, 1);
            e.last_ms = last_ms;
            known.uid(&e)
        };
        assert_eq!(on("node1", 1_796_190_060_000).as_deref(), Some("u"));
        // The same second as the creation still counts (whole seconds).
        assert_eq!(on("node1", 1_796_190_030_999).as_deref(), Some("u"));
        assert_eq!(
            on("node1", 1_796_190_029_000),
            None,
            "before it was created"
        );
        assert_eq!(on("node0", 1_796_190_060_000), None, "another node's pod");
        assert_eq!(known.uid(&event("Pod", "hello-1", "m", "node1", 1)), None);
    }

    #[test]
    fn fields_and_row_are_what_kubectl_selects_and_prints() {
        let known = KnownObjects(BTreeMap::new());
        let node = event_object(&event("Node", "node2", "down", "node0", 3), &known);
        let fields = fields(&node);
        assert_eq!(fields["involvedObject.kind"], "Node");
        assert_eq!(fields["involvedObject.namespace"], "");
        assert!(!fields.contains_key("involvedObject.uid"));
        assert_eq!(node.metadata.namespace.as_deref(), Some("default"));
        let cells = row(&node, 1_796_190_120_000);
        assert_eq!(cells[0], "60s (x3 over 2m)");
        assert_eq!(cells[3], "node/node2");
        let pod = event_object(&event("Pod", "hello-0", "m", "node0", 1), &known);
        assert_eq!(pod.involved_object.namespace.as_deref(), Some("default"));
        assert_eq!(row(&pod, 1_796_190_120_000)[0], "60s");
    }
}
