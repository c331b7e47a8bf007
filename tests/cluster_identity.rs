//! Node identity a member cannot forge, between real `shoal up` processes
//! over real QUIC on loopback (sharing the machine's Docker engine): a
//! machine given the join token and a copy of node1's `node.json` (its
//! node id) but not its `node.key` tries to join as node1. Its QUIC
//! certificate is made for its own key, which node1's id is not bound to,
//! so every peer refuses its connections: it never shows up as node1 (or
//! at all), node1 keeps its replicas, and the forger is told why.
#![cfg(feature = "shell")]

mod cluster_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use cluster_support::{Cluster, shoal_bin, wait_until};
use serde_json::Value;

/// Loopback subnet of this file (127.0.111.x).
const SUBNET: u8 = 111;
const IMAGE: &str = "shoal-test/hello:1.0";

/// The names `get nodes` lists at peer `i`.
fn node_names(cluster: &Cluster, i: usize) -> Vec<String> {
    let nodes = cluster.try_get_json(i, "nodes").unwrap_or(Value::Null);
    nodes
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The address peer `i` lists for the node called `name`.
fn node_addr(cluster: &Cluster, i: usize, name: &str) -> Option<String> {
    let nodes = cluster.try_get_json(i, "nodes")?;
    nodes
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .map(|n| n["address"].to_string())
}

#[test]
fn a_member_claiming_an_existing_node_id_is_refused_at_the_transport() {
    let mut cluster = Cluster::start(SUBNET, 3);
    cluster.wait_for_all_alive(3, Duration::from_secs(30));
    cluster.apply_and_wait_running("web", 3, IMAGE);
    let node1_pods = cluster.running_pods_on("web", "node1");
    let node1_addr = node_addr(&cluster, 0, "node1");
    assert!(
        node1_addr.is_some(),
        "{:?}",
        cluster.try_get_json(0, "nodes")
    );

    let forger_dir = cluster.dir.join("forger");
    std::fs::create_dir_all(&forger_dir).unwrap();
    std::fs::copy(
        cluster.peers[1].data_dir.join("node.json"),
        forger_dir.join("node.json"),
    )
    .unwrap();
    let log = std::fs::File::create(cluster.dir.join("forger.log")).unwrap();
    let mut forger = Command::new(shoal_bin())
        .args([
            "up",
            "--listen",
            "127.0.111.30:7946",
            "--api",
            "127.0.111.30:7070",
        ])
        .arg("--data-dir")
        .arg(&forger_dir)
        .args(["--name", "forger", "--memory", "4Gi"])
        .args(["--join", &cluster.peers[0].peer_addr()])
        .args(["--join-token", &cluster.token])
        .env("SHOAL_LOG", "info")
        // No engine: on the machine's shared one, node1's containers carry
        // the id the forger claims, and it would adopt and stop them, which
        // a forger on another machine cannot do.
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no-engine.sock", forger_dir.display()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the forger");

    let refusals = |c: &Cluster| -> u64 {
        (0..3)
            .map(|i| c.counter(i, "shoal_transport_identity_refusals_total"))
            .sum()
    };
    let forger_log = || std::fs::read_to_string(cluster.dir.join("forger.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(60), || refusals(&cluster) > 0),
        "no peer refused the forger's connections; forger log:\n{}\n{}",
        forger_log(),
        cluster.every_log_tail()
    );
    // Let the forger knock for a while longer: nothing it says lands.
    std::thread::sleep(Duration::from_secs(8));
    for i in 0..3 {
        let names = node_names(&cluster, i);
        assert!(names.contains(&"node1".to_owned()), "peer {i}: {names:?}");
        assert!(!names.contains(&"forger".to_owned()), "peer {i}: {names:?}");
        assert_eq!(
            node_addr(&cluster, i, "node1"),
            node1_addr,
            "peer {i} lists node1 elsewhere"
        );
        assert_eq!(cluster.count_nodes(i, "Alive"), 3, "peer {i}");
    }
    assert!(
        cluster.peers[1].is_running(),
        "node1 keeps running: {}",
        cluster.log_tail(1)
    );
    assert_eq!(
        cluster.running_pods_on("web", "node1"),
        node1_pods,
        "node1 keeps its replicas"
    );
    let logged = (0..3).any(|i| {
        std::fs::read_to_string(&cluster.peers[i].log)
            .unwrap_or_default()
            .contains("which is bound to another key")
    });
    assert!(
        logged,
        "the refusal is not logged:\n{}",
        cluster.every_log_tail()
    );
    assert!(
        wait_until(Duration::from_secs(20), || forger_log()
            .contains("our node id is bound to another key there")),
        "the forger was not told why; its log:\n{}",
        forger_log()
    );
    let _ = forger.kill();
    let _ = forger.wait();
    cluster.terminate_all(&[0, 1, 2]);
}
