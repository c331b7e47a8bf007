//! The events one peer keeps: bounded, repeats counted instead of kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::peer::events::{EventRecord, EventType, ObjectKind};

/// Distinct events a peer keeps; the least recently seen goes first.
pub const EVENTS_KEPT: usize = 1024;

/// One event as the API serves it, with Kubernetes' field names (`type`,
/// `reason`, `message`, `involvedObject`, `count`, `firstTimestamp`,
/// `lastTimestamp`, `source.host`) plus the times in ms for clients.
/// The same shape travels between peers (bincode, no skipped fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub involved_object: ObjectRef,
    pub count: u32,
    /// RFC 3339, UTC.
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub source: Source,
    /// Derived alike by every peer (node down, unplaced): merged into one
    /// row across peers.
    pub cluster_wide: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The node that recorded it (several, comma-separated, for a
    /// cluster-wide event seen by several).
    pub host: String,
}

impl EventJson {
    /// `rc/hello`, `pod/hello-0`, `node/node1`: the OBJECT column.
    pub fn object(&self) -> String {
        let short = match self.involved_object.kind.as_str() {
            "ReplicationController" => "rc",
            "Pod" => "pod",
            "Node" => "node",
            "Service" => "svc",
            other => other,
        };
        format!("{short}/{}", self.involved_object.name)
    }
}

type Key = (ObjectKind, String, EventType, &'static str, String);

#[derive(Debug, Clone)]
struct Seen {
    first_ms: u64,
    last_ms: u64,
    count: u32,
    next_retry_ms: Option<u64>,
    cluster_wide: bool,
}

/// This peer's events. Not shared: the driver task owns it.
#[derive(Debug)]
pub struct EventStore {
    host: String,
    capacity: usize,
    seen: BTreeMap<Key, Seen>,
}

impl EventStore {
    /// `host`: this node's name, the events' `source.host`.
    pub fn new(host: String, capacity: usize) -> EventStore {
        EventStore {
            host,
            capacity: capacity.max(1),
            seen: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Keeps `record`, or counts it as a repeat of the same event.
    pub fn record(&mut self, record: EventRecord) {
        let key = (
            record.object,
            record.name,
            record.kind,
            record.reason,
            record.message,
        );
        if let Some(seen) = self.seen.get_mut(&key) {
            seen.count = seen.count.saturating_add(1);
            seen.first_ms = seen.first_ms.min(record.at_ms);
            seen.last_ms = seen.last_ms.max(record.at_ms);
            seen.next_retry_ms = record.next_retry_ms.or(seen.next_retry_ms);
            return;
        }
        if self.seen.len() >= self.capacity
            && let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(k, _)| k.clone())
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(
            key,
            Seen {
                first_ms: record.at_ms,
                last_ms: record.at_ms,
                count: 1,
                next_retry_ms: record.next_retry_ms,
                cluster_wide: record.cluster_wide,
            },
        );
    }

    /// Every kept event, oldest last-seen first.
    pub fn list(&self) -> Vec<EventJson> {
        let mut out: Vec<EventJson> = self
            .seen
            .iter()
            .map(|((object, name, kind, reason, message), s)| {
                let message = match s.next_retry_ms {
                    Some(at) => format!("{message}; next retry at {}", timestamp(at)),
                    None => message.clone(),
                };
                EventJson {
                    kind: kind.as_str().to_owned(),
                    reason: (*reason).to_owned(),
                    message,
                    involved_object: ObjectRef {
                        kind: object.as_str().to_owned(),
                        name: name.clone(),
                    },
                    count: s.count,
                    first_timestamp: timestamp(s.first_ms),
                    last_timestamp: timestamp(s.last_ms),
                    first_ms: s.first_ms,
                    last_ms: s.last_ms,
                    source: Source {
                        host: self.host.clone(),
                    },
                    cluster_wide: s.cluster_wide,
                }
            })
            .collect();
        sort(&mut out);
        out
    }
}

/// Oldest last-seen first, then by object: the order `get events` prints.
pub fn sort(events: &mut [EventJson]) {
    events.sort_by(|a, b| {
        (a.last_ms, &a.involved_object.name, &a.reason).cmp(&(
            b.last_ms,
            &b.involved_object.name,
            &b.reason,
        ))
    });
}

/// Merges the events of several peers: a cluster-wide event every peer
/// recorded becomes one row (earliest first seen, latest last seen, the
/// highest count, every recording host); the others stay as they are.
pub fn merge(lists: Vec<Vec<EventJson>>) -> Vec<EventJson> {
    let mut shared: BTreeMap<(String, String, String, String, String), EventJson> = BTreeMap::new();
    let mut out = Vec::new();
    for event in lists.into_iter().flatten() {
        if !event.cluster_wide {
            out.push(event);
            continue;
        }
        let key = (
            event.involved_object.kind.clone(),
            event.involved_object.name.clone(),
            event.kind.clone(),
            event.reason.clone(),
            event.message.clone(),
        );
        match shared.get_mut(&key) {
            None => {
                shared.insert(key, event);
            }
            Some(row) => {
                if event.first_ms < row.first_ms {
                    row.first_ms = event.first_ms;
                    row.first_timestamp = event.first_timestamp;
                }
                if event.last_ms > row.last_ms {
                    row.last_ms = event.last_ms;
                    row.last_timestamp = event.last_timestamp;
                }
                row.count = row.count.max(event.count);
                let mut hosts: Vec<&str> = row.source.host.split(',').collect();
                hosts.push(&event.source.host);
                hosts.sort_unstable();
                hosts.dedup();
                row.source.host = hosts.join(",");
            }
        }
    }
    out.extend(shared.into_values());
    sort(&mut out);
    out
}

/// Keeps the events about `target` (`rc/NAME` also takes its pods).
pub fn filter_for(events: Vec<EventJson>, target: &Target) -> Vec<EventJson> {
    events.into_iter().filter(|e| target.matches(e)).collect()
}

/// What `--for` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: ObjectKind,
    pub name: String,
}

impl Target {
    /// `rc/NAME`, `pod/NAME` or `node/NAME` (kubectl's spellings of the
    /// kinds are accepted too).
    pub fn parse(text: &str) -> Result<Target, String> {
        let (kind, name) = text
            .split_once('/')
            .filter(|(_, name)| !name.is_empty())
            .ok_or_else(|| {
                format!(
                    "--for {text:?}: expected KIND/NAME, e.g. rc/hello, pod/hello-0, node/node1"
                )
            })?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "rc" | "rcs" | "replicationcontroller" | "replicationcontrollers" => {
                ObjectKind::ReplicationController
            }
            "pod" | "pods" | "po" => ObjectKind::Pod,
            "node" | "nodes" | "no" => ObjectKind::Node,
            "svc" | "service" | "services" => ObjectKind::Service,
            other => {
                return Err(format!(
                    "--for {text:?}: unknown kind {other:?}; use rc, pod, node or svc"
                ));
            }
        };
        Ok(Target {
            kind,
            name: name.to_owned(),
        })
    }

    pub fn matches(&self, e: &EventJson) -> bool {
        let object = &e.involved_object;
        if object.kind == self.kind.as_str() && object.name == self.name {
            return true;
        }
        // An RC's events include its pods' (`NAME-INDEX`).
        self.kind == ObjectKind::ReplicationController
            && object.kind == ObjectKind::Pod.as_str()
            && object
                .name
                .strip_prefix(&self.name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|index| !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// RFC 3339 in UTC, to the second.
pub fn timestamp(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::events;

    fn backoff(at_ms: u64) -> EventRecord {
        let mut r = EventRecord::new(
            at_ms,
            EventType::Warning,
            "BackOff",
            (ObjectKind::Pod, "hello-0".into()),
            "Back-off restarting the failed pod (exited with code 1)".into(),
        );
        r.next_retry_ms = Some(at_ms + 10_000);
        r
    }

    #[test]
    fn repeats_are_counted_with_first_and_last_seen() {
        let mut store = EventStore::new("node0".into(), 8);
        for at in [1_000, 61_000, 121_000] {
            store.record(backoff(at));
        }
        let list = store.list();
        assert_eq!(list.len(), 1);
        let e = &list[0];
        assert_eq!((e.count, e.first_ms, e.last_ms), (3, 1_000, 121_000));
        assert_eq!(e.object(), "pod/hello-0");
        assert_eq!(e.source.host, "node0");
        assert!(
            e.message.ends_with("next retry at 1970-01-01T00:02:11Z"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_store_is_bounded_and_forgets_the_least_recently_seen() {
        let mut store = EventStore::new("node0".into(), 3);
        for i in 0..5u64 {
            store.record(EventRecord::new(
                i * 1000,
                EventType::Normal,
                "Started",
                events::pod(&shoal_crdt_state::pod::PodId {
                    rc: "web".into(),
                    index: i as u32,
                }),
                "Started the pod's containers".into(),
            ));
        }
        let names: Vec<String> = store.list().iter().map(EventJson::object).collect();
        assert_eq!(names, ["pod/web-2", "pod/web-3", "pod/web-4"]);
    }

    #[test]
    fn cluster_wide_events_of_several_peers_merge_into_one_row() {
        let down = |host: &str, at: u64| {
            let mut store = EventStore::new(host.into(), 8);
            store.record(
                EventRecord::new(
                    at,
                    EventType::Warning,
                    "NodeDown",
                    events::node("node2"),
                    "Node node2 is down".into(),
                )
                .cluster_wide(),
            );
            store.record(backoff(at));
            store.list()
        };
        let merged = merge(vec![down("node0", 5_000), down("node1", 4_000)]);
        let downs: Vec<&EventJson> = merged.iter().filter(|e| e.reason == "NodeDown").collect();
        assert_eq!(downs.len(), 1);
        assert_eq!(downs[0].source.host, "node0,node1");
        assert_eq!((downs[0].first_ms, downs[0].last_ms), (4_000, 5_000));
        // Each peer's own back-off stays its own row.
        assert_eq!(merged.iter().filter(|e| e.reason == "BackOff").count(), 2);
    }

    #[test]
    fn for_an_rc_takes_its_pods_but_not_an_rc_with_a_longer_name() {
        let target = Target::parse("rc/web").unwrap();
        let mut store = EventStore::new("n".into(), 8);
        for name in ["web-0", "web-12", "web-x", "webby-0"] {
            store.record(EventRecord::new(
                1,
                EventType::Normal,
                "Started",
                (ObjectKind::Pod, name.into()),
                "m".into(),
            ));
        }
        store.record(EventRecord::new(
            1,
            EventType::Normal,
            "Scaled",
            events::rc("web"),
            "m".into(),
        ));
        let kept: Vec<String> = filter_for(store.list(), &target)
            .iter()
            .map(EventJson::object)
            .collect();
        assert_eq!(kept, ["rc/web", "pod/web-0", "pod/web-12"]);
        assert!(
            Target::parse("job/web")
                .unwrap_err()
                .contains("use rc, pod, node or svc")
        );
        assert!(Target::parse("web").unwrap_err().contains("KIND/NAME"));
    }
}
