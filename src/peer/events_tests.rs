//! The events the core emits, on peers driven by [`testing`](super::testing):
//! who tells what, and why.

use std::net::SocketAddr;
use std::time::Duration;

use super::events::{EventRecord, EventType, ObjectKind};
use super::testing::Cluster;
use super::{Command, Peer, PeerEvent};

// The peers' test fixtures: virtual addresses, nothing binds them.
use super::tests::{START, addr, config, hello};

fn three_peers_running_hello(replicas: u32) -> Cluster {
    let mut cluster = Cluster::new(START, Duration::from_millis(1));
    for i in 0..3 {
        let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
        cluster.add(Peer::new(config(i)), &seeds);
    }
    cluster.run_for(Duration::from_secs(3));
    cluster.command(1, Command::Apply(hello(replicas))).unwrap();
    cluster.run_for(Duration::from_secs(5));
    cluster
}

/// What peer `i` recorded, oldest first.
fn recorded(cluster: &Cluster, i: usize) -> Vec<EventRecord> {
    cluster.logs[i]
        .events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Recorded(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// `(peer, pod name)` of every `reason` event about a pod, over all peers.
fn told(cluster: &Cluster, reason: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = (0..cluster.peers.len())
        .flat_map(|i| {
            recorded(cluster, i)
                .into_iter()
                .filter(|r| r.reason == reason && r.object == ObjectKind::Pod)
                .map(move |r| (i, r.name))
        })
        .collect();
    out.sort();
    out
}

/// Which peer runs pod `name`, as peer 0's assignment says.
fn owner_index(cluster: &Cluster, name: &str) -> usize {
    let (rc, index) = name.rsplit_once('-').expect("pods are named RC-INDEX");
    let id = shoal_crdt_state::pod::PodId {
        rc: rc.to_owned(),
        index: index.parse().expect("the index is a number"),
    };
    let node = cluster.peers[0]
        .assignment()
        .owner(&id)
        .expect("every replica is placed");
    (node.0 - 1) as usize
}

#[test]
fn only_the_node_a_replica_is_given_to_tells_its_assignment_and_start() {
    let cluster = three_peers_running_hello(3);
    let scheduled = told(&cluster, "Scheduled");
    let started = told(&cluster, "Started");
    assert_eq!(scheduled.len(), 3, "{scheduled:?}");
    assert_eq!(
        started, scheduled,
        "each start by the node it was assigned to"
    );
    for (peer, pod) in &scheduled {
        assert_eq!(
            *peer,
            owner_index(&cluster, pod),
            "{pod} told by peer {peer}"
        );
    }
}

#[test]
fn a_scale_down_tells_why_each_pod_stops_and_the_scale_on_the_rc() {
    let mut cluster = three_peers_running_hello(3);
    cluster
        .command(
            2,
            Command::Scale {
                name: "hello".into(),
                replicas: 1,
            },
        )
        .unwrap();
    cluster.run_for(Duration::from_secs(10));
    let mut killed: Vec<String> = told(&cluster, "Killing")
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    killed.sort();
    assert_eq!(killed, ["hello-1", "hello-2"]);
    let why: Vec<String> = (0..3)
        .flat_map(|i| recorded(&cluster, i))
        .filter(|r| r.reason == "Killing")
        .map(|r| r.message)
        .collect();
    assert!(
        why.iter().all(|m| m.contains("scaled down to 1")),
        "{why:?}"
    );
    let scaled: Vec<EventRecord> = recorded(&cluster, 2)
        .into_iter()
        .filter(|r| r.reason == "Scaled")
        .collect();
    assert_eq!(scaled.len(), 1);
    assert_eq!(scaled[0].message, "Scaled from 3 to 1 replicas");
    assert_eq!(scaled[0].object, ObjectKind::ReplicationController);
}

#[test]
fn every_survivor_tells_a_crashed_node_down_as_a_cluster_wide_warning() {
    let mut cluster = three_peers_running_hello(1);
    cluster.crash(2);
    cluster.run_for(Duration::from_secs(30));
    for i in 0..2 {
        let downs: Vec<EventRecord> = recorded(&cluster, i)
            .into_iter()
            .filter(|r| r.reason == "NodeDown")
            .collect();
        assert_eq!(downs.len(), 1, "peer {i}: {downs:?}");
        assert_eq!(downs[0].name, "node-2");
        assert_eq!(downs[0].kind, EventType::Warning);
        assert!(downs[0].cluster_wide);
        assert!(downs[0].at_ms > START.as_millis() as u64);
    }
}
