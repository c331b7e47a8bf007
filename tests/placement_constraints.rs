//! Placement scenarios: which nodes are eligible, and what an unplaced replica says.

use std::collections::BTreeMap;

use shoal::placement::{Assignment, NodeCandidate, NodeRejection, assign, inputs};
use shoal_crdt_state::NodeDecisions;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::observed::ObservedState;
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus, PublishedPort};
use shoal_crdt_state::spec::{
    ContainerSpec, PartitionPolicy, PodTemplate, PortSpec, Protocol, RcSpec, Resources,
    RestartPolicy, TemplateHash, UpdateStrategy,
};

const GIB: u64 = 1 << 30;

fn node(cpu_millis: u64, memory_bytes: u64) -> NodeCandidate {
    let res = Resources {
        cpu_millis,
        memory_bytes,
    };
    NodeCandidate {
        info: NodeInfo::healthy("", res),
        alive: true,
        cordoned: false,
        held_ports: Vec::new(),
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
        paused: false,
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
        name: None,
    });
    let mut udp = rc("dns", 2, 100, GIB);
    udp.template.containers[0].ports.push(PortSpec {
        container_port: 53,
        host_port: Some(8080),
        protocol: Protocol::Udp,
        name: None,
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
        "0/2 nodes are available: 2 host port conflict (port 8080/TCP is in use by web-0, web-1)"
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

// ---- host ports held by the pods nodes report ----

/// `rc`, its container published on host port `port`/`protocol`.
fn on_port(mut spec: RcSpec, port: u16, protocol: Protocol) -> RcSpec {
    spec.template.containers[0].ports.push(PortSpec {
        container_port: 80,
        host_port: Some(port),
        protocol,
        name: None,
    });
    spec
}

fn tcp(name: &str, replicas: u32, port: u16) -> RcSpec {
    on_port(rc(name, replicas, 100, GIB), port, Protocol::Tcp)
}

/// What a node reports for replica `index` of `rc`, holding `port`.
fn report(rc: &str, index: u32, phase: PodPhase, port: u16, protocol: Protocol) -> PodStatus {
    PodStatus {
        id: pod(rc, index),
        template_hash: TemplateHash(1),
        image: "img:1".into(),
        phase,
        ready: phase == PodPhase::Running,
        restarts: 0,
        last_error: None,
        preparing: None,
        ports: vec![PublishedPort {
            container_port: 80,
            host_port: port,
            protocol,
        }],
        claim: None,
        available: false,
        stalled: None,
        started_ms: None,
    }
}

/// Nodes `ids` (big, alive) and the pods each reports.
fn observed(ids: &[u64], pods: Vec<(u64, PodStatus)>) -> ObservedState {
    let mut state = ObservedState::new();
    for &id in ids {
        state.set_node_info(NodeId(id), big_node().info);
    }
    for (id, status) in pods {
        state.set_pod_status(NodeId(id), status).unwrap();
    }
    state
}

/// Placement as a peer computes it: from its observed state, every node up.
fn place(rcs: &BTreeMap<String, RcSpec>, state: &ObservedState) -> Assignment {
    assign(
        rcs,
        &inputs(state, &NodeDecisions::default(), rcs, NodeId(1), |_| true),
    )
}

/// Where `rcs` run once placed on nodes `ids`, as the nodes report it.
fn running_as_placed(ids: &[u64], rcs: &BTreeMap<String, RcSpec>, port: u16) -> ObservedState {
    let first = place(rcs, &observed(ids, vec![]));
    assert!(first.unplaced.is_empty());
    let pods = first
        .iter()
        .map(|(p, n)| {
            (
                n.0,
                report(&p.rc, p.index, PodPhase::Running, port, Protocol::Tcp),
            )
        })
        .collect();
    observed(ids, pods)
}

#[test]
fn a_running_replica_keeps_its_port_and_a_newcomer_needing_it_is_unplaced() {
    let a = tcp("a", 3, 18080);
    let state = running_as_placed(&[1, 2, 3], &rcs(vec![a.clone()]), 18080);
    let before = place(&rcs(vec![a.clone()]), &state);

    // b-0 comes before a-1 and a-2 in the processing order, yet every node
    // has the port taken by a replica of `a` that runs there.
    let after = place(&rcs(vec![a, tcp("b", 1, 18080)]), &state);
    assert_eq!(
        owners_of(&after, "a"),
        owners_of(&before, "a"),
        "a stays put"
    );
    assert_eq!(after.placed(), 3);
    assert_eq!(
        after.unplaced[&pod("b", 0)].to_string(),
        "0/3 nodes are available: 3 host port conflict (port 18080/TCP is in use by a-0, a-1, a-2)"
    );
}

#[test]
fn a_newcomer_gets_the_port_once_its_holder_is_gone() {
    let a = tcp("a", 3, 18080);
    let mut state = running_as_placed(&[1, 2, 3], &rcs(vec![a.clone()]), 18080);
    let (freed, _) = state
        .pods()
        .find(|(_, p)| p.id == pod("a", 2))
        .map(|(n, p)| (n, p.clone()))
        .unwrap();

    // Scaled down: a-2 is stopping and still has the port.
    let mut two = a.clone();
    two.replicas = 2;
    let workload = rcs(vec![two, tcp("b", 1, 18080)]);
    state
        .set_pod_status(
            freed,
            report("a", 2, PodPhase::Terminating, 18080, Protocol::Tcp),
        )
        .unwrap();
    assert_eq!(
        place(&workload, &state).unplaced[&pod("b", 0)].to_string(),
        "0/3 nodes are available: 3 host port conflict (port 18080/TCP is in use by a-0, a-1, a-2)"
    );

    // Gone from its node's report: b-0 takes its place.
    state.remove_pod(freed, &pod("a", 2)).unwrap();
    let after = place(&workload, &state);
    assert!(after.unplaced.is_empty(), "{:?}", after.unplaced);
    assert_eq!(after.owner(&pod("b", 0)), Some(freed));
}

#[test]
fn a_replica_reuses_the_port_it_holds_after_a_restart() {
    // Each node has the port taken by one replica: the only place left for
    // each is the node where it already holds it.
    let workload = rcs(vec![tcp("a", 1, 18080), tcp("c", 1, 18080)]);
    for phase in [PodPhase::Pending, PodPhase::BackOff, PodPhase::Running] {
        for (a_node, c_node) in [(1, 2), (2, 1)] {
            let mut restarted = report("a", 0, phase, 18080, Protocol::Tcp);
            restarted.restarts = 3;
            let state = observed(
                &[1, 2],
                vec![
                    (a_node, restarted),
                    (
                        c_node,
                        report("c", 0, PodPhase::Running, 18080, Protocol::Tcp),
                    ),
                ],
            );
            let a = place(&workload, &state);
            assert!(a.unplaced.is_empty(), "{phase:?}: {:?}", a.unplaced);
            assert_eq!(a.owner(&pod("a", 0)), Some(NodeId(a_node)), "{phase:?}");
            assert_eq!(a.owner(&pod("c", 0)), Some(NodeId(c_node)), "{phase:?}");
        }
    }
}

#[test]
fn a_failed_or_finished_pod_does_not_hold_its_port() {
    let workload = rcs(vec![tcp("b", 1, 18080)]);
    for phase in [PodPhase::Failed, PodPhase::Succeeded] {
        let state = observed(&[1], vec![(1, report("a", 0, phase, 18080, Protocol::Tcp))]);
        let a = place(&workload, &state);
        assert_eq!(a.owner(&pod("b", 0)), Some(NodeId(1)), "{phase:?}");
    }
    // The same number over UDP is another port.
    let state = observed(
        &[1],
        vec![(1, report("a", 0, PodPhase::Running, 18080, Protocol::Udp))],
    );
    assert_eq!(
        place(&workload, &state).owner(&pod("b", 0)),
        Some(NodeId(1))
    );

    let state = observed(
        &[1],
        vec![(
            1,
            report("a", 0, PodPhase::Terminating, 18080, Protocol::Tcp),
        )],
    );
    assert_eq!(
        place(&workload, &state).unplaced[&pod("b", 0)].to_string(),
        "0/1 nodes are available: 1 host port conflict (port 18080/TCP is in use by a-0)"
    );
}

#[test]
fn held_ports_give_the_same_assignment_whatever_order_they_are_learned_in() {
    let workload = rcs(vec![
        tcp("a", 3, 18080),
        tcp("b", 2, 18080),
        tcp("c", 4, 9090),
        on_port(rc("d", 3, 100, GIB), 18080, Protocol::Udp),
        rc("e", 6, 100, GIB),
    ]);
    let ids = [5, 1, 4, 2, 3];
    let pods = vec![
        (2, report("a", 0, PodPhase::Running, 18080, Protocol::Tcp)),
        (4, report("a", 1, PodPhase::BackOff, 18080, Protocol::Tcp)),
        (4, report("c", 0, PodPhase::Running, 9090, Protocol::Tcp)),
        (1, report("b", 1, PodPhase::Pending, 18080, Protocol::Tcp)),
        (
            5,
            report("old", 0, PodPhase::Terminating, 9090, Protocol::Tcp),
        ),
        (3, report("d", 2, PodPhase::Failed, 18080, Protocol::Udp)),
        (3, report("x", 0, PodPhase::Running, 18080, Protocol::Tcp)),
    ];
    let forward = observed(&ids, pods.clone());
    let mut reversed_ids = ids;
    reversed_ids.reverse();
    let backward = observed(&reversed_ids, pods.into_iter().rev().collect());
    let reference = place(&workload, &forward);
    assert_eq!(place(&workload, &backward), reference);
    assert!(!reference.unplaced.is_empty(), "the scenario has conflicts");

    // Held ports handed to placement in any order inside a node.
    let mut shuffled = inputs(
        &forward,
        &NodeDecisions::default(),
        &workload,
        NodeId(1),
        |_| true,
    );
    for candidate in shuffled.values_mut() {
        candidate.held_ports.reverse();
    }
    let again = assign(&workload, &shuffled);
    assert_eq!(again, reference);
    let text =
        |a: &Assignment| -> Vec<String> { a.unplaced.values().map(|u| u.to_string()).collect() };
    assert_eq!(text(&again), text(&reference));
}
