//! Node lifecycle with real peers: drain (make-before-break), cordon,
//! delete a node that will not return, forget one down too long, and a
//! machine that lost its node.json. Real `shoal up` processes, real Docker
//! engines (one per machine where a machine dies).
#![cfg(feature = "shell")]

mod cluster_support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc, ok, shoal_bin, wait_until};

fn run_web(cluster: &Cluster, replicas: u32) {
    let manifest = cluster.manifest(
        "web.yaml",
        &hello_rc("web", replicas, "shoal-test/hello:1.0"),
    );
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    assert!(
        wait_until(Duration::from_secs(60), || {
            cluster.engine_copies("web").len() == replicas as usize
        }),
        "web never ran: {:?}",
        cluster.engine_copies("web")
    );
}

/// Names of the nodes peer `i` lists.
fn node_names(cluster: &Cluster, i: usize) -> BTreeSet<String> {
    cluster
        .try_get_json(i, "nodes")
        .and_then(|v| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|n| n["name"].as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Each replica index below `n` runs exactly once, none on `node`.
fn exactly_off(copies: &[(String, String)], n: u32, node: &str) -> bool {
    let replicas: BTreeSet<&str> = copies.iter().map(|(r, _)| r.as_str()).collect();
    copies.len() == n as usize
        && replicas.len() == n as usize
        && copies.iter().all(|(_, o)| o != node)
}

#[test]
fn drain_moves_every_replica_make_before_break_and_uncordon_reopens_the_node() {
    let cluster = Cluster::start(35, 3);
    run_web(&cluster, 3);
    let drained = cluster.node_id(2);

    let mut drain = Command::new(shoal_bin())
        .args(["drain", "node2", "--timeout", "60s"])
        .env("SHOAL_SERVER", cluster.peers[0].server())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Make-before-break: never fewer than 3 copies while the drain runs.
    let mut fewest = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(90);
    while matches!(drain.try_wait(), Ok(None)) && Instant::now() < deadline {
        fewest = fewest.min(cluster.engine_copies("web").len());
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = drain.wait_with_output().unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("node/node2 cordoned"), "{stdout}");
    assert!(stdout.contains("node/node2 drained"), "{stdout}");
    assert!(
        fewest >= 3,
        "a replica was stopped before its replacement ran ({fewest} copies)"
    );
    // Nothing is left on the drained node; a move between the others may
    // still be finishing (make-before-break leaves a brief extra copy).
    assert!(
        cluster
            .engine_copies("web")
            .iter()
            .all(|(_, n)| *n != drained),
        "the drained node still runs a copy: {:?}",
        cluster.engine_copies("web")
    );
    assert!(
        wait_until(Duration::from_secs(30), || exactly_off(
            &cluster.engine_copies("web"),
            3,
            &drained
        )),
        "{:?}",
        cluster.engine_copies("web")
    );
    let table = ok(&cluster.cli(1, &["get", "nodes"]));
    assert!(table.contains("SchedulingDisabled"), "{table}");

    // Uncordoned, the node takes its share back.
    ok(&cluster.cli(1, &["uncordon", "node2"]));
    assert!(
        wait_until(Duration::from_secs(60), || {
            let copies = cluster.engine_copies("web");
            copies.len() == 3 && copies.iter().any(|(_, n)| *n == drained)
        }),
        "node2 got nothing back: {:?}",
        cluster.engine_copies("web")
    );
}

#[test]
fn a_deleted_node_leaves_no_ghost_and_its_replicas_run_elsewhere() {
    // One engine per machine: the dead machine's containers die with it.
    let mut cluster = Cluster::start_machines(36, 3);
    run_web(&cluster, 3);
    let gone = cluster.node_id(2);
    // Deleting a live node is refused with what to do.
    let out = cluster.cli(0, &["node", "delete", "node2"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is alive") && stderr.contains("shoal drain node2"),
        "{stderr}"
    );

    // The machine dies for good, with its engine and its containers.
    cluster.kill_machine(2);
    assert!(wait_until(Duration::from_secs(30), || cluster
        .count_nodes(0, "Down")
        == 1));
    ok(&cluster.cli(0, &["delete", "node", "node2"]));
    let deleted = Instant::now();
    for i in 0..2 {
        assert!(
            wait_until(Duration::from_secs(10), || !node_names(&cluster, i)
                .contains("node2")),
            "peer {i} still lists node2: {:?}",
            node_names(&cluster, i)
        );
        let pods = ok(&cluster.cli(i, &["get", "pods", "-o", "wide"]));
        assert!(
            !pods.contains("node2"),
            "peer {i} still shows node2's pods:\n{pods}"
        );
    }
    // Its replicas run on the two others, once each.
    assert!(
        wait_until(Duration::from_secs(40), || exactly_off(
            &cluster.engine_copies("web"),
            3,
            &gone
        )),
        "missing or extra replicas: {:?}",
        cluster.engine_copies("web")
    );
    eprintln!(
        "replicas of the deleted node settled after {:?}",
        deleted.elapsed()
    );
}

#[test]
fn containers_a_deleted_node_left_on_a_shared_engine_are_stopped() {
    // A shared engine on purpose: this is the one place where a deleted
    // node's containers outlive it within sight of live peers (a machine
    // whose peer crashed, its engine still running), and the live peers must
    // stop those orphans once their replicas run elsewhere. With one engine
    // per machine no peer ever sees another node's containers.
    let mut cluster = Cluster::start(49, 3);
    run_web(&cluster, 3);
    let gone = cluster.node_id(2);
    cluster.kill9(2);
    assert!(wait_until(Duration::from_secs(30), || cluster
        .count_nodes(0, "Down")
        == 1));
    ok(&cluster.cli(0, &["delete", "node", "node2"]));
    let deleted = Instant::now();
    assert!(
        wait_until(Duration::from_secs(40), || exactly_off(
            &cluster.engine_copies("web"),
            3,
            &gone
        )),
        "orphans or missing replicas: {:?}",
        cluster.engine_copies("web")
    );
    eprintln!(
        "orphans of the deleted node gone after {:?}",
        deleted.elapsed()
    );
}

#[test]
fn a_node_down_longer_than_forget_down_after_is_forgotten_everywhere() {
    let mut cluster = Cluster::start_with_args(37, 3, &["--forget-down-after", "4s"]);
    run_web(&cluster, 2);
    cluster.kill9(2);
    let killed = Instant::now();
    for i in 0..2 {
        assert!(
            wait_until(Duration::from_secs(30), || !node_names(&cluster, i)
                .contains("node2")),
            "peer {i} still lists node2: {:?}",
            node_names(&cluster, i)
        );
    }
    eprintln!("node forgotten after {:?}", killed.elapsed());
    let rc = ok(&cluster.cli(0, &["get", "rc", "web", "-o", "json"]));
    assert!(
        rc.contains("\"replicas\": 2") || rc.contains("\"replicas\":2"),
        "{rc}"
    );
}

#[test]
fn a_machine_that_lost_its_node_json_comes_back_as_one_node_not_two() {
    let mut cluster = Cluster::start(38, 3);
    run_web(&cluster, 3);
    let old = cluster.node_id(2);
    cluster.kill9(2);
    // The data dir is lost; the machine restarts on the same address with a
    // new identity. Its old containers are still on the engine.
    let _ = std::fs::remove_dir_all(&cluster.peers[2].data_dir);
    cluster.spawn(2);
    let new = cluster.node_id(2);
    assert_ne!(old, new);
    for i in 0..3 {
        assert!(
            wait_until(Duration::from_secs(30), || {
                let names = node_names(&cluster, i);
                names.len() == 3 && cluster.count_nodes(i, "Alive") == 3
            }),
            "peer {i} does not see 3 live nodes and nothing else: {:?}",
            cluster.try_get_json(i, "nodes")
        );
    }
    assert!(
        wait_until(Duration::from_secs(40), || exactly_off(
            &cluster.engine_copies("web"),
            3,
            &old
        )),
        "the old identity's containers still run: {:?}",
        cluster.engine_copies("web")
    );
}

#[test]
fn a_node_forgotten_during_a_long_partition_registers_again_when_it_heals() {
    let mut cluster = Cluster::start_with_args(39, 3, &["--forget-down-after", "3s"]);
    run_web(&cluster, 2);
    cluster.partition(&[0, 1], &[2]);
    assert!(
        wait_until(Duration::from_secs(30), || !node_names(&cluster, 0)
            .contains("node2")),
        "node2 was never forgotten: {:?}",
        node_names(&cluster, 0)
    );
    cluster.heal();
    // Node2 finds itself removed (or the others removed by it) and takes
    // it back: every peer lists all three, alive, again.
    for i in 0..3 {
        assert!(
            wait_until(Duration::from_secs(40), || {
                node_names(&cluster, i).len() == 3 && cluster.count_nodes(i, "Alive") == 3
            }),
            "peer {i} after the heal: {:?}",
            cluster.try_get_json(i, "nodes")
        );
    }
    assert!(
        wait_until(Duration::from_secs(60), || {
            let copies = cluster.engine_copies("web");
            let replicas: BTreeSet<&str> = copies.iter().map(|(r, _)| r.as_str()).collect();
            copies.len() == 2 && replicas.len() == 2
        }),
        "not exactly 2 copies after the heal: {:?}",
        cluster.engine_copies("web")
    );
    let log = |i: usize| std::fs::read_to_string(&cluster.peers[i].log).unwrap_or_default();
    // Whichever peer noticed first wrote the removal (the other merged it).
    assert!(
        (0..2).any(|i| log(i).contains("node forgotten")),
        "nobody forgot node2"
    );
    assert!(
        (0..3).any(|i| log(i).contains("registered again")),
        "nobody registered again"
    );
}
