//! Placement scenarios: which nodes are eligible, and what an unplaced replica says.

use std::collections::BTreeMap;

use shoal::placement::{Assignment, NodeCandidate, NodeRejection, assign};
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, PortSpec, Protocol, RcSpec, Resources,
    RestartPolicy, UpdateStrategy,
};

const GIB: u64 = 1 << 30;

fn node(cpu_millis: u64, memory_bytes: u64) -> NodeCandidate {
    let res = Resources {
        cpu_millis,
        memory_bytes,
    };
    NodeCandidate {
        info: NodeInfo {
            name: String::new(),
            peer_addr: String::new(),
            api_addr: String::new(),
            capacity: res,
            allocatable: res,
            labels: BTreeMap::new(),
            runtime_healthy: true,
            runtime_error: None,
            version: String::new(),
            leaving: false,
            started_ms: 0,
        },
        alive: true,
    }
}

fn big_node() -> NodeCandidate {
    node(16_000, 64 * GIB)
}

fn rc(name: &str, replicas: u32, cpu_millis: u64, memory_bytes: u64) -> RcSpec {
    RcSpec {
        name: name.into(),
        replicas,
        selector: BTreeMap::from([("app".into(), name.into())]),
        template: PodTemplate {
            labels: BTreeMap::from([("app".into(), name.into())]),
            containers: vec![ContainerSpec {
                resources: Resources {
                    cpu_millis,
                    memory_bytes,
                },
                ..ContainerSpec::new("main", "img:1")
            }],
            node_selector: BTreeMap::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 1,
        },
        update_strategy: UpdateStrategy::default(),
        partition_policy: PartitionPolicy::default(),
    }
}

fn rcs(list: Vec<RcSpec>) -> BTreeMap<String, RcSpec> {
    list.into_iter().map(|r| (r.name.clone(), r)).collect()
}

fn nodes(list: Vec<(u64, NodeCandidate)>) -> BTreeMap<NodeId, NodeCandidate> {
    list.into_iter().map(|(i, n)| (NodeId(i), n)).collect()
}

fn pod(rc: &str, index: u32) -> PodId {
    PodId {
        rc: rc.into(),
        index,
    }
}

fn owners_of(a: &Assignment, rc: &str) -> Vec<NodeId> {
    a.iter()
        .filter(|(p, _)| p.rc == rc)
        .map(|(_, n)| n)
        .collect()
}

#[test]
fn dead_and_unhealthy_nodes_get_nothing() {
    let mut dead = big_node();
    dead.alive = false;
    let mut sick = big_node();
    sick.info.runtime_healthy = false;
    let cluster = nodes(vec![(1, dead), (2, sick), (3, big_node())]);
    let a = assign(&rcs(vec![rc("web", 3, 100, GIB)]), &cluster);
    assert_eq!(owners_of(&a, "web"), vec![NodeId(3); 3]);
    assert!(a.unplaced.is_empty());
}

#[test]
fn node_selector_limits_nodes() {
    let mut ssd = big_node();
    ssd.info.labels.insert("disk".into(), "ssd".into());
    let mut wrong = big_node();
    wrong.info.labels.insert("disk".into(), "hdd".into());
    let cluster = nodes(vec![(1, big_node()), (2, ssd), (3, wrong)]);
    let mut db = rc("db", 2, 100, GIB);
    db.template
        .node_selector
        .insert("disk".into(), "ssd".into());
    let a = assign(&rcs(vec![db]), &cluster);
    assert_eq!(owners_of(&a, "db"), vec![NodeId(2), NodeId(2)]);
}

#[test]
fn replicas_spread_over_distinct_nodes_when_there_are_enough() {
    let cluster = nodes((1..=5).map(|i| (i, big_node())).collect());
    let a = assign(&rcs(vec![rc("web", 5, 100, GIB)]), &cluster);
    let mut owners = owners_of(&a, "web");
    owners.sort();
    owners.dedup();
    assert_eq!(owners.len(), 5, "each replica on its own node");
}

#[test]
fn resources_are_accounted_across_replicas_and_rcs() {
    // Each node holds exactly two 1-GiB pods.
    let cluster = nodes((1..=3).map(|i| (i, node(16_000, 2 * GIB))).collect());
    let a = assign(
        &rcs(vec![rc("a", 4, 100, GIB), rc("b", 3, 100, GIB)]),
        &cluster,
    );
    assert_eq!(a.placed(), 6);
    for n in 1..=3 {
        assert_eq!(a.load(NodeId(n)), 2);
    }
    assert_eq!(a.unplaced.len(), 1);
    // Index-major order: the highest index of the processing order loses.
    let (lost, why) = a.unplaced.iter().next().unwrap();
    assert_eq!(lost, &pod("a", 3));
    assert_eq!(
        why.to_string(),
        "0/3 nodes are available: 3 insufficient memory"
    );
}

#[test]
fn cpu_shortage_is_named() {
    let cluster = nodes(vec![(1, node(500, 64 * GIB))]);
    let a = assign(&rcs(vec![rc("a", 1, 1_000, GIB)]), &cluster);
    assert_eq!(
        a.unplaced[&pod("a", 0)].reasons,
        BTreeMap::from([(NodeRejection::InsufficientCpu, 1)])
    );
}

#[test]
fn host_ports_are_never_shared_on_a_node() {
    let mut web = rc("web", 3, 100, GIB);
    web.template.containers[0].ports.push(PortSpec {
        container_port: 80,
        host_port: Some(8080),
        protocol: Protocol::Tcp,
    });
    let mut udp = rc("dns", 2, 100, GIB);
    udp.template.containers[0].ports.push(PortSpec {
        container_port: 53,
        host_port: Some(8080),
        protocol: Protocol::Udp,
    });
    let cluster = nodes(vec![(1, big_node()), (2, big_node())]);
    let a = assign(&rcs(vec![web, udp]), &cluster);
    let mut web_owners = owners_of(&a, "web");
    web_owners.sort();
    assert_eq!(
        web_owners,
        vec![NodeId(1), NodeId(2)],
        "one per node, no stacking"
    );
    // Same port number, other protocol: no conflict.
    assert_eq!(owners_of(&a, "dns").len(), 2);
    assert_eq!(
        a.unplaced[&pod("web", 2)].to_string(),
        "0/2 nodes are available: 2 host port conflict"
    );
}

#[test]
fn unplaced_reason_counts_every_node_once() {
    let mut down = big_node();
    down.alive = false;
    let mut labelled = node(16_000, GIB / 2);
    labelled.info.labels.insert("zone".into(), "a".into());
    let mut labelled2 = labelled.clone();
    labelled2.info.labels.insert("extra".into(), "x".into());
    let mut other_zone = big_node();
    other_zone.info.labels.insert("zone".into(), "b".into());
    let cluster = nodes(vec![
        (1, down),
        (2, labelled),
        (3, labelled2),
        (4, other_zone.clone()),
        (5, other_zone),
    ]);
    let mut app = rc("app", 1, 100, GIB);
    app.template.node_selector.insert("zone".into(), "a".into());
    let a = assign(&rcs(vec![app]), &cluster);
    assert_eq!(a.placed(), 0);
    assert_eq!(
        a.unplaced[&pod("app", 0)].to_string(),
        "0/5 nodes are available: 2 node selector mismatch, 2 insufficient memory, 1 node down"
    );
}

#[test]
fn empty_cluster_reports_every_replica() {
    let a = assign(&rcs(vec![rc("a", 2, 1, 1)]), &BTreeMap::new());
    assert_eq!(a.unplaced.len(), 2);
    assert_eq!(
        a.unplaced[&pod("a", 1)].to_string(),
        "0/0 nodes are available"
    );
}

#[test]
fn scaling_up_keeps_existing_replicas_in_place() {
    // New indices are placed after every existing one, so while the load
    // bounds stay put (here: one replica per node, 50 nodes) nothing moves.
    let cluster = nodes((1..=50).map(|i| (i * 7919, big_node())).collect());
    let before = assign(&rcs(vec![rc("a", 10, 1, 1), rc("b", 10, 1, 1)]), &cluster);
    let after = assign(&rcs(vec![rc("a", 13, 1, 1), rc("b", 10, 1, 1)]), &cluster);
    assert_eq!(shoal::placement::moved(&before, &after), 0);
    assert_eq!(after.placed(), 23);
}
