//! Loud failures at join: a peer given another cluster's token, or seeds
//! that never answer, says why within seconds and exits non-zero, unless
//! told to start alone. Real `shoal up` processes on loopback addresses.
#![cfg(feature = "shell")]

mod cluster_support;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, shoal_bin};
use shoal_gossip::quic::JoinToken;

/// Starts a fresh peer on 127.0.31.`host` that joins through `seed`.
fn joiner(host: u8, seed: &str, token: &str, extra: &[&str], dir: &std::path::Path) -> Child {
    Command::new(shoal_bin())
        .args(["up", "--listen", &format!("127.0.31.{host}:7946")])
        .args(["--api", &format!("127.0.31.{host}:7070")])
        .arg("--data-dir")
        .arg(dir.join(format!("joiner{host}")))
        .args([
            "--join",
            seed,
            "--join-token",
            token,
            "--join-timeout",
            "4s",
        ])
        .args(extra)
        .env("SHOAL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal up")
}

/// Waits for the child to exit (at most `limit`); returns its status and
/// stderr, or `None` if it still runs (then it is killed).
fn exit_of(mut child: Child, limit: Duration) -> Option<(std::process::ExitStatus, String)> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status, err));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_join_with_another_clusters_token_says_so_and_exits_non_zero() {
    let cluster = Cluster::start(31, 1);
    let other = JoinToken::from_seed([42; 32]).to_string();
    let started = Instant::now();
    let child = joiner(20, &cluster.peers[0].peer_addr(), &other, &[], &cluster.dir);
    let (status, stderr) =
        exit_of(child, Duration::from_secs(30)).expect("the joiner kept running");
    assert!(!status.success(), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("WARN") && stderr.contains("another cluster"),
        "no early warning naming the cause:\n{stderr}"
    );
    assert!(
        stderr.contains("error: could not join the cluster") && stderr.contains("--join-token"),
        "{stderr}"
    );
}

#[test]
fn a_join_through_a_dead_seed_says_so_and_exits_non_zero() {
    let cluster = Cluster::start(32, 1);
    let token = cluster.token.clone();
    let child = joiner(21, "127.0.32.99:7946", &token, &[], &cluster.dir);
    let (status, stderr) =
        exit_of(child, Duration::from_secs(30)).expect("the joiner kept running");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("127.0.32.99:7946"), "{stderr}");
    assert!(stderr.contains("could not join the cluster"), "{stderr}");
}

#[test]
fn told_to_start_alone_a_peer_with_a_dead_seed_keeps_running() {
    let cluster = Cluster::start(33, 1);
    let token = cluster.token.clone();
    let child = joiner(
        22,
        "127.0.33.99:7946",
        &token,
        &["--start-alone"],
        &cluster.dir,
    );
    assert!(
        exit_of(child, Duration::from_secs(8)).is_none(),
        "a peer told to start alone exited"
    );
}

#[test]
fn a_new_peer_with_a_name_already_in_use_is_refused() {
    let cluster = Cluster::start(34, 2);
    let token = cluster.token.clone();
    let child = Command::new(shoal_bin())
        .args([
            "up",
            "--listen",
            "127.0.34.30:7946",
            "--api",
            "127.0.34.30:7070",
        ])
        .arg("--data-dir")
        .arg(cluster.dir.join("twin"))
        .args(["--name", "node1", "--join", &cluster.peers[0].peer_addr()])
        .args(["--join-token", &token])
        .env("SHOAL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal up");
    let (status, stderr) = exit_of(child, Duration::from_secs(30)).expect("the twin kept running");
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("\"node1\" is already used by the live node") && stderr.contains("--name"),
        "{stderr}"
    );
    // The original keeps its name and stays alive.
    assert_eq!(
        cluster.count_nodes(0, "Alive"),
        2,
        "{:?}",
        cluster.try_get_json(0, "nodes")
    );
}
