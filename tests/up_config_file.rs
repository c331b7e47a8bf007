//! `shoal up --config FILE`: a peer whose settings come from a YAML file
//! joins and shows itself exactly as a peer given the same flags. Real
//! `shoal up` processes on 127.0.57.x (this file's subnet).
#![cfg(feature = "shell")]

mod cluster_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_support::{Cluster, shoal_bin, wait_until};
use serde_json::Value;

/// The peer started from a file; killed when the test ends, also on failure.
struct FilePeer(Child);

impl Drop for FilePeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node<'a>(nodes: &'a Value, name: &str) -> Option<&'a Value> {
    nodes.as_array()?.iter().find(|n| n["name"] == name)
}

#[test]
fn a_peer_started_from_a_config_file_behaves_as_with_the_same_flags() {
    // The cluster support gives every peer `--memory 4Gi` too.
    let settings = ["--label", "zone=a", "--cpu", "1500m"];
    let cluster = Cluster::start_with_args(57, 1, &settings);
    let dir = &cluster.dir;
    let file = dir.join("shoal.yaml");
    let yaml = format!(
        "# what `shoal install-service` writes, with this test's addresses
listen: 127.0.57.30:7946
api: 127.0.57.30:7070
data-dir: {}
join: [{}]
join-token: {}
name: overridden-by-the-flag
label: {{zone: a}}
cpu: 1500m
memory: 4Gi
",
        dir.join("from-file").display(),
        cluster.peers[0].peer_addr(),
        cluster.token
    );
    std::fs::write(&file, yaml).unwrap();
    let log = std::fs::File::create(dir.join("from-file.log")).unwrap();
    let _peer = FilePeer(
        Command::new(shoal_bin())
            .args(["up", "--config"])
            .arg(&file)
            .args(["--name", "from-file"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn shoal up --config"),
    );
    let both_alive = |i: usize| {
        cluster.try_get_json(i, "nodes").is_some_and(|nodes| {
            ["node0", "from-file"]
                .iter()
                .all(|name| node(&nodes, name).is_some_and(|n| n["state"] == "Alive"))
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || both_alive(0)),
        "the peer started from a file did not join: {}",
        std::fs::read_to_string(dir.join("from-file.log")).unwrap_or_default()
    );
    let nodes = cluster.get_json(0, "nodes");
    let (by_flags, by_file) = (
        node(&nodes, "node0").unwrap(),
        node(&nodes, "from-file").unwrap(),
    );
    for field in ["labels", "cpu", "memory"] {
        assert_eq!(by_flags[field], by_file[field], "{field}: {nodes:#}");
    }
    assert_eq!(by_file["labels"]["zone"], "a");
    assert_eq!(by_file["memory"], "4Gi");
    assert_eq!(by_file["address"], "127.0.57.30:7946");
    assert_eq!(by_file["api_address"], "127.0.57.30:7070");
    // Its own API answers, on the address the file gave.
    let out = Command::new(shoal_bin())
        .args([
            "get",
            "nodes",
            "-o",
            "json",
            "--server",
            "http://127.0.57.30:7070",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("from-file").join("node.json").exists());
}
