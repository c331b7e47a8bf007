//! Snapshot → JSON models: what `get` and `describe` show, computed from one
//! consistent [`Snapshot`] of this peer.
//!
//! Counting rule (documented for users): an RC's `running` is the number of
//! its pods in phase Running reported by nodes that SWIM counts in (alive or
//! suspect) in this peer's view; `ready` is those of them passing readiness.
//! A node that is down, or unknown to SWIM, keeps its last report in the
//! observed state, but its pods are shown with phase `Unknown`, not ready, and
//! not counted; its RUNTIME is `Unknown` from the time it is Suspect.
//! Readiness is vouched for by the node alone ([`shown_ready`]): from the
//! time a node is Suspect its pods still count as running but are shown not
//! ready (READY 0/1), as Kubernetes marks the pods of a NotReady node, and
//! an RC's `ready` counts them out.

use shoal_crdt_state::manifest::render::{self, format_cpu, format_memory};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::NodeRecord;
use shoal_crdt_state::pod::{PodPhase, PodStatus};
use shoal_crdt_state::spec::RcSpec;
use shoal_gossip::MemberState;

use std::collections::BTreeMap;

use super::models::{
    ImageJson, NodeDetail, NodeJson, PodJson, PortJson, RcDetail, RcJson, RevisionJson,
    TransferJson, UnplacedJson, runtime_status,
};
use crate::shell::handle::Snapshot;

/// SWIM's state for `node` in this view (`None`: never seen). A node with
/// several identities (restarts) takes its most alive one.
fn member_state(snapshot: &Snapshot, node: NodeId) -> Option<MemberState> {
    let mut best: Option<MemberState> = None;
    for entry in snapshot.members.get(node) {
        best = Some(match (best, entry.state) {
            (_, MemberState::Alive) | (Some(MemberState::Alive), _) => MemberState::Alive,
            (_, MemberState::Suspect) | (Some(MemberState::Suspect), _) => MemberState::Suspect,
            _ => MemberState::Down,
        });
    }
    best
}

/// SWIM's word for `node` in this view: Alive, Suspect, Down or Unknown.
pub fn node_state(snapshot: &Snapshot, node: NodeId) -> &'static str {
    match member_state(snapshot, node) {
        Some(MemberState::Alive) => "Alive",
        Some(MemberState::Suspect) => "Suspect",
        Some(MemberState::Down) => "Down",
        None => "Unknown",
    }
}

/// True when the node's reports count: SWIM's own rule,
/// [`MemberState::is_active`] (alive or suspect).
pub fn node_active(snapshot: &Snapshot, node: NodeId) -> bool {
    member_state(snapshot, node).is_some_and(MemberState::is_active)
}

/// Whether a pod is shown ready, given its node's [`node_state`] and the
/// readiness that node last reported. Only a node SWIM holds Alive can
/// vouch for it: a Suspect node may already have lost the pod, a Down or
/// Unknown one's report is stale. The one rule every view (API, kube,
/// CLI, dashboard, RC counts, rollout status) reads readiness through.
pub fn shown_ready(node_state: &str, reported_ready: bool) -> bool {
    reported_ready && node_state == "Alive"
}

/// [`shown_ready`] for `pod` on `node` in this view.
pub fn pod_ready(snapshot: &Snapshot, node: NodeId, pod: &PodStatus) -> bool {
    shown_ready(node_state(snapshot, node), pod.ready)
}

pub fn node_json(snapshot: &Snapshot, id: NodeId, record: &NodeRecord) -> NodeJson {
    let info = &record.info;
    let state = node_state(snapshot, id);
    let runtime = runtime_status(state, info.runtime_healthy);
    NodeJson {
        name: info.name.clone(),
        id: id.to_string(),
        address: info.peer_addr.clone(),
        api_address: info.api_addr.clone(),
        state: state.to_owned(),
        cordoned: snapshot.state.desired.nodes().is_cordoned(id),
        ready: runtime == "Ready",
        runtime: runtime.to_owned(),
        pods: record.pods.len(),
        labels: info.labels.clone(),
        images: info.images.clone(),
        cpu: format_cpu(info.allocatable.cpu_millis),
        memory: format_memory(info.allocatable.memory_bytes),
        started_ms: info.started_ms,
    }
}

/// Every node that has published a record, in name order.
pub fn nodes(snapshot: &Snapshot) -> Vec<NodeJson> {
    let mut rows: Vec<NodeJson> = snapshot
        .state
        .observed
        .nodes()
        .map(|(id, record)| node_json(snapshot, id, record))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    rows
}

/// Every image the cluster's RCs use, with the nodes that hold it and the
/// transfers of it: `local` (this peer's, live) and those other nodes'
/// waiting pods report.
pub fn images(snapshot: &Snapshot, local: Vec<TransferJson>) -> Vec<ImageJson> {
    crate::shell::images::images_in_use(snapshot)
        .into_iter()
        .map(|image| {
            let mut holders = BTreeMap::new();
            let mut missing = Vec::new();
            let mut transferring_elsewhere = BTreeMap::new();
            for (id, record) in snapshot.state.observed.nodes() {
                match record.info.images.get(&image) {
                    Some(image_id) => {
                        holders.insert(record.info.name.clone(), image_id.clone());
                    }
                    None if node_active(snapshot, id) => missing.push(record.info.name.clone()),
                    None => {}
                }
                if id == snapshot.me || !node_active(snapshot, id) {
                    continue;
                }
                let progress = record.pods.iter().find_map(|p| {
                    let what = p.preparing.as_deref()?;
                    (p.image == image && what.starts_with("ImageTransferring")).then_some(what)
                });
                if let Some(what) = progress {
                    transferring_elsewhere.insert(record.info.name.clone(), what.to_owned());
                }
            }
            missing.sort();
            let transfers = local.iter().filter(|t| t.image == image).cloned().collect();
            ImageJson {
                image,
                holders,
                missing,
                transfers,
                transferring_elsewhere,
            }
        })
        .collect()
}

/// The 404 for an RC name nobody has.
pub fn rc_not_found(name: &str) -> super::error::ApiError {
    super::error::ApiError::not_found(format!(
        "replicationcontroller \"{name}\" not found; `shoal get rc` lists them"
    ))
}

/// The 404 for a node name nobody has.
pub fn node_not_found(name: &str) -> super::error::ApiError {
    super::error::ApiError::not_found(format!(
        "node \"{name}\" not found; `shoal get nodes` lists them"
    ))
}

/// The node called `name` (its `--name`, or its 16-digit id).
pub fn find_node<'a>(snapshot: &'a Snapshot, name: &str) -> Option<(NodeId, &'a NodeRecord)> {
    let observed = &snapshot.state.observed;
    observed
        .nodes()
        .find(|(_, r)| r.info.name == name)
        .or_else(|| observed.nodes().find(|(id, _)| id.to_string() == name))
}

pub fn node_detail(snapshot: &Snapshot, id: NodeId, record: &NodeRecord) -> NodeDetail {
    let info = &record.info;
    NodeDetail {
        node: node_json(snapshot, id, record),
        capacity_cpu: format_cpu(info.capacity.cpu_millis),
        capacity_memory: format_memory(info.capacity.memory_bytes),
        runtime_error: info.runtime_error.clone(),
        version: info.version.clone(),
        pod_list: record
            .pods
            .iter()
            .map(|p| pod_json(snapshot, id, record, p))
            .collect(),
    }
}

pub fn pod_json(
    snapshot: &Snapshot,
    node: NodeId,
    record: &NodeRecord,
    pod: &PodStatus,
) -> PodJson {
    let current = snapshot.current_template(&pod.id.rc) == Some(pod.template_hash);
    let active = node_active(snapshot, node);
    let phase = if active { pod.status_text() } else { "Unknown" };
    PodJson {
        name: pod.id.to_string(),
        rc: pod.id.rc.clone(),
        node: record.info.name.clone(),
        ip: host_of(&record.info.peer_addr),
        image: pod.image.clone(),
        phase: phase.to_owned(),
        ready: pod_ready(snapshot, node, pod),
        containers: snapshot
            .current_containers(&pod.id.rc)
            .map_or(1, |n| u32::try_from(n.max(1)).unwrap_or(u32::MAX)),
        restarts: pod.restarts,
        ports: pod
            .ports
            .iter()
            .map(|p| PortJson {
                container_port: p.container_port,
                host_port: p.host_port,
                protocol: p.protocol.as_str().to_owned(),
            })
            .collect(),
        last_error: pod.last_error.clone(),
        preparing: pod.preparing.clone(),
        template_hash: pod.template_hash.to_string(),
        current,
        started_ms: pod.started_ms,
    }
}

/// `127.0.0.1:7946` → `127.0.0.1`, `[::1]:7946` → `::1`.
fn host_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sock) => sock.ip().to_string(),
        Err(_) => addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned(),
    }
}

/// Every reported pod (optionally of one RC), by name then node.
pub fn pods(snapshot: &Snapshot, rc: Option<&str>) -> Vec<PodJson> {
    let mut rows: Vec<PodJson> = snapshot
        .state
        .observed
        .nodes()
        .flat_map(|(id, record)| {
            record
                .pods
                .iter()
                .filter(|p| rc.is_none_or(|rc| p.id.rc == rc))
                .map(move |p| pod_json(snapshot, id, record, p))
        })
        .collect();
    rows.sort_by(|a, b| {
        pod_order(&a.name)
            .cmp(&pod_order(&b.name))
            .then(a.node.cmp(&b.node))
    });
    rows
}

/// Sorts `hello-2` before `hello-10`.
fn pod_order(name: &str) -> (&str, u32) {
    match name.rsplit_once('-') {
        Some((rc, i)) => (rc, i.parse().unwrap_or(u32::MAX)),
        None => (name, 0),
    }
}

/// Pods of `rc` reported by active nodes, each with whether it is shown
/// ready ([`shown_ready`]).
fn active_pods<'a>(
    snapshot: &'a Snapshot,
    rc: &'a str,
) -> impl Iterator<Item = (&'a PodStatus, bool)> + 'a {
    snapshot
        .state
        .observed
        .pods()
        .filter(move |(node, p)| p.id.rc == rc && node_active(snapshot, *node))
        .map(move |(node, p)| (p, pod_ready(snapshot, node, p)))
}

pub fn rc_json(snapshot: &Snapshot, spec: &RcSpec) -> RcJson {
    let (mut running, mut ready) = (0, 0);
    for (pod, shown_ready) in active_pods(snapshot, &spec.name) {
        if pod.phase == PodPhase::Running {
            running += 1;
            if shown_ready {
                ready += 1;
            }
        }
    }
    RcJson {
        name: spec.name.clone(),
        replicas: spec.replicas,
        running,
        ready,
        image: spec.template.primary_image().to_owned(),
        selector: spec.selector.clone(),
        created_ms: snapshot
            .state
            .desired
            .get(&spec.name)
            .and_then(|view| view.record.created())
            .map_or(0, |stamp| stamp.physical_ms),
    }
}

/// The live RC called `name`, read from the desired state itself (not the
/// peer's RC specs, which it refreshes only at its next reconcile), so a
/// read right after a write sees it.
pub fn rc_spec(snapshot: &Snapshot, name: &str) -> Option<RcSpec> {
    snapshot.state.desired.get(name).map(|rc| rc.to_spec())
}

/// Every live RC, in name order.
pub fn rcs(snapshot: &Snapshot) -> Vec<RcJson> {
    snapshot
        .state
        .desired
        .live_rcs()
        .map(|rc| rc_json(snapshot, &rc.to_spec()))
        .collect()
}

pub fn rc_detail(snapshot: &Snapshot, spec: &RcSpec) -> RcDetail {
    let hash = spec.template.hash();
    let mut updated_ready = 0;
    let mut total_pods = 0;
    let mut rollout_stopped: Option<(u32, String)> = None;
    for (pod, shown_ready) in active_pods(snapshot, &spec.name) {
        total_pods += 1;
        if pod.template_hash == hash
            && let Some(why) = &pod.stalled
            && rollout_stopped
                .as_ref()
                .is_none_or(|(i, _)| pod.id.index < *i)
        {
            rollout_stopped = Some((pod.id.index, why.clone()));
        }
        if pod.template_hash == hash && pod.phase == PodPhase::Running && shown_ready {
            updated_ready += 1;
        }
    }
    let history = snapshot
        .state
        .desired
        .get(&spec.name)
        .map(|view| {
            // Newest first: each revision was replaced by the one before it,
            // the newest by the current body.
            let current = view.record.body.as_ref().map(|b| b.marker);
            let replacers =
                std::iter::once(current).chain(view.history().iter().map(|r| Some(r.stamp)));
            view.history()
                .iter()
                .zip(replacers)
                .map(|(rev, replaced)| RevisionJson {
                    replaced_at_ms: replaced.map_or(0, |s| s.physical_ms),
                    written_at_ms: rev.stamp.physical_ms,
                    template_hash: rev.template.hash().to_string(),
                    images: rev
                        .template
                        .containers
                        .iter()
                        .map(|c| format!("{}={}", c.name, c.image))
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let unplaced = snapshot
        .assignment
        .unplaced
        .iter()
        .filter(|(pod, _)| pod.rc == spec.name)
        .map(|(pod, reason)| UnplacedJson {
            pod: pod.to_string(),
            reason: reason.to_string(),
        })
        .collect();
    RcDetail {
        rc: rc_json(snapshot, spec),
        template_hash: hash.to_string(),
        updated_ready,
        total_pods,
        images: spec
            .template
            .containers
            .iter()
            .map(|c| format!("{}={}", c.name, c.image))
            .collect(),
        history,
        revision: snapshot
            .state
            .desired
            .get(&spec.name)
            .and_then(|view| {
                shoal_crdt_state::revisions::numbered(view.record)
                    .last()
                    .map(|r| r.number)
            })
            .unwrap_or(0),
        paused: spec.paused,
        unplaced,
        rollout_stopped: rollout_stopped.map(|(_, why)| format!("rollout stopped: {why}")),
        pods: pods(snapshot, Some(&spec.name)),
        spec: serde_json::to_value(render::to_v1(spec)).unwrap_or(serde_json::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::shown_ready;

    #[test]
    fn only_an_alive_node_vouches_for_its_pods_readiness() {
        assert!(shown_ready("Alive", true));
        assert!(!shown_ready("Alive", false));
        for state in ["Suspect", "Down", "Unknown"] {
            assert!(
                !shown_ready(state, true),
                "a pod on a {state} node shows ready"
            );
            assert!(!shown_ready(state, false));
        }
    }
}
