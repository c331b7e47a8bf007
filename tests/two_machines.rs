//! Two machines, as a new user meets them: two network namespaces joined by
//! a veth pair, each with only a 10.x address and a default route through
//! the other. The first `shoal up` has no address flags and prints a join
//! line; the second machine runs that line verbatim (plus its own data
//! dir), and each sees the other alive. The peers get no Docker engine
//! (DOCKER_HOST points nowhere): they keep running and report it.
//!
//! Everything made here is named `shoal-t-2m-<pid>-…` (veths `s2m<pid>…`)
//! and removed on drop, also when the test fails; one left by a test killed
//! outright is removed by the next run once its pid is gone.
#![cfg(feature = "shell")]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "shoal-t-2m-";
const NET: &str = "10.77.0";

fn sh(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn must(program: &str, args: &[&str]) {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces `a` (10.77.0.1) and `b` (10.77.0.2) on one veth pair.
struct Machines {
    names: [String; 2],
}

impl Machines {
    fn create() -> Machines {
        remove_orphans();
        let pid = std::process::id();
        let names = [format!("{PREFIX}{pid}-a"), format!("{PREFIX}{pid}-b")];
        let machines = Machines {
            names: names.clone(),
        };
        let veths = [format!("s2m{pid}a"), format!("s2m{pid}b")];
        for ns in &names {
            must("ip", &["netns", "add", ns]);
        }
        must(
            "ip",
            &[
                "link", "add", &veths[0], "type", "veth", "peer", "name", &veths[1],
            ],
        );
        for (i, (ns, veth)) in names.iter().zip(&veths).enumerate() {
            let (me, other) = (format!("{NET}.{}", i + 1), format!("{NET}.{}", 2 - i));
            must("ip", &["link", "set", veth, "netns", ns]);
            must(
                "ip",
                &["-n", ns, "addr", "add", &format!("{me}/24"), "dev", veth],
            );
            must("ip", &["-n", ns, "link", "set", veth, "up"]);
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            must("ip", &["-n", ns, "route", "add", "default", "via", &other]);
        }
        machines
    }

    /// A command run inside machine `i` (`ip netns exec`), with `shoal` on
    /// its PATH and no reachable Docker engine.
    fn command(&self, i: usize, program: &str) -> Command {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_shoal")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i], program])
            .env("PATH", path)
            .env("DOCKER_HOST", "unix:///nonexistent/shoal-two-machines.sock")
            .env_remove("SHOAL_JOIN_TOKEN")
            .env_remove("SHOAL_SERVER");
        cmd
    }

    /// `shoal get nodes -o json` through machine `i`'s API (on its loopback).
    fn nodes(&self, i: usize) -> Option<Value> {
        let out = self
            .command(i, "shoal")
            .args(["get", "nodes", "-o", "json"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = sh("ip", &["netns", "delete", ns]);
        }
    }
}

/// Namespaces of earlier runs whose process is gone (deleting a namespace
/// deletes its veth).
fn remove_orphans() {
    let listed = sh("ip", &["netns", "list"]);
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = sh("ip", &["netns", "delete", name]);
        }
    }
}

/// A `shoal up` in its own process group, stopped (group and all) on drop.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(mut cmd: Command, log: &Path) -> Peer {
        let stderr = std::fs::File::create(log).unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("spawn shoal up");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines }
    }

    /// The stdout lines up to and including the first that `wanted` accepts.
    fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = wanted(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no such line within {limit:?}; stdout so far:\n{}",
            seen.join("\n")
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = sh("kill", &["-TERM", "--", &group]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = sh("kill", &["-KILL", "--", &group]);
        let _ = self.child.wait();
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-two-machines-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn alive(nodes: &Value) -> Vec<(String, String, bool)> {
    let mut seen: Vec<(String, String, bool)> = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["state"] == "Alive")
        .map(|n| {
            let address = n["address"].as_str().unwrap_or_default().to_owned();
            let name = n["name"].as_str().unwrap_or_default().to_owned();
            (address, name, n["ready"] == true)
        })
        .collect();
    seen.sort();
    seen
}

#[test]
fn the_printed_join_line_joins_from_another_machine_as_printed() {
    if sh("id", &["-u"]).stdout != b"0\n" {
        eprintln!("SKIPPED: network namespaces need root");
        return;
    }
    let machines = Machines::create();
    let dir = scratch();
    let data = |name: &str| dir.join(name).display().to_string();

    // Machine a: the README's first command, no address flags.
    let mut first = machines.command(0, "shoal");
    first.args(["up", "--data-dir", &data("a"), "--name", "first"]);
    let a = Peer::spawn(first, &dir.join("a.log"));
    let banner = a.wait_for_line(|l| l.contains("shoal up --join"), Duration::from_secs(20));
    let join_line = banner.last().unwrap().trim().to_owned();
    let text = banner.join("\n");
    assert!(
        text.contains(&format!("peers reach it on  {NET}.1:7946")),
        "{text}"
    );
    assert!(text.contains("listening on       0.0.0.0:7946"), "{text}");
    assert!(
        text.contains("http://127.0.0.1:7070 (this machine only)"),
        "{text}"
    );
    assert!(
        join_line.ends_with(&format!("shoal up --join {NET}.1:7946")),
        "{join_line}"
    );

    // Advertising loopback while joining machine a is refused, with the reason.
    let refused = machines
        .command(1, "shoal")
        .args([
            "up",
            "--listen",
            "127.0.0.1:7946",
            "--data-dir",
            &data("refused"),
        ])
        .args(["--join", &format!("{NET}.1:7946")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("loopback") && said.contains("could never reach it back"),
        "{said}"
    );

    // Machine b: the join line as printed, plus its own data dir.
    let mut second = machines.command(1, "sh");
    second.args([
        "-c",
        &format!("{join_line} --data-dir {} --name second", data("b")),
    ]);
    let b = Peer::spawn(second, &dir.join("b.log"));
    b.wait_for_line(|l| l.contains("is up"), Duration::from_secs(20));

    let expected = vec![
        (format!("{NET}.1:7946"), "first".to_owned(), false),
        (format!("{NET}.2:7946"), "second".to_owned(), false),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut views = (Vec::new(), Vec::new());
    while Instant::now() < deadline {
        views = (
            machines.nodes(0).map(|v| alive(&v)).unwrap_or_default(),
            machines.nodes(1).map(|v| alive(&v)).unwrap_or_default(),
        );
        if views.0 == expected && views.1 == expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    // Both alive at their 10.x addresses; not ready: no engine to run pods on.
    assert_eq!(
        views.0,
        expected,
        "machine a's view; a.log:\n{}",
        log("a.log")
    );
    assert_eq!(
        views.1,
        expected,
        "machine b's view; b.log:\n{}",
        log("b.log")
    );
    assert!(
        log("b.log").contains("runtime unhealthy"),
        "{}",
        log("b.log")
    );

    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
