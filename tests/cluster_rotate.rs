//! Join-token rotation between real `shoal up` processes over real QUIC on
//! loopback (RCs of 0 replicas: no containers): `shoal token rotate` with a
//! 3 s grace; every member records the new token and keeps working; a peer
//! joins with the new token; after the grace a peer with the old token is
//! refused (and the members log why); a member restarted after the
//! rotation rejoins (and its banner names the new token); RCs written
//! before and after reach every peer.
#![cfg(feature = "shell")]

mod cluster_support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc, ok, shoal_bin, wait_until};
use serde_json::Value;

/// Loopback subnet of this file (127.0.97.x).
const SUBNET: u8 = 97;
const GRACE: Duration = Duration::from_secs(3);

/// The names of the nodes peer `i` sees alive.
fn alive_names(cluster: &Cluster, i: usize) -> Vec<String> {
    let nodes = cluster.try_get_json(i, "nodes").unwrap_or(Value::Null);
    nodes
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|n| n["state"] == "Alive")
                .filter_map(|n| n["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the RCs peer `i` lists.
fn rc_names(cluster: &Cluster, i: usize) -> Vec<String> {
    let rcs = cluster.try_get_json(i, "rc").unwrap_or(Value::Null);
    rcs.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The current join token recorded in a node.json, if any rotation was.
fn recorded_current(data_dir: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("node.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["identity"]["join_secrets"]["current"]
        .as_str()
        .map(str::to_owned)
}

/// A process killed when dropped (a failed assertion must not leave a
/// peer holding the test's address).
struct Joiner(Child);

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A peer outside the cluster's harness, on 127.0.97.`host`, joining
/// through peer 0 with `token`.
fn spawn_joiner(cluster: &Cluster, host: u8, name: &str, token: &str) -> Joiner {
    spawn_joiner_with(cluster, SUBNET, host, name, token, &[])
}

/// A joiner on 127.0.`subnet`.`host` with `extra` flags for `shoal up`.
fn spawn_joiner_with(
    cluster: &Cluster,
    subnet: u8,
    host: u8,
    name: &str,
    token: &str,
    extra: &[&str],
) -> Joiner {
    let dir = cluster.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(cluster.dir.join(format!("{name}.log"))).unwrap();
    Command::new(shoal_bin())
        .args(["up", "--listen", &format!("127.0.{subnet}.{host}:7946")])
        .args(["--api", &format!("127.0.{subnet}.{host}:7070")])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--name", name, "--memory", "4Gi", "--join-timeout", "15s"])
        .args(extra)
        .args(["--join", &cluster.peers[0].peer_addr()])
        .args(["--join-token", token])
        .env("SHOAL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Joiner)
        .expect("spawn a joiner")
}

fn apply_rc(cluster: &Cluster, i: usize, name: &str) {
    let manifest = cluster.manifest(
        &format!("{name}.yaml"),
        &hello_rc(name, 0, "shoal-test/hello:1.0"),
    );
    ok(&cluster.cli(i, &["apply", "-f", manifest.to_str().unwrap()]));
}

#[test]
fn a_rotated_join_token_admits_new_peers_and_refuses_the_old_after_the_grace() {
    let mut cluster = Cluster::start(SUBNET, 3);
    let old_token = cluster.token.clone();
    apply_rc(&cluster, 0, "before");

    let rotated = cluster.cli(1, &["token", "rotate", "--grace", "3s"]);
    let rotated_at = Instant::now();
    let new_token = ok(&rotated).trim().to_owned();
    assert!(new_token.starts_with("shoal1."), "{new_token}");
    assert_ne!(new_token, old_token);

    // Every member records the new token, owner-only.
    let recorded = wait_until(Duration::from_secs(20), || {
        cluster
            .peers
            .iter()
            .all(|p| recorded_current(&p.data_dir).as_deref() == Some(new_token.as_str()))
    });
    assert!(recorded, "node.json of every member holds the new token");
    for peer in &cluster.peers {
        let mode = std::fs::metadata(peer.data_dir.join("node.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "node.json holds tokens: owner-only");
    }

    // A new peer with the new token joins and is seen by every member.
    let fresh = spawn_joiner(&cluster, 21, "fresh", &new_token);
    let joined = wait_until(Duration::from_secs(60), || {
        (0..3).all(|i| alive_names(&cluster, i).contains(&"fresh".to_owned()))
    });
    assert!(
        joined,
        "the peer with the new token joined; logs:\n{}",
        cluster.every_log_tail()
    );

    // After the grace, the old token is refused, with a line saying why.
    if let Some(left) = (GRACE + Duration::from_millis(500)).checked_sub(rotated_at.elapsed()) {
        std::thread::sleep(left);
    }
    let mut stale = spawn_joiner(&cluster, 22, "stale", &old_token);
    let refused_logged = wait_until(Duration::from_secs(30), || {
        (0..3).any(|i| {
            std::fs::read_to_string(&cluster.peers[i].log)
                .unwrap_or_default()
                .contains("refused a peer: its certificate comes from no join token")
        })
    });
    let stale_gave_up = wait_until(Duration::from_secs(30), || {
        matches!(stale.0.try_wait(), Ok(Some(_)))
    });
    drop(stale);
    assert!(refused_logged, "a member logs the refusal");
    assert!(
        stale_gave_up,
        "the peer with the old token gives up joining"
    );
    for i in 0..3 {
        assert!(
            !alive_names(&cluster, i).contains(&"stale".to_owned()),
            "peer {i} lists the stale peer"
        );
    }

    // The members never restarted and still talk: an RC written after the
    // rotation reaches all four, and so does the one written before.
    apply_rc(&cluster, 2, "after");
    let fresh_server = format!("http://127.0.{SUBNET}.21:7070");
    let fresh_rcs = || {
        let out = Command::new(shoal_bin())
            .args(["get", "rc", "-o", "json"])
            .env("SHOAL_SERVER", &fresh_server)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["name"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let both =
        |names: Vec<String>| names.contains(&"before".into()) && names.contains(&"after".into());
    let spread = wait_until(Duration::from_secs(30), || {
        (0..3).all(|i| both(rc_names(&cluster, i))) && both(fresh_rcs())
    });
    assert!(spread, "both RCs reach every peer");

    // A member restarted after the rotation (with the old token on its
    // command line, as its unit file still says) rejoins on the new one.
    cluster.terminate(2);
    cluster.spawn(2);
    let rejoined = wait_until(Duration::from_secs(60), || {
        let everyone = ["node0", "node1", "node2", "fresh"];
        (0..3).all(|i| {
            let alive = alive_names(&cluster, i);
            everyone.iter().all(|n| alive.contains(&(*n).to_owned()))
        })
    });
    assert!(
        rejoined,
        "the restarted member rejoins; logs:\n{}",
        cluster.every_log_tail()
    );
    apply_rc(&cluster, 2, "restarted");
    let reached = wait_until(Duration::from_secs(30), || {
        fresh_rcs().contains(&"restarted".to_owned())
            && (0..2).all(|i| rc_names(&cluster, i).contains(&"restarted".to_owned()))
    });
    assert!(reached, "an RC written at the restarted member reaches all");
    drop(fresh);
}

/// Loopback subnet of the identity test (127.0.103.x).
const IDENTITY_SUBNET: u8 = 103;

/// A peer joining through the single peer of `cluster` on
/// 127.0.103.`host`, its API over TLS, labelled `role=fresh`.
fn spawn_tls_joiner(cluster: &Cluster, host: u8, name: &str, token: &str) -> Joiner {
    let extra = ["--api-tls", "--label", "role=fresh"];
    spawn_joiner_with(cluster, IDENTITY_SUBNET, host, name, token, &extra)
}

/// `shoal ca print` for the peer whose data dir is `dir`.
fn ca_print(dir: &std::path::Path) -> String {
    let out = Command::new(shoal_bin())
        .args(["ca", "print", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    ok(&out)
}

#[test]
fn a_peer_joined_with_a_rotated_token_has_the_clusters_id_and_api_ca() {
    let cluster = Cluster::start(IDENTITY_SUBNET, 1);
    let old_ca = ca_print(&cluster.peers[0].data_dir);
    let ca_file = cluster.dir.join("old-member-ca.pem");
    std::fs::write(&ca_file, &old_ca).unwrap();

    let rotated = cluster.cli(0, &["token", "rotate", "--grace", "0s"]);
    let new_token = ok(&rotated).trim().to_owned();
    assert_ne!(new_token, cluster.token);
    let said = String::from_utf8_lossy(&rotated.stderr).into_owned();
    assert!(
        said.contains(&format!("cluster id {}", cluster.cluster_id)),
        "a rotation keeps the cluster id: {said}"
    );
    let recorded = wait_until(Duration::from_secs(20), || {
        recorded_current(&cluster.peers[0].data_dir).as_deref() == Some(new_token.as_str())
    });
    assert!(recorded, "the member switched to the new token");

    // The new peer's token names another cluster; it takes the cluster's.
    let _fresh = spawn_tls_joiner(&cluster, 21, "fresh", &new_token);
    let fresh_api = format!("https://127.0.{IDENTITY_SUBNET}.21:7070");
    let health = || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(&ca_file)
            .arg(format!("{fresh_api}/healthz"))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    let served = wait_until(Duration::from_secs(60), || health()["members"] == 2);
    assert!(
        served,
        "the new peer's API verifies against an old member's CA and sees both; last: {}; logs:\n{}\n{}",
        health(),
        cluster.every_log_tail(),
        std::fs::read_to_string(cluster.dir.join("fresh.log")).unwrap_or_default()
    );
    assert_eq!(health()["cluster"], cluster.cluster_id.as_str());
    assert_eq!(ca_print(&cluster.dir.join("fresh")), old_ca);
    let via_cli = Command::new(shoal_bin())
        .args(["get", "nodes", "-o", "json"])
        .env("SHOAL_SERVER", &fresh_api)
        .env("SHOAL_CA_FILE", &ca_file)
        .output()
        .unwrap();
    assert!(ok(&via_cli).contains("node0"), "the CLI verifies it too");

    // Its containers carry the cluster's label.
    let manifest = cluster.manifest(
        "pinned.yaml",
        &hello_rc("pinned", 1, "shoal-test/hello:1.0").replace(
            "    spec:\n      terminationGracePeriodSeconds",
            "    spec:\n      nodeSelector:\n        role: fresh\n      terminationGracePeriodSeconds",
        ),
    );
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let labelled = wait_until(Duration::from_secs(60), || {
        cluster
            .running_pods(0, "pinned")
            .iter()
            .any(|(_, node)| node == "fresh")
            && cluster.engine_pods("pinned").len() == 1
    });
    assert!(
        labelled,
        "the pod on the new peer runs under io.shoal.cluster={}; pods: {:?}; logs:\n{}",
        cluster.cluster_id,
        cluster.running_pods(0, "pinned"),
        std::fs::read_to_string(cluster.dir.join("fresh.log")).unwrap_or_default()
    );
}

/// Loopback subnet of the banner test (127.0.107.x).
const BANNER_SUBNET: u8 = 107;

/// The join token of the last banner a peer printed into its log.
fn banner_token(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.trim_start().strip_prefix("join token"))
        .map(|rest| rest.trim().to_owned())
}

#[test]
fn a_member_restarted_after_a_rotation_prints_the_new_join_token() {
    let mut cluster = Cluster::start(BANNER_SUBNET, 1);
    let log = cluster.peers[0].log.clone();
    assert_eq!(banner_token(&log), Some(cluster.token.clone()));

    let rotated = cluster.cli(0, &["token", "rotate", "--grace", "0s"]);
    let new_token = ok(&rotated).trim().to_owned();
    let recorded = wait_until(Duration::from_secs(20), || {
        recorded_current(&cluster.peers[0].data_dir).as_deref() == Some(new_token.as_str())
    });
    assert!(recorded, "the member switched to the new token");

    // Restarted with the token it started with on its command line.
    cluster.terminate(0);
    cluster.spawn(0);
    // The banner is written line by line: wait for its last line.
    let printed = wait_until(Duration::from_secs(60), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("SHOAL_JOIN_TOKEN=").count() >= 2
    });
    assert!(printed, "the restarted member prints its banner");
    assert_eq!(
        banner_token(&log),
        Some(new_token.clone()),
        "the banner names the token that admits members now; log:\n{}",
        cluster.log_tail(0)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let join_line = text
        .lines()
        .rev()
        .find(|l| l.contains("SHOAL_JOIN_TOKEN="))
        .unwrap_or_default();
    assert!(join_line.contains(&new_token), "{join_line}");
}
