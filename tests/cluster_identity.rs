//! Node identity a member cannot forge, between real `shoal up` processes
//! over real QUIC on loopback (no containers): a machine given the join
//! token and a copy of node1's `node.json` (its node id) but not its
//! `node.key` joins and publishes as node1; every peer refuses its records
//! and keeps node1's own, and the forger is told its id is bound to
//! another key.
#![cfg(feature = "shell")]

mod cluster_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use cluster_support::{Cluster, shoal_bin, wait_until};
use serde_json::Value;

/// Loopback subnet of this file (127.0.86.x).
const SUBNET: u8 = 86;

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

/// `shoal_records_rejected_total{reason=...}` at peer `i`.
fn rejected(cluster: &Cluster, i: usize, reason: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", &format!("{}/metrics", cluster.peers[i].server())])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let series = format!("shoal_records_rejected_total{{reason=\"{reason}\"}}");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn a_member_claiming_an_existing_node_id_is_ignored_everywhere() {
    let mut cluster = Cluster::start(SUBNET, 3);
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
            "127.0.86.30:7946",
            "--api",
            "127.0.86.30:7070",
        ])
        .arg("--data-dir")
        .arg(&forger_dir)
        .args(["--name", "forger", "--memory", "4Gi"])
        .args(["--join", &cluster.peers[0].peer_addr()])
        .args(["--join-token", &cluster.token])
        .env("SHOAL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the forger");

    let seen = wait_until(Duration::from_secs(60), || {
        (0..3).map(|i| rejected(&cluster, i, "forged")).sum::<u64>() > 0
    });
    let forger_log = || std::fs::read_to_string(cluster.dir.join("forger.log")).unwrap_or_default();
    assert!(
        seen,
        "no peer rejected a forged record; forger log:\n{}",
        forger_log()
    );
    // Let the forger publish for a while longer: nothing it says lands.
    std::thread::sleep(Duration::from_secs(5));
    for i in 0..3 {
        let names = node_names(&cluster, i);
        assert!(names.contains(&"node1".to_owned()), "peer {i}: {names:?}");
        assert!(!names.contains(&"forger".to_owned()), "peer {i}: {names:?}");
    }
    assert!(
        cluster.peers[1].is_running(),
        "node1 keeps running: {}",
        cluster.log_tail(1)
    );
    assert!(
        wait_until(Duration::from_secs(10), || forger_log()
            .contains("our node id is bound to another key")),
        "the forger was not told; its log:\n{}",
        forger_log()
    );
    let _ = forger.kill();
    let _ = forger.wait();
    cluster.terminate_all(&[0, 1, 2]);
}
