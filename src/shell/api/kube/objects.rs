//! Snapshot → Kubernetes objects (`k8s-openapi` types), namespace `default`.
//!
//! - **uid** is derived from the name and the stamp the object was created
//!   with, so every peer gives the same object the same uid, and a deleted
//!   and re-created RC gets a new one (what `describe` matches pods by).
//! - **resourceVersion** of an object is its newest write stamp (hybrid
//!   clock, as a number); of a list, the snapshot's generation. Writes do not
//!   check it: under CRDT merge each field is a last-writer-wins register,
//!   so a `replace`/`edit` carrying an old resourceVersion still wins field
//!   by field if its stamp is newer, and never answers 409 Conflict.
//! - **creationTimestamp** is the creation stamp's wall-clock part (the
//!   writer's clock). A pod's is when its node started it (the node's
//!   clock; a new template is a new pod, restarts keep it), or its RC's
//!   creation while no node has reported that.
//! - **last-applied-configuration** is the text the last write through
//!   this API carried in that annotation (kept in the object's body
//!   register, see `shoal_crdt_state::LastApplied`); Shoal's own `apply`
//!   keeps it. An object never written by `kubectl apply` has none, and
//!   kubectl says so the first time it applies to it, as with Kubernetes.
//! - **Labels** of an RC are its template labels (Kubernetes' default);
//!   a pod carries its RC's current template labels and an owner reference
//!   to the RC.

use std::collections::BTreeMap;

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Node, NodeAddress, NodeCondition,
    NodeSpec, NodeStatus, NodeSystemInfo, ObjectReference, Pod, PodCondition, PodSpec,
    PodStatus as KubePodStatus, ReplicationController, ReplicationControllerStatus, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::manifest::render;
use shoal_crdt_state::spec::RcSpec;

use super::super::models::{NodeJson, PodJson};
use super::super::views;
use crate::shell::handle::Snapshot;

/// The annotation `kubectl apply` keeps its last applied manifest in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Every live RC as a Kubernetes object, in name order.
pub fn rcs(snapshot: &Snapshot) -> Vec<ReplicationController> {
    snapshot
        .state
        .desired
        .live_rcs()
        .map(|rc| rc_object(snapshot, &rc.to_spec()))
        .collect()
}

pub fn rc(snapshot: &Snapshot, name: &str) -> Option<ReplicationController> {
    views::rc_spec(snapshot, name).map(|spec| rc_object(snapshot, &spec))
}

fn rc_object(snapshot: &Snapshot, spec: &RcSpec) -> ReplicationController {
    let v1 = render::to_v1(spec);
    let record = snapshot
        .state
        .desired
        .get(&spec.name)
        .map(|view| view.record);
    let created = record.and_then(|r| r.created());
    let version = record.and_then(|r| r.max_stamp());
    let mut rc: ReplicationController = serde_json::to_value(&v1)
        .and_then(serde_json::from_value)
        .unwrap_or_default();
    let mut annotations = v1.metadata.annotations.clone();
    // The text kubectl sent, as it sent it: its next apply's three-way
    // patch is computed against it.
    if let Some(text) = record.and_then(|r| r.body.as_ref()?.val.last_applied.clone()) {
        annotations.insert(LAST_APPLIED.to_owned(), text);
    }
    rc.metadata = ObjectMeta {
        name: Some(spec.name.clone()),
        namespace: Some("default".to_owned()),
        uid: Some(uid("rc", &spec.name, created)),
        resource_version: Some(resource_version(version)),
        creation_timestamp: created.and_then(time),
        generation: Some(1),
        labels: Some(spec.template.labels.clone()),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    let row = views::rc_json(snapshot, spec);
    let total = views::pods(snapshot, Some(&spec.name))
        .iter()
        .filter(|p| p.phase != "Unknown")
        .count();
    rc.status = Some(ReplicationControllerStatus {
        replicas: i32::try_from(total).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(i32::try_from(total).unwrap_or(i32::MAX)),
        ready_replicas: Some(row.ready as i32),
        available_replicas: Some(row.ready as i32),
        observed_generation: Some(1),
        ..ReplicationControllerStatus::default()
    });
    rc
}

/// Every reported pod, in Shoal's pod order.
pub fn pods(snapshot: &Snapshot) -> Vec<Pod> {
    let owners = owners(snapshot);
    views::pods(snapshot, None)
        .iter()
        .map(|row| pod_object(snapshot, &owners, row))
        .collect()
}

pub fn pod(snapshot: &Snapshot, name: &str) -> Option<Pod> {
    let owners = owners(snapshot);
    // The same choice among reporters as `shoal get pod` (see reads::locate_pod).
    let (id, node) = super::super::reads::locate_pod(snapshot, name).ok()?;
    let record = snapshot.state.observed.get(node)?;
    let status = record.pod(&id)?;
    let row = views::pod_json(snapshot, node, record, status);
    Some(pod_object(snapshot, &owners, &row))
}

/// What a pod needs from its RC: spec (labels), containers, uid, created.
struct Owner {
    spec: RcSpec,
    /// The template's containers in Kubernetes' form (ports, command, ...).
    containers: Vec<Container>,
    uid: String,
    created: Option<Hlc>,
}

fn owners(snapshot: &Snapshot) -> BTreeMap<String, Owner> {
    snapshot
        .state
        .desired
        .live_rcs()
        .map(|rc| {
            let created = rc.record.created();
            let spec = rc.to_spec();
            let containers =
                serde_json::to_value(render::to_v1(&spec).spec.template.spec.containers)
                    .and_then(serde_json::from_value)
                    .unwrap_or_default();
            let owner = Owner {
                spec,
                containers,
                uid: uid("rc", rc.name, created),
                created,
            };
            (rc.name.to_owned(), owner)
        })
        .collect()
}

fn pod_object(snapshot: &Snapshot, owners: &BTreeMap<String, Owner>, row: &PodJson) -> Pod {
    let owner = owners.get(&row.rc);
    let mut containers: Vec<Container> = owner.map(|o| o.containers.clone()).unwrap_or_default();
    if containers.is_empty() {
        containers.push(Container {
            name: row.rc.clone(),
            ..Container::default()
        });
    }
    // The image the node runs, which differs from the template's during a rollout.
    containers[0].image = Some(row.image.clone());
    let running = row.phase == "Running";
    let waiting_reason = (!running).then(|| {
        if row.phase == "CrashLoopBackOff" {
            "CrashLoopBackOff".to_owned()
        } else if row.preparing.is_some() {
            "ContainerCreating".to_owned()
        } else {
            row.phase.clone()
        }
    });
    let statuses = containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            ready: row.ready,
            restart_count: row.restarts as i32,
            started: Some(running),
            state: Some(match &waiting_reason {
                None => ContainerState {
                    running: Some(ContainerStateRunning::default()),
                    ..ContainerState::default()
                },
                Some(reason) => ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.clone()),
                        message: row.last_error.clone().or_else(|| row.preparing.clone()),
                    }),
                    ..ContainerState::default()
                },
            }),
            ..ContainerStatus::default()
        })
        .collect();
    // Kubernetes' phases: a crash-looping pod is Running with a waiting container.
    let phase = match row.phase.as_str() {
        "CrashLoopBackOff" | "Terminating" => "Running",
        shoal_crdt_state::pod::ERR_IMAGE_NEVER_PULL => "Pending",
        other => other,
    };
    let created = owner.and_then(|o| o.created);
    // The pod's own start when its node reports it; else its RC's creation.
    let created_at = row
        .started_ms
        .and_then(time_ms)
        .or_else(|| created.and_then(time));
    let condition = |kind: &str, on: bool| PodCondition {
        type_: kind.to_owned(),
        status: if on { "True" } else { "False" }.to_owned(),
        ..PodCondition::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(row.name.clone()),
            namespace: Some("default".to_owned()),
            uid: Some(uid("pod", &format!("{}@{}", row.name, row.node), created)),
            resource_version: Some(snapshot.generation.to_string()),
            creation_timestamp: created_at.clone(),
            labels: owner.map(|o| o.spec.template.labels.clone()),
            annotations: Some(BTreeMap::from([(
                "shoal.io/template-hash".to_owned(),
                row.template_hash.clone(),
            )])),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "ReplicationController".to_owned(),
                    name: row.rc.clone(),
                    uid: o.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            node_name: Some(row.node.clone()),
            ..PodSpec::default()
        }),
        status: Some(KubePodStatus {
            phase: Some(phase.to_owned()),
            reason: (row.phase == "Terminating").then(|| "Terminating".to_owned()),
            message: row.last_error.clone(),
            start_time: created_at.clone(),
            host_ip: Some(row.ip.clone()),
            pod_ip: Some(row.ip.clone()),
            conditions: Some(vec![
                condition("PodScheduled", true),
                condition("Initialized", true),
                condition("ContainersReady", row.ready),
                condition("Ready", row.ready),
            ]),
            container_statuses: Some(statuses),
            ..KubePodStatus::default()
        }),
    }
}

pub fn nodes(snapshot: &Snapshot) -> Vec<Node> {
    views::nodes(snapshot).iter().map(node_object).collect()
}

pub fn node(snapshot: &Snapshot, name: &str) -> Option<Node> {
    views::nodes(snapshot)
        .iter()
        .find(|n| n.name == name)
        .map(node_object)
}

fn node_object(row: &NodeJson) -> Node {
    let ip = row
        .address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| row.address.clone());
    // Only an Alive node's report is current (`NodeJson::runtime`).
    let ready = row.ready;
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(row.cpu.clone())),
        ("memory".to_owned(), Quantity(row.memory.clone())),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(row.name.clone()),
            uid: Some(uid("node", &row.id, None)),
            resource_version: Some(row.started_ms.to_string()),
            creation_timestamp: time_ms(row.started_ms),
            labels: Some(row.labels.clone()),
            annotations: Some(BTreeMap::from([
                ("shoal.io/node-id".to_owned(), row.id.clone()),
                ("shoal.io/api-address".to_owned(), row.api_address.clone()),
                ("shoal.io/member-state".to_owned(), row.state.clone()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            unschedulable: row.cordoned.then_some(true),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".to_owned(),
                    address: ip,
                },
                NodeAddress {
                    type_: "Hostname".to_owned(),
                    address: row.name.clone(),
                },
            ]),
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "Unknown" }.to_owned(),
                reason: Some(format!("Member{}", row.state)),
                message: Some(format!(
                    "SWIM state {}; container engine {}",
                    row.state,
                    match row.runtime_word() {
                        "Ready" => "reachable",
                        "NotReady" => "unreachable",
                        _ => "unknown",
                    }
                )),
                ..NodeCondition::default()
            }]),
            node_info: Some(NodeSystemInfo {
                kubelet_version: format!("shoal-{}", env!("CARGO_PKG_VERSION")),
                container_runtime_version: "docker".to_owned(),
                operating_system: std::env::consts::OS.to_owned(),
                architecture: std::env::consts::ARCH.to_owned(),
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    }
}

/// Every live service, with this peer's DNS address as its cluster IP.
pub fn services(snapshot: &Snapshot, dns: &Result<IpAddr, String>) -> Vec<Service> {
    service_objects(snapshot)
        .into_iter()
        .map(|s| with_cluster_ip(s, dns))
        .collect()
}

/// Every live service without its cluster IP (which only names it).
pub fn service_objects(snapshot: &Snapshot) -> Vec<Service> {
    snapshot
        .state
        .desired
        .live_services()
        .filter_map(|view| service_object(snapshot, view.name))
        .collect()
}

pub fn service(snapshot: &Snapshot, dns: &Result<IpAddr, String>, name: &str) -> Option<Service> {
    service_object(snapshot, name).map(|s| with_cluster_ip(s, dns))
}

/// The annotation saying why a service has no cluster IP on this peer.
pub const NO_CLUSTER_IP: &str = "shoal.io/no-cluster-ip";

/// `spec.clusterIP`: where this peer's DNS answers for services, which is
/// the address it gives first for the service's name there, and where this
/// peer's load balancer listens on the service's ports. Every peer has its
/// own (no virtual IP is shared), so two peers may show two addresses.
/// `None`, with the reason in an annotation, when its DNS answers nowhere.
fn with_cluster_ip(mut service: Service, dns: &Result<IpAddr, String>) -> Service {
    let spec = service.spec.get_or_insert_with(Default::default);
    match dns {
        Ok(ip) => {
            spec.cluster_ip = Some(ip.to_string());
            spec.cluster_ips = Some(vec![ip.to_string()]);
        }
        Err(why) => {
            spec.cluster_ip = Some("None".to_owned());
            service
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(NO_CLUSTER_IP.to_owned(), why.clone());
        }
    }
    service
}

/// The `Endpoints` object of every live service, in name order.
pub fn endpoints(snapshot: &Snapshot) -> Vec<Endpoints> {
    snapshot
        .state
        .desired
        .live_services()
        .filter_map(|view| endpoint(snapshot, view.name))
        .collect()
}

/// The `Endpoints` of service `name`: the endpoint set every peer's load
/// balancer uses and `shoal describe svc` lists (pods the selector
/// matches, at their node's address and the host port each service port
/// reaches them on), ready ones as addresses, the others as not ready.
/// Endpoints with the same ports form one subset, as Kubernetes groups them.
pub fn endpoint(snapshot: &Snapshot, name: &str) -> Option<Endpoints> {
    let service = service_object(snapshot, name)?;
    let mut subsets: BTreeMap<Vec<(Option<String>, u16)>, EndpointSubset> = BTreeMap::new();
    if let Some(entry) = snapshot.services().services.get(name) {
        for e in &entry.endpoints {
            let ports: Vec<(Option<String>, u16)> = entry
                .ports
                .iter()
                .filter_map(|p| Some((p.name.clone(), e.targets.get(&p.port)?.port())))
                .collect();
            let Some(ip) = e.targets.values().next().map(|a| a.ip().to_string()) else {
                continue; // publishes none of the service's ports: unreachable
            };
            let address = EndpointAddress {
                ip,
                node_name: Some(e.node.clone()),
                target_ref: Some(ObjectReference {
                    kind: Some("Pod".to_owned()),
                    name: Some(e.pod.clone()),
                    namespace: Some("default".to_owned()),
                    ..ObjectReference::default()
                }),
                ..EndpointAddress::default()
            };
            let subset = subsets
                .entry(ports.clone())
                .or_insert_with(|| EndpointSubset {
                    ports: Some(
                        ports
                            .iter()
                            .map(|(name, port)| EndpointPort {
                                name: name.clone(),
                                port: i32::from(*port),
                                protocol: Some("TCP".to_owned()),
                                ..EndpointPort::default()
                            })
                            .collect(),
                    ),
                    ..EndpointSubset::default()
                });
            let list = if e.ready {
                &mut subset.addresses
            } else {
                &mut subset.not_ready_addresses
            };
            list.get_or_insert_with(Vec::new).push(address);
        }
    }
    let mut metadata = service.metadata;
    metadata.annotations = None;
    metadata.uid = metadata.uid.map(|u| uid("endpoints", &u, None));
    // Endpoints follow the pods: they change with the snapshot.
    metadata.resource_version = Some(snapshot.generation.to_string());
    Some(Endpoints {
        metadata,
        subsets: (!subsets.is_empty()).then(|| subsets.into_values().collect()),
    })
}

fn service_object(snapshot: &Snapshot, name: &str) -> Option<Service> {
    let view = snapshot.state.desired.service(name)?;
    let v1 = render::service_to_v1(&view.to_spec());
    let mut service: Service = serde_json::to_value(&v1)
        .and_then(serde_json::from_value)
        .ok()?;
    let version = snapshot
        .state
        .desired
        .service_records()
        .find(|(n, _)| *n == name)
        .and_then(|(_, r)| r.max_stamp());
    let created = view.created.or(Some(view.written));
    let mut annotations = v1.metadata.annotations.clone();
    if let Some(text) = view.body.last_applied.clone() {
        annotations.insert(LAST_APPLIED.to_owned(), text);
    }
    service.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("default".to_owned()),
        uid: Some(uid("service", name, created)),
        resource_version: Some(resource_version(version)),
        creation_timestamp: created.and_then(time),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    };
    Some(service)
}

/// A uid shaped like Kubernetes' (8-4-4-4-12 hex), the same on every peer.
pub(super) fn uid(kind: &str, name: &str, created: Option<Hlc>) -> String {
    let stamp = created.map_or((0, 0, String::new()), |c| {
        (c.physical_ms, c.counter, c.node.to_string())
    });
    let key = format!("{kind}/{name}/{}/{}/{}", stamp.0, stamp.1, stamp.2);
    let h = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    let hex = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A write stamp as a resourceVersion: milliseconds and counter, as one number.
fn resource_version(stamp: Option<Hlc>) -> String {
    stamp.map_or_else(
        || "0".to_owned(),
        |s| (u128::from(s.physical_ms) << 32 | u128::from(s.counter)).to_string(),
    )
}

fn time(stamp: Hlc) -> Option<Time> {
    time_ms(stamp.physical_ms)
}

pub(super) fn time_ms(ms: u64) -> Option<Time> {
    if ms == 0 {
        return None;
    }
    let ts = jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    // Kubernetes times have whole seconds.
    Some(Time(jiff::Timestamp::from_second(ts.as_second()).ok()?))
}
