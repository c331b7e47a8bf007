//! `shoal up --log-format json`: two real peers on 127.0.59.x, each logging
//! to its own stderr file. Every line is a JSON object inside the `peer`
//! span that names its node (the id and name of its `node.json`), so the
//! logs of several peers can be told apart; with `SHOAL_LOG=debug` the sync
//! exchanges between them log inside a `sync` span too. `--log-format text`
//! prefixes each line with the same span.

mod cluster_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_support::{shoal_bin, wait_until};
use serde_json::Value;

/// This test's loopback addresses: 127.0.59.0/24 (.11-.12 and .21-.22).
const SUBNET: u8 = 59;

struct Peer {
    child: Child,
    api: String,
    data_dir: PathBuf,
    stderr: PathBuf,
}

impl Peer {
    fn start(dir: &Path, i: u8, format: &str, join: Option<(&str, &str)>) -> Peer {
        let ip = format!("127.0.{SUBNET}.{i}");
        let data_dir = dir.join(format!("peer{i}"));
        let stderr = dir.join(format!("peer{i}.stderr"));
        let mut command = Command::new(shoal_bin());
        command
            .args(["up", "--listen", &format!("{ip}:7946")])
            .args(["--api", &format!("{ip}:7070")])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--name", &format!("logger{i}"), "--log-format", format])
            // Debug for Shoal's own crate: the sync exchanges log there.
            .env("SHOAL_LOG", "info,shoal=debug,hickory_server=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if let Some((seed, token)) = join {
            command.args(["--join", seed, "--join-token", token]);
        }
        Peer {
            child: command.spawn().expect("spawn shoal up"),
            api: format!("http://{ip}:7070"),
            data_dir,
            stderr,
        }
    }

    fn identity(&self) -> Value {
        let path = self.data_dir.join("node.json");
        let mut text = String::new();
        assert!(
            wait_until(Duration::from_secs(30), || {
                text = std::fs::read_to_string(&path).unwrap_or_default();
                serde_json::from_str::<Value>(&text).is_ok()
            }),
            "no node.json in {}",
            self.data_dir.display()
        );
        serde_json::from_str::<Value>(&text).unwrap()["identity"].clone()
    }

    fn alive_nodes(&self) -> usize {
        let out = Command::new(shoal_bin())
            .args(["get", "nodes", "-o", "json"])
            .env("SHOAL_SERVER", &self.api)
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter(|n| n["state"] == "Alive").count())
            })
            .unwrap_or(0)
    }

    /// SIGTERM, then the peer leaves and exits.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two peers in `format` at 127.0.59.`host` and the next address, joined,
/// left to sync a few seconds, stopped.
fn two_peers(dir: &Path, host: u8, format: &str) -> [(Peer, Value); 2] {
    let mut first = Peer::start(dir, host, format, None);
    let first_id = first.identity();
    let token = first_id["token"].as_str().unwrap().to_owned();
    let mut second = Peer::start(
        dir,
        host + 1,
        format,
        Some((&format!("127.0.{SUBNET}.{host}:7946"), &token)),
    );
    let second_id = second.identity();
    assert!(
        wait_until(Duration::from_secs(60), || first.alive_nodes() == 2
            && second.alive_nodes() == 2),
        "the peers did not see each other:\n{}",
        std::fs::read_to_string(&second.stderr).unwrap_or_default()
    );
    // Anti-entropy rounds between them.
    std::thread::sleep(Duration::from_secs(3));
    first.stop();
    second.stop();
    [(first, first_id), (second, second_id)]
}

#[test]
fn json_logs_parse_and_name_their_peer_and_sync_exchange() {
    let dir = scratch("json");
    for (peer, identity) in two_peers(&dir, 11, "json") {
        let id = format!("{:016x}", identity["node_id"].as_u64().unwrap());
        let name = identity["name"].as_str().unwrap();
        let text = std::fs::read_to_string(&peer.stderr).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
            })
            .collect();
        assert!(lines.len() >= 3, "too few lines:\n{text}");
        for line in &lines {
            let root = &line["spans"][0];
            assert_eq!(root["name"], "peer", "{line}");
            assert_eq!(root["id"], id.as_str(), "{line}");
            assert_eq!(root["node"], name, "{line}");
            assert!(line["timestamp"].is_string() && line["level"].is_string());
        }
        // A sync exchange with the other peer, inside this peer's span.
        let sync = lines
            .iter()
            .find(|l| l["span"]["name"] == "sync")
            .unwrap_or_else(|| panic!("no line in a sync span:\n{text}"));
        assert!(
            sync["span"]["with"]
                .as_str()
                .is_some_and(|a| a.starts_with(&format!("127.0.{SUBNET}."))),
            "{sync}"
        );
        eprintln!("{name}: {} JSON lines, e.g. {sync}", lines.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory for one test's peers (left behind when it fails).
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-log-format-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn text_logs_carry_the_peer_span_too() {
    let dir = scratch("text");
    for (peer, identity) in two_peers(&dir, 21, "text") {
        let id = format!("{:016x}", identity["node_id"].as_u64().unwrap());
        let text = std::fs::read_to_string(&peer.stderr).unwrap();
        let prefix = format!(
            "peer{{node={} id={id}}}",
            identity["name"].as_str().unwrap()
        );
        // Each event's first line starts with its time (a message may span lines).
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("20")).collect();
        assert!(lines.len() >= 3, "too few lines:\n{text}");
        for line in lines {
            assert!(line.contains(&prefix), "{prefix} not in: {line}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
