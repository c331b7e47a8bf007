//! Events and logs across replicas, with real peers on 127.0.44.x, real
//! QUIC and the machine's Docker engine: what one peer decides or sees is
//! read from another (`get events`, `describe`), and `logs -l` merges the
//! output of pods that run on different nodes.

mod cluster_support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc, ok, shoal_bin, wait_until};
use serde_json::Value;

/// Both tests use 127.0.44.x: one at a time.
static SUBNET: Mutex<()> = Mutex::new(());

/// The cluster's events about `target` as peer `i` serves them.
fn events(cluster: &Cluster, i: usize, target: &str) -> Vec<Value> {
    let out = cluster.cli(i, &["get", "events", "--for", target, "-o", "json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("get events -o json prints JSON");
    list["items"].as_array().cloned().unwrap_or_default()
}

fn has(events: &[Value], reason: &str, object: &str, text: &str) -> bool {
    events.iter().any(|e| {
        e["reason"] == reason
            && e["involvedObject"]["name"] == object
            && e["message"].as_str().unwrap_or("").contains(text)
    })
}

/// The pod's node as peer `i` reports it.
fn node_of(cluster: &Cluster, i: usize, pod: &str) -> Option<String> {
    let pods = cluster.try_get_json(i, "pods")?;
    pods.as_array()?
        .iter()
        .find(|p| p["name"] == pod)
        .and_then(|p| p["node"].as_str().map(str::to_owned))
}

/// A peer other than the one named `node` (`node1` is peer 1).
fn other_than(node: &str) -> usize {
    if node == "node0" { 1 } else { 0 }
}

#[test]
fn what_peers_decide_and_see_is_read_from_another_peer() {
    let _one = SUBNET.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(44, 3);
    let web = cluster.manifest("web.yaml", &hello_rc("web", 2, "shoal-test/hello:1.0"));
    ok(&cluster.cli(0, &["apply", "-f", web.to_str().unwrap()]));
    assert!(
        wait_until(Duration::from_secs(60), || cluster
            .running_pods(1, "web")
            .len()
            == 2),
        "web did not start: {:?}",
        cluster.try_get_json(1, "pods")
    );

    // Scale up then down: Scaled on the RC, Scheduled and Started on the
    // new pod (from its node), Killing with the reason on the removed ones.
    ok(&cluster.cli(0, &["scale", "web", "--replicas", "3"]));
    assert!(wait_until(Duration::from_secs(60), || {
        cluster.running_pods(2, "web").len() == 3
    }));
    let started = wait_until(Duration::from_secs(30), || {
        let seen = events(&cluster, 2, "rc/web");
        has(&seen, "Scaled", "web", "from 2 to 3")
            && has(&seen, "Scheduled", "web-2", "Successfully assigned web-2")
            && has(&seen, "Started", "web-2", "")
    });
    assert!(
        started,
        "scale-up events: {:#?}",
        events(&cluster, 2, "rc/web")
    );
    let fanout = Instant::now();
    let all = events(&cluster, 1, "rc/web");
    eprintln!(
        "cluster-wide get events (CLI process included): {:?} for {} events",
        fanout.elapsed(),
        all.len()
    );
    ok(&cluster.cli(1, &["scale", "web", "--replicas", "1"]));
    let killed = wait_until(Duration::from_secs(60), || {
        let seen = events(&cluster, 0, "rc/web");
        has(&seen, "Killing", "web-1", "scaled down to 1")
            && has(&seen, "Killing", "web-2", "scaled down to 1")
    });
    assert!(
        killed,
        "scale-down events: {:#?}",
        events(&cluster, 0, "rc/web")
    );

    // describe ends with the RC's events, in kubectl's columns.
    let described = ok(&cluster.cli(2, &["describe", "rc", "web"]));
    let section = described
        .split("\nEvents:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("describe rc has no Events section:\n{described}"));
    assert!(
        section.contains("TYPE") && section.contains("REASON"),
        "{section}"
    );
    assert!(
        section.contains("Scaled") && section.contains("Killing"),
        "{section}"
    );

    // A drain: the cordon is told on the node, and the replica it ran
    // moves (Killing says where to), seen from a third peer.
    let from = node_of(&cluster, 0, "web-0").expect("web-0 runs somewhere");
    ok(&cluster.cli(0, &["cordon", &from]));
    let reader = if from == "node1" { 2 } else { 1 };
    let moved = wait_until(Duration::from_secs(60), || {
        let seen = events(&cluster, reader, &format!("node/{from}"));
        has(&seen, "NodeNotSchedulable", &from, "cordoned")
            && has(
                &events(&cluster, reader, "pod/web-0"),
                "Killing",
                "web-0",
                "moved to node",
            )
    });
    assert!(
        moved,
        "drain of {from}: {:#?}",
        events(&cluster, reader, "rc/web")
    );
    ok(&cluster.cli(0, &["uncordon", &from]));

    // -w prints what happens after it started.
    let mut watch = Command::new(shoal_bin())
        .args(["get", "events", "-w", "--for", "rc/web"])
        .env("SHOAL_SERVER", cluster.peers[1].server())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run shoal get events -w");
    let lines = read_lines(watch.stdout.take().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    ok(&cluster.cli(2, &["scale", "web", "--replicas", "2"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut watched = String::new();
    while Instant::now() < deadline && !watched.contains("from 1 to 2") {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
            watched.push_str(&line);
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        watched.contains("Scaled"),
        "-w did not show the scale:\n{watched}"
    );

    // A rolling update tells each step on the RC.
    ok(&cluster.cli(
        0,
        &[
            "rolling-update",
            "web",
            "--image",
            "shoal-test/hello:1.1",
            "--wait",
        ],
    ));
    let stepped = wait_until(Duration::from_secs(60), || {
        let seen = events(&cluster, 2, "rc/web");
        has(
            &seen,
            "RollingUpdate",
            "web",
            "to image shoal-test/hello:1.1 started",
        )
        // A replica that moves meanwhile (the uncordon above) gets the new
        // template on its new node without a step of its own.
        && has(&seen, "RollingUpdate", "web", "Replacing web-")
    });
    assert!(stepped, "{:#?}", events(&cluster, 2, "rc/web"));

    // A missing image: a pull failure and a back-off, seen from a peer the
    // pod does not run on, and repeats counted rather than kept.
    let ghost = cluster.manifest(
        "ghost.yaml",
        &hello_rc("ghost", 1, "shoal-test/missing:0.1"),
    );
    ok(&cluster.cli(0, &["apply", "-f", ghost.to_str().unwrap()]));
    let owner = {
        let mut owner = None;
        wait_until(Duration::from_secs(30), || {
            owner = node_of(&cluster, 0, "ghost-0");
            owner.is_some()
        });
        owner.expect("ghost-0 is reported by some node")
    };
    let reader = other_than(&owner);
    let repeated = wait_until(Duration::from_secs(120), || {
        let seen = events(&cluster, reader, "pod/ghost-0");
        let failed = has(&seen, "Failed", "ghost-0", "");
        let mut backoffs = seen.iter().filter(|e| e["reason"] == "BackOff");
        failed
            && backoffs.any(|b| {
                b["count"].as_u64() >= Some(2)
                    && b["type"] == "Warning"
                    && b["source"]["host"] == owner.as_str()
                    && b["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("next retry at")
            })
    });
    assert!(
        repeated,
        "no repeated back-off of ghost-0 (on {owner}) seen from peer {reader}: {:#?}",
        events(&cluster, reader, "pod/ghost-0")
    );
    let table = ok(&cluster.cli(reader, &["get", "events", "--for", "pod/ghost-0"]));
    assert!(table.starts_with("LAST SEEN"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("BackOff") && l.contains(" over ")),
        "the table shows no `(xN over ...)`: {table}"
    );

    // A crash-looping pod: each exit counted on one row, with the back-off.
    let crash = hello_rc("crash", 1, "shoal-test/hello:1.0").replace(
        "        image: shoal-test/hello:1.0\n",
        "        image: shoal-test/hello:1.0\n        command: [\"sh\", \"-c\", \"exit 3\"]\n",
    );
    let crash = cluster.manifest("crash.yaml", &crash);
    ok(&cluster.cli(0, &["apply", "-f", crash.to_str().unwrap()]));
    let looping = wait_until(Duration::from_secs(90), || {
        let seen = events(&cluster, 1, "rc/crash");
        let exits = seen
            .iter()
            .filter(|e| e["reason"] == "Exited" && e["involvedObject"]["name"] == "crash-0")
            .collect::<Vec<_>>();
        exits.len() == 1
            && exits[0]["count"].as_u64() >= Some(2)
            && exits[0]["message"] == "Container exited with code 3"
            && has(&seen, "BackOff", "crash-0", "(exited with code 3)")
    });
    assert!(looping, "{:#?}", events(&cluster, 1, "rc/crash"));

    // A replica no node can take: every peer says why, as one row.
    let nowhere = hello_rc("nowhere", 1, "shoal-test/hello:1.0").replace(
        "    spec:\n      terminationGracePeriodSeconds",
        "    spec:\n      nodeSelector:\n        disk: ssd\n      terminationGracePeriodSeconds",
    );
    let nowhere = cluster.manifest("nowhere.yaml", &nowhere);
    ok(&cluster.cli(0, &["apply", "-f", nowhere.to_str().unwrap()]));
    let unplaced = wait_until(Duration::from_secs(30), || {
        let seen = events(&cluster, 1, "pod/nowhere-0");
        seen.iter()
            .filter(|e| e["reason"] == "FailedScheduling")
            .count()
            == 1
            && has(&seen, "FailedScheduling", "nowhere-0", "0/3 nodes")
    });
    assert!(unplaced, "{:#?}", events(&cluster, 1, "pod/nowhere-0"));

    // A killed node: the survivors say it is down.
    cluster.kill9(2);
    let down = wait_until(Duration::from_secs(60), || {
        has(
            &events(&cluster, 0, "node/node2"),
            "NodeDown",
            "node2",
            "is down",
        )
    });
    assert!(down, "{:#?}", events(&cluster, 0, "node/node2"));
    // The answering peer says whose events are missing, and still answers.
    let out = cluster.cli(1, &["get", "events"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The output of a child, in chunks, on a channel (reads never block the test).
fn read_lines(mut from: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// A pod that prints `tick N` every 200 ms and stops at once on SIGTERM.
fn ticker_rc(name: &str, replicas: u32) -> String {
    hello_rc(name, replicas, "shoal-test/hello:1.0").replace(
        "        image: shoal-test/hello:1.0\n",
        "        image: shoal-test/hello:1.0\n        command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2 & wait; done\"]\n",
    )
}

#[test]
fn logs_of_every_replica_merge_with_their_pod_prefixes() {
    let _one = SUBNET.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(44, 3);
    let manifest = cluster.manifest("ticker.yaml", &ticker_rc("ticker", 3));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    assert!(
        wait_until(Duration::from_secs(60), || cluster
            .running_pods(0, "ticker")
            .len()
            == 3),
        "ticker did not start: {:?}",
        cluster.try_get_json(0, "pods")
    );
    let nodes: std::collections::BTreeSet<String> = cluster
        .running_pods(0, "ticker")
        .into_iter()
        .map(|(_, node)| node)
        .collect();
    assert!(nodes.len() >= 2, "the replicas share one node: {nodes:?}");
    std::thread::sleep(Duration::from_secs(2));

    // From one peer: every pod's lines, prefixed; --tail bounds each pod.
    let out = ok(&cluster.cli(0, &["logs", "-l", "app=ticker", "--tail", "3"]));
    for pod in ["ticker-0", "ticker-1", "ticker-2"] {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(&format!("[pod/{pod}] tick ")))
            .collect();
        assert_eq!(lines.len(), 3, "{pod} in:\n{out}");
    }
    assert_eq!(out.lines().count(), 9, "{out}");

    // rc/NAME is the same; --timestamps shows the engine's times, in order.
    let out = ok(&cluster.cli(1, &["logs", "rc/ticker", "--tail", "2", "--timestamps"]));
    let times: Vec<&str> = out
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(times.len(), 6, "{out}");
    assert!(
        times
            .iter()
            .all(|t| t.starts_with("20") && t.ends_with('Z')),
        "{out}"
    );

    // A selector that matches nothing says so.
    let none = cluster.cli(0, &["logs", "-l", "app=nothing"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no pods match"));

    // Throughput with back-pressure: 3 pods of 100,000 lines each, every
    // line arrives once; printed against `docker logs` of one of them.
    let spew = hello_rc("spew", 3, "shoal-test/hello:1.0").replace(
        "        image: shoal-test/hello:1.0\n",
        "        image: shoal-test/hello:1.0\n        command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; seq 1 100000; sleep 3600 & wait\"]\n",
    );
    let spew = cluster.manifest("spew.yaml", &spew);
    ok(&cluster.cli(0, &["apply", "-f", spew.to_str().unwrap()]));
    assert!(wait_until(Duration::from_secs(60), || {
        cluster.running_pods(0, "spew").len() == 3
    }));
    let one = Command::new("docker")
        .args(["ps", "-q", "--filter"])
        .arg(format!("label=io.shoal.cluster={}", cluster.cluster_id))
        .args(["--filter", "label=io.shoal.rc=spew"])
        .output()
        .expect("docker ps");
    let container = String::from_utf8_lossy(&one.stdout)
        .lines()
        .next()
        .expect("a spew container")
        .to_owned();
    let complete = |text: &str| text.lines().filter(|l| *l == "100000").count();
    assert!(wait_until(Duration::from_secs(60), || {
        let out = Command::new("docker")
            .args(["logs", "--tail", "1", &container])
            .output()
            .unwrap();
        complete(&String::from_utf8_lossy(&out.stdout)) == 1
    }));
    std::thread::sleep(Duration::from_secs(2));
    let timed = Instant::now();
    let direct = Command::new("docker")
        .args(["logs", &container])
        .output()
        .unwrap();
    let direct_time = timed.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&direct.stdout).lines().count(),
        100_000
    );
    let timed = Instant::now();
    let merged = ok(&cluster.cli(1, &["logs", "-l", "app=spew"]));
    let merged_time = timed.elapsed();
    for pod in ["spew-0", "spew-1", "spew-2"] {
        let prefix = format!("[pod/{pod}] ");
        let lines = merged.lines().filter(|l| l.starts_with(&prefix)).count();
        assert_eq!(lines, 100_000, "{pod}");
    }
    eprintln!(
        "logs -l over 3 pods: {:.0} lines/s ({} lines in {:?}); docker logs of one: {:.0} lines/s ({:?})",
        300_000.0 / merged_time.as_secs_f64(),
        merged.lines().count(),
        merged_time,
        100_000.0 / direct_time.as_secs_f64(),
        direct_time
    );
    let timed = Instant::now();
    let single = ok(&cluster.cli(1, &["logs", "spew-0"]));
    eprintln!(
        "logs of one pod through a peer: {:.0} lines/s ({} lines in {:?})",
        100_000.0 / timed.elapsed().as_secs_f64(),
        single.lines().count(),
        timed.elapsed()
    );
    ok(&cluster.cli(0, &["delete", "rc", "spew"]));

    // -f follows new lines of every pod (bounded wait), then is stopped.
    let mut child = Command::new(shoal_bin())
        .args(["logs", "-l", "app=ticker", "-f", "--since", "1s"])
        .env("SHOAL_SERVER", cluster.peers[2].server())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run shoal logs -f");
    let rx = read_lines(child.stdout.take().unwrap());
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let per_pod_ticks = |text: &str| {
        ["ticker-0", "ticker-1", "ticker-2"].map(|pod| {
            text.lines()
                .filter(|l| l.starts_with(&format!("[pod/{pod}] tick ")))
                .count()
        })
    };
    while Instant::now() < deadline && per_pod_ticks(&text).iter().any(|&n| n < 10) {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(500)) {
            text.push_str(&chunk);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let counts = per_pod_ticks(&text);
    assert!(
        counts.iter().all(|&n| n >= 10),
        "-f did not follow every pod (lines per pod {counts:?}):\n{text}"
    );
}
