//! The resources served, by their URL plural, and how each is listed,
//! found, and printed as a table.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::objects;
use super::status::KubeError;
use super::table::{self, Column};
use crate::shell::events::EventJson;
use crate::shell::handle::Snapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ReplicationController,
    Pod,
    Node,
    Service,
    Endpoints,
    Event,
}

/// What a peer knows of itself that its objects show besides the snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// The peer's DNS address for services: a service's `clusterIP`.
    pub service_dns: &'a Result<std::net::IpAddr, String>,
}

impl Kind {
    /// `replicationcontrollers` → the kind; anything else is a 404 naming
    /// what is served.
    pub fn from_plural(plural: &str) -> Result<Kind, KubeError> {
        Ok(match plural {
            "replicationcontrollers" => Kind::ReplicationController,
            "pods" => Kind::Pod,
            "nodes" => Kind::Node,
            "services" => Kind::Service,
            "endpoints" => Kind::Endpoints,
            "events" => Kind::Event,
            other => {
                return Err(KubeError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "the server could not find the requested resource {other:?}: Shoal serves \
                         replicationcontrollers, pods, nodes, services, endpoints and events"
                    ),
                ));
            }
        })
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::ReplicationController => "replicationcontrollers",
            Kind::Pod => "pods",
            Kind::Node => "nodes",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::Event => "events",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::ReplicationController => "ReplicationController",
            Kind::Pod => "Pod",
            Kind::Node => "Node",
            Kind::Service => "Service",
            Kind::Endpoints => "Endpoints",
            Kind::Event => "Event",
        }
    }

    pub fn namespaced(self) -> bool {
        self != Kind::Node
    }

    /// Fields besides `metadata.name`/`namespace` a field selector may
    /// name; `None`: any (events).
    pub fn selectable_fields(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Pod => Some(&POD_FIELDS),
            Kind::Event => None,
            _ => Some(&[]),
        }
    }

    pub fn writable(self) -> bool {
        matches!(self, Kind::ReplicationController | Kind::Service)
    }

    /// Every object of the kind with its metadata and table cells, in name
    /// order (events: oldest last-seen first); with its JSON too unless
    /// `cells_only` (a Table has no use for it, and encoding it is most of a
    /// large list's cost). `events`: the cluster's, gathered by the caller
    /// (see [`Kind::gathers_events`]).
    pub fn list(
        self,
        snapshot: &Snapshot,
        local: Local<'_>,
        events: &[EventJson],
        cells_only: bool,
    ) -> Vec<Item> {
        fn items<T: serde::Serialize>(
            objects: Vec<T>,
            cells_only: bool,
            meta: impl Fn(&T) -> &ObjectMeta,
            row: impl Fn(&T) -> Vec<Value>,
        ) -> Vec<Item> {
            objects
                .iter()
                .map(|o| Item {
                    fields: BTreeMap::new(),
                    meta: meta(o).clone(),
                    json: if cells_only {
                        Value::Null
                    } else {
                        serde_json::to_value(o).unwrap_or_default()
                    },
                    cells: row(o),
                })
                .collect()
        }
        let now = crate::cli::human::now_ms();
        match self {
            Kind::ReplicationController => items(
                objects::rcs(snapshot),
                cells_only,
                |o| &o.metadata,
                |o| table::rc_row(o, now),
            ),
            Kind::Pod => objects::pods(snapshot)
                .iter()
                .map(|o| Item {
                    fields: pod_fields(o),
                    meta: o.metadata.clone(),
                    json: if cells_only { Value::Null } else { to_json(o) },
                    cells: table::pod_row(o, now),
                })
                .collect(),
            Kind::Node => items(
                objects::nodes(snapshot),
                cells_only,
                |o| &o.metadata,
                |o| table::node_row(o, now),
            ),
            Kind::Service => items(
                objects::services(snapshot, local.service_dns),
                cells_only,
                |o| &o.metadata,
                |o| table::service_row(o, now),
            ),
            Kind::Endpoints => items(
                objects::endpoints(snapshot),
                cells_only,
                |o| &o.metadata,
                |o| table::endpoints_row(o, now),
            ),
            Kind::Event => super::events::items(snapshot, events, cells_only),
        }
    }

    /// True when listing the kind needs the cluster's events: they are
    /// not in the snapshot but asked of every live peer.
    pub fn gathers_events(self) -> bool {
        self == Kind::Event
    }

    /// One object by name (an event: see [`Kind::list`]).
    pub fn get(self, snapshot: &Snapshot, local: Local<'_>, name: &str) -> Result<Item, KubeError> {
        let now = crate::cli::human::now_ms();
        let item = |meta: &ObjectMeta, json: Value, cells: Vec<Value>| Item {
            fields: BTreeMap::new(),
            meta: meta.clone(),
            json,
            cells,
        };
        let found = match self {
            Kind::ReplicationController => objects::rc(snapshot, name)
                .map(|o| item(&o.metadata, to_json(&o), table::rc_row(&o, now))),
            Kind::Pod => objects::pod(snapshot, name).map(|o| Item {
                fields: pod_fields(&o),
                ..item(&o.metadata, to_json(&o), table::pod_row(&o, now))
            }),
            Kind::Node => objects::node(snapshot, name)
                .map(|o| item(&o.metadata, to_json(&o), table::node_row(&o, now))),
            Kind::Service => objects::service(snapshot, local.service_dns, name)
                .map(|o| item(&o.metadata, to_json(&o), table::service_row(&o, now))),
            Kind::Endpoints => objects::endpoint(snapshot, name)
                .map(|o| item(&o.metadata, to_json(&o), table::endpoints_row(&o, now))),
            Kind::Event => None,
        };
        found.ok_or_else(|| KubeError::not_found(self.plural(), name))
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Kind::ReplicationController => &table::RC_COLUMNS,
            Kind::Pod => &table::POD_COLUMNS,
            Kind::Node => &table::NODE_COLUMNS,
            Kind::Service => &table::SERVICE_COLUMNS,
            Kind::Endpoints => &table::ENDPOINTS_COLUMNS,
            Kind::Event => &table::EVENT_COLUMNS,
        }
    }
}

/// The fields besides metadata an object can be selected by: a pod's node
/// and phase (`describe node` lists the pods of a node by them).
pub const POD_FIELDS: [&str; 2] = ["spec.nodeName", "status.phase"];

fn pod_fields(pod: &k8s_openapi::api::core::v1::Pod) -> BTreeMap<String, String> {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
    POD_FIELDS
        .iter()
        .zip([node, phase])
        .filter_map(|(field, value)| Some(((*field).to_owned(), value?)))
        .collect()
}

fn to_json<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or_default()
}

/// One object: its metadata (selectors, table rows), JSON and table cells.
#[derive(Debug, Clone)]
pub struct Item {
    pub meta: ObjectMeta,
    /// Selectable fields beyond the metadata (see [`POD_FIELDS`]).
    pub fields: BTreeMap<String, String>,
    pub json: Value,
    pub cells: Vec<Value>,
}

impl Item {
    pub fn name(&self) -> &str {
        self.meta.name.as_deref().unwrap_or_default()
    }
}
