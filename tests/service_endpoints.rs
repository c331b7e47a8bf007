//! The endpoints every peer derives for each service, one scenario each:
//! which pods are behind a service, which are ready, and where they are.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use shoal::services::ServiceTable;
use shoal::services::endpoints::{EndpointInputs, derive, port_conflicts};
use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::{PodId, PodPhase, PodStatus, PublishedPort};
use shoal_crdt_state::service::{ServiceBody, ServicePort, ServiceSpec, ServiceType, TargetPort};
use shoal_crdt_state::spec::{
    ContainerSpec, Labels, PodTemplate, PortName, PortSpec, Protocol, RcSpec, Resources,
    RestartPolicy,
};
use shoal_crdt_state::sync::ClusterState;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn labels(app: &str) -> Labels {
    Labels::from([("app".to_owned(), app.to_owned())])
}

/// RC `name` with `replicas` pods labelled `app: name`, container port
/// 8080 named `http`.
fn rc(name: &str, replicas: u32) -> RcSpec {
    let mut c = ContainerSpec::new("web", "shoal-test/hello:1.0");
    c.ports.push(PortSpec {
        container_port: 8080,
        host_port: None,
        protocol: Protocol::Tcp,
        name: PortName::new("http"),
    });
    RcSpec {
        name: name.to_owned(),
        replicas,
        selector: labels(name),
        template: PodTemplate {
            labels: labels(name),
            containers: vec![c],
            node_selector: Labels::new(),
            restart_policy: RestartPolicy::Always,
            termination_grace_period_secs: 30,
        },
        update_strategy: Default::default(),
        partition_policy: Default::default(),
        paused: false,
    }
}

fn service(name: &str, app: &str, port: u16, target: TargetPort) -> ServiceSpec {
    ServiceSpec {
        name: name.to_owned(),
        body: ServiceBody {
            selector: labels(app),
            ports: vec![ServicePort {
                name: Some("http".into()),
                port,
                target_port: target,
                protocol: Protocol::Tcp,
                node_port: None,
            }],
            service_type: ServiceType::ClusterIP,
            proxy_protocol: Default::default(),
            last_applied: None,
        },
    }
}

/// Pod `rc-index`, running and ready, its 8080 published at `host_port`.
fn pod(rc: &str, index: u32, host_port: Option<u16>) -> PodStatus {
    PodStatus {
        id: PodId {
            rc: rc.to_owned(),
            index,
        },
        // Runs its RC's current template (no rollout under way).
        template_hash: self::rc(rc, 1).template.hash(),
        image: "shoal-test/hello:1.0".into(),
        phase: PodPhase::Running,
        ready: true,
        restarts: 0,
        last_error: None,
        preparing: None,
        ports: host_port
            .map(|h| PublishedPort {
                container_port: 8080,
                host_port: h,
                protocol: Protocol::Tcp,
            })
            .into_iter()
            .collect(),
        claim: None,
        // Ready, and for minReadySeconds (0 here).
        available: true,
        stalled: None,
        started_ms: None,
    }
}

/// A cluster of nodes A (127.0.0.11) and B (127.0.0.12) with the hello RC.
struct World {
    state: ClusterState,
    alive: BTreeSet<NodeId>,
    owners: BTreeMap<PodId, NodeId>,
    ms: u64,
}

impl World {
    fn new(replicas: u32) -> World {
        let mut w = World {
            state: ClusterState::new(),
            alive: BTreeSet::from([A, B]),
            owners: BTreeMap::new(),
            ms: 1,
        };
        let stamp = w.stamp();
        w.state.desired.apply(&rc("hello", replicas), stamp);
        for (node, ip) in [(A, "127.0.0.11"), (B, "127.0.0.12")] {
            let info = NodeInfo {
                peer_addr: format!("{ip}:7946"),
                ..NodeInfo::healthy(format!("n{}", node.0), Resources::default())
            };
            w.state.observed.set_node_info(node, info);
        }
        w
    }

    fn stamp(&mut self) -> Hlc {
        self.ms += 1;
        Hlc::new(self.ms, 0, NodeId(9))
    }

    fn apply(&mut self, spec: &ServiceSpec) {
        let stamp = self.stamp();
        self.state.desired.apply_service(spec, stamp);
    }

    fn run(&mut self, node: NodeId, status: PodStatus) {
        self.owners.entry(status.id.clone()).or_insert(node);
        self.state.observed.set_pod_status(node, status).unwrap();
    }

    fn table(&self) -> ServiceTable {
        let owner = |p: &PodId| self.owners.get(p).copied();
        derive(&EndpointInputs {
            desired: &self.state.desired,
            observed: &self.state.observed,
            alive: &self.alive,
            owner: &owner,
            me: A,
        })
    }

    /// `(pod, node, ready)` of each endpoint of `service`.
    fn endpoints(&self, service: &str) -> Vec<(String, String, bool)> {
        self.table().services[service]
            .endpoints
            .iter()
            .map(|e| (e.pod.clone(), e.node.clone(), e.ready))
            .collect()
    }
}

fn ep(pod: &str, node: &str, ready: bool) -> (String, String, bool) {
    (pod.to_owned(), node.to_owned(), ready)
}

#[test]
fn ready_pods_matching_the_selector_are_endpoints_at_their_node_address() {
    let mut w = World::new(2);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    w.run(A, pod("hello", 0, Some(32001)));
    w.run(B, pod("hello", 1, Some(32002)));
    let table = w.table();
    let entry = &table.services["hello"];
    assert_eq!(entry.ports[0].port, 80);
    assert_eq!(entry.ports[0].target_port, 8080);
    let targets: Vec<SocketAddr> = entry.endpoints.iter().map(|e| e.targets[&80]).collect();
    assert_eq!(
        targets,
        [
            "127.0.0.11:32001".parse().unwrap(),
            "127.0.0.12:32002".parse().unwrap()
        ]
    );
    assert!(entry.endpoints.iter().all(|e| e.ready));
    assert_eq!(
        table.peer_addrs,
        ["127.0.0.12".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn a_selector_matching_nothing_has_no_endpoints() {
    let mut w = World::new(1);
    w.apply(&service("other", "nothing", 80, TargetPort::Number(8080)));
    w.run(A, pod("hello", 0, Some(32001)));
    assert!(w.endpoints("other").is_empty());
}

#[test]
fn a_named_target_port_resolves_through_the_rc_template() {
    let mut w = World::new(1);
    w.apply(&service(
        "hello",
        "hello",
        80,
        TargetPort::Name("http".into()),
    ));
    w.run(A, pod("hello", 0, Some(32001)));
    let table = w.table();
    assert_eq!(table.services["hello"].ports[0].target_port, 8080);
    assert_eq!(
        table.services["hello"].endpoints[0].targets[&80],
        "127.0.0.11:32001".parse().unwrap()
    );
}

#[test]
fn pods_on_a_down_or_suspect_node_are_listed_but_not_ready() {
    let mut w = World::new(2);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    w.run(A, pod("hello", 0, Some(32001)));
    w.run(B, pod("hello", 1, Some(32002)));
    w.alive.remove(&B);
    assert_eq!(
        w.endpoints("hello"),
        [ep("hello-0", "n1", true), ep("hello-1", "n2", false)]
    );
    assert!(
        w.table().peer_addrs.is_empty(),
        "a dead peer is no DNS answer"
    );
}

#[test]
fn a_pod_that_is_not_ready_or_not_running_is_not_ready() {
    let mut w = World::new(3);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    w.run(
        A,
        PodStatus {
            ready: false,
            ..pod("hello", 0, Some(32001))
        },
    );
    w.run(
        A,
        PodStatus {
            phase: PodPhase::BackOff,
            ..pod("hello", 1, Some(32002))
        },
    );
    w.run(
        B,
        PodStatus {
            phase: PodPhase::Terminating,
            ..pod("hello", 2, Some(32003))
        },
    );
    assert!(w.endpoints("hello").iter().all(|e| !e.2));
}

#[test]
fn a_pod_without_the_published_port_is_not_ready() {
    let mut w = World::new(1);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    w.run(A, pod("hello", 0, None));
    let table = w.table();
    let endpoint = &table.services["hello"].endpoints[0];
    assert!(!endpoint.ready);
    assert!(endpoint.targets.is_empty());
    // A service targeting a port the pod does not publish: same.
    w.apply(&service("hello", "hello", 80, TargetPort::Number(9090)));
    w.run(A, pod("hello", 0, Some(32001)));
    assert_eq!(w.endpoints("hello"), [ep("hello-0", "n1", false)]);
}

#[test]
fn pods_about_to_be_stopped_leave_first() {
    let mut w = World::new(3);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    for i in 0..3 {
        w.run(A, pod("hello", i, Some(32001 + i as u16)));
    }
    // Scale to 2: replica 2 goes, so it serves no more.
    let stamp = w.stamp();
    w.state.desired.scale("hello", 2, stamp).unwrap();
    assert_eq!(
        w.endpoints("hello"),
        [
            ep("hello-0", "n1", true),
            ep("hello-1", "n1", true),
            ep("hello-2", "n1", false)
        ]
    );
    // Replica 0 moves to B: the old copy serves until the new one is ready.
    w.owners.insert(
        PodId {
            rc: "hello".into(),
            index: 0,
        },
        B,
    );
    w.run(
        B,
        PodStatus {
            ready: false,
            ..pod("hello", 0, Some(32010))
        },
    );
    let ready: Vec<_> = w.endpoints("hello").into_iter().filter(|e| e.2).collect();
    assert_eq!(
        ready,
        [ep("hello-0", "n1", true), ep("hello-1", "n1", true)]
    );
    w.run(B, pod("hello", 0, Some(32010)));
    let ready: Vec<_> = w.endpoints("hello").into_iter().filter(|e| e.2).collect();
    assert_eq!(
        ready,
        [ep("hello-0", "n2", true), ep("hello-1", "n1", true)]
    );
}

#[test]
fn a_removed_node_and_a_deleted_service_leave_the_table() {
    let mut w = World::new(2);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    w.run(A, pod("hello", 0, Some(32001)));
    w.run(B, pod("hello", 1, Some(32002)));
    let stamp = w.stamp();
    w.state.remove_node(B, true, stamp);
    assert_eq!(w.endpoints("hello"), [ep("hello-0", "n1", true)]);
    let stamp = w.stamp();
    w.state.desired.delete_service("hello", stamp).unwrap();
    assert!(w.table().services.is_empty());
}

#[test]
fn a_port_two_services_claim_goes_to_the_first_written() {
    let mut w = World::new(1);
    // Written concurrently on two peers: each passed its own checks.
    w.apply(&service("first", "hello", 80, TargetPort::Number(8080)));
    w.apply(&service("second", "hello", 80, TargetPort::Number(8080)));
    let table = w.table();
    assert_eq!(table.services["first"].ports.len(), 1);
    assert!(table.services["second"].ports.is_empty());
    let conflicts = port_conflicts(&w.state.desired);
    assert_eq!(conflicts["second"][&80], "first");
    assert!(!conflicts.contains_key("first"));
}

#[test]
fn a_surge_pod_serves_only_while_a_rollout_replaces_the_replicas() {
    let mut w = World::new(2);
    w.apply(&service("hello", "hello", 80, TargetPort::Number(8080)));
    let old = shoal_crdt_state::spec::TemplateHash(7);
    for i in 0..2 {
        w.run(
            A,
            PodStatus {
                template_hash: old,
                ..pod("hello", i, Some(32001 + i as u16))
            },
        );
    }
    // Surge slot 2 (25% of 2, rounded up) runs the new template.
    w.run(B, pod("hello", 2, Some(32010)));
    assert_eq!(
        w.endpoints("hello"),
        [
            ep("hello-0", "n1", true),
            ep("hello-1", "n1", true),
            ep("hello-2", "n2", true)
        ]
    );
    // Replica 1 restarts on the new template and is not ready yet: the
    // surge pod still stands in for it.
    w.run(A, pod("hello", 0, Some(32001)));
    w.run(
        A,
        PodStatus {
            ready: false,
            available: false,
            ..pod("hello", 1, Some(32002))
        },
    );
    assert_eq!(
        w.endpoints("hello"),
        [
            ep("hello-0", "n1", true),
            ep("hello-1", "n1", false),
            ep("hello-2", "n2", true)
        ]
    );
    // Both replicas moved: the surge pod is leaving, so it serves no more.
    for i in 0..2 {
        w.run(A, pod("hello", i, Some(32001 + i as u16)));
    }
    assert_eq!(
        w.endpoints("hello"),
        [
            ep("hello-0", "n1", true),
            ep("hello-1", "n1", true),
            ep("hello-2", "n2", false)
        ]
    );
}
