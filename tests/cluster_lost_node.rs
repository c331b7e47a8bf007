//! What `get pods`, `get nodes` and `describe node` print about a real
//! 2-peer cluster before and after one peer is killed: each pod has an AGE,
//! and a node that is no longer Alive shows its RUNTIME as Unknown (its last
//! report said Ready, but nobody can vouch for that any more), as kubectl
//! shows a lost kubelet's node; its pod is Unknown and not ready.

mod cluster_support;

use std::time::Duration;

use cluster_support::{Cluster, hello_rc, ok, wait_until};

/// The subnet of this test's peers: 127.0.93.0/24.
const SUBNET: u8 = 93;

/// Rows of a kubectl-style table, split on runs of spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// An age of under ten minutes, as kubectl prints it (`42s`, `2m`, `3m10s`).
fn is_recent_age(age: &str) -> bool {
    let Some(rest) = age.strip_suffix('s') else {
        return age
            .strip_suffix('m')
            .is_some_and(|m| m.parse::<u64>().is_ok_and(|m| m < 10));
    };
    match rest.split_once('m') {
        Some((m, s)) => m.parse::<u64>().is_ok_and(|m| m < 10) && s.parse::<u64>().is_ok(),
        None => rest.parse::<u64>().is_ok(),
    }
}

/// `(STATUS, RUNTIME)` of `node` in peer `i`'s `get nodes`.
fn node_row(cluster: &Cluster, i: usize, node: &str) -> Option<(String, String)> {
    let out = cluster.cli(i, &["get", "nodes"]);
    rows(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .find(|r| r.first().is_some_and(|n| n == node))
        .map(|r| (r[1].clone(), r[2].clone()))
}

#[test]
fn pods_show_their_age_and_a_lost_node_its_runtime_unknown() {
    let mut cluster = Cluster::start(SUBNET, 2);
    let manifest = cluster.manifest("aged.yaml", &hello_rc("aged", 2, "shoal-test/hello:1.0"));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let running = wait_until(Duration::from_secs(90), || {
        cluster.running_pods(0, "aged").len() == 2
    });
    assert!(
        running,
        "2 pods not running: {:?}\npeer 0:\n{}",
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );

    // Each peer prints every pod with an age, in kubectl's column order.
    for i in 0..2 {
        for args in [&["get", "pods"][..], &["get", "pods", "-o", "wide"][..]] {
            let table = rows(&ok(&cluster.cli(i, args)));
            assert_eq!(
                table[0][..7],
                [
                    "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "PORTS"
                ],
                "peer {i} {args:?}"
            );
            let aged: Vec<&Vec<String>> = table[1..]
                .iter()
                .filter(|r| r[0].starts_with("aged-"))
                .collect();
            assert_eq!(aged.len(), 2, "peer {i} {args:?}: {table:?}");
            for row in aged {
                assert!(is_recent_age(&row[4]), "peer {i} {args:?}: {row:?}");
            }
        }
    }
    for node in ["node0", "node1"] {
        assert_eq!(
            node_row(&cluster, 0, node),
            Some(("Alive".to_owned(), "Ready".to_owned()))
        );
    }

    // Spread over both nodes: one runs on node1.
    let on_node1 = |table: &[Vec<String>]| -> Vec<Vec<String>> {
        table[1..]
            .iter()
            .filter(|r| r[0].starts_with("aged-") && r[5] == "node1")
            .cloned()
            .collect()
    };
    let before = on_node1(&rows(&ok(&cluster.cli(0, &["get", "pods"]))));
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0][1..3], ["1/1", "Running"], "{before:?}");

    // node1's peer dies: node0 cannot vouch for its engine any more.
    cluster.kill9(1);
    let unknown = wait_until(Duration::from_secs(30), || {
        node_row(&cluster, 0, "node1")
            .is_some_and(|(state, runtime)| state != "Alive" && runtime == "Unknown")
    });
    assert!(
        unknown,
        "node1 not shown lost with its runtime Unknown: {:?}\npeer 0:\n{}",
        node_row(&cluster, 0, "node1"),
        cluster.log_tail(0)
    );
    // Once Down, it stays Unknown (never Ready again while it is down).
    let down = wait_until(Duration::from_secs(30), || {
        node_row(&cluster, 0, "node1").is_some_and(|(state, _)| state == "Down")
    });
    assert!(down, "node1 not Down: {:?}", node_row(&cluster, 0, "node1"));
    assert_eq!(
        node_row(&cluster, 0, "node1"),
        Some(("Down".to_owned(), "Unknown".to_owned()))
    );
    assert_eq!(
        node_row(&cluster, 0, "node0"),
        Some(("Alive".to_owned(), "Ready".to_owned()))
    );
    let nodes = cluster.get_json(0, "nodes");
    let node1 = nodes
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == "node1"))
        .expect("node1 in GET /nodes");
    assert_eq!(node1["runtime"], "Unknown", "{node1}");
    assert_eq!(node1["ready"], false, "{node1}");

    // Nor for its pod: Unknown, and not ready.
    let after = on_node1(&rows(&ok(&cluster.cli(0, &["get", "pods"]))));
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0][1..3], ["0/1", "Unknown"], "{after:?}");

    let describe = ok(&cluster.cli(0, &["describe", "node", "node1"]));
    let line = describe
        .lines()
        .find(|l| l.starts_with("Runtime:"))
        .unwrap_or_default();
    assert!(
        line.contains("Unknown") && line.contains("Down"),
        "{describe}"
    );
}
