//! Helpers shared by the reconcile scenario tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use shoal::placement::Assignment;
use shoal::reconcile::LocalPods;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::{PodId, PodStatus};
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, RcSpec, RestartPolicy, UpdateStrategy,
};
use shoal_runtime::vocabulary::{ExistingPod, PodAction, PodEvent, PodObservation};

pub const ME: NodeId = NodeId(1);
pub const OTHER: NodeId = NodeId(2);

pub fn rc(name: &str, replicas: u32, image: &str) -> RcSpec {
    RcSpec {
        name: name.into(),
        replicas,
        selector: BTreeMap::new(),
        template: PodTemplate {
            labels: BTreeMap::new(),
            containers: vec![ContainerSpec::new("main", image)],
            node_selector: BTreeMap::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 5,
        },
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::default(),
        paused: false,
    }
}

pub fn rcs(list: &[&RcSpec]) -> BTreeMap<String, RcSpec> {
    list.iter()
        .map(|r| (r.name.clone(), (*r).clone()))
        .collect()
}

pub fn pod(rc: &str, index: u32) -> PodId {
    PodId {
        rc: rc.into(),
        index,
    }
}

pub fn owners(list: &[(&str, u32, NodeId)]) -> Assignment {
    Assignment::from_owners(list.iter().map(|(r, i, n)| (pod(r, *i), *n)))
}

pub fn observe(local: &mut LocalPods, now: u64, spec: &RcSpec, index: u32, event: PodEvent) {
    let obs = PodObservation {
        pod: pod(&spec.name, index),
        template_hash: spec.template.hash(),
        event,
    };
    local.handle_observation(now, &obs);
}

/// Local pod `index` of `spec`, started and reported running and ready.
pub fn running(local: &mut LocalPods, spec: &RcSpec, index: u32) {
    local.adopt(&[ExistingPod {
        pod: pod(&spec.name, index),
        template_hash: spec.template.hash(),
        running: true,
        ports: vec![],
    }]);
    observe(local, 0, spec, index, PodEvent::Ready(true));
}

pub fn starts(actions: &[PodAction]) -> Vec<PodId> {
    actions
        .iter()
        .filter_map(|a| match a {
            PodAction::Start { pod, .. } => Some(pod.clone()),
            PodAction::Stop { .. } | PodAction::StopOrphan { .. } => None,
        })
        .collect()
}

pub fn stops(actions: &[PodAction]) -> Vec<PodId> {
    actions
        .iter()
        .filter_map(|a| match a {
            PodAction::Stop { pod, .. } => Some(pod.clone()),
            PodAction::Start { .. } | PodAction::StopOrphan { .. } => None,
        })
        .collect()
}

pub fn status(
    spec: &RcSpec,
    index: u32,
    phase: shoal_crdt_state::pod::PodPhase,
    ready: bool,
) -> PodStatus {
    PodStatus {
        id: pod(&spec.name, index),
        template_hash: spec.template.hash(),
        image: spec.template.primary_image().into(),
        phase,
        ready,
        restarts: 0,
        last_error: None,
        preparing: None,
        ports: vec![],
        claim: None,
        available: ready,
        stalled: None,
        started_ms: None,
    }
}

/// `status` as its node reports it when its placement `a` gives it the replica.
pub fn claimed(mut status: PodStatus, a: &Assignment) -> PodStatus {
    status.claim = Some(a.fingerprint());
    status
}

pub fn none() -> BTreeMap<NodeId, Vec<PodStatus>> {
    BTreeMap::new()
}
