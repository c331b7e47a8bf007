//! A tampered image stream is refused, with real peers and one Docker
//! engine per machine (127.0.66.x): machine 0 serves the image with bytes
//! flipped on the wire (the `test-hooks` transport hook, turned on for
//! peer 0 alone); machine 2, which must run the replica, refuses what it
//! got, says so in the pod's status and events, runs nothing, and then
//! gets the image from an honest holder, machine 1.

mod cluster_support;

use std::time::Duration;

use cluster_support::images::image_id;
use cluster_support::{Cluster, hello_rc, ok, sh, wait_until};
use serde_json::Value;

const IMAGE: &str = "shoal-test/hello:1.0";
/// See src/shell/images/tamper.rs.
const TAMPER_ENV: &str = "SHOAL_TEST_TAMPER_IMAGE_STREAM";

/// The pod of `rc` as peer `i` reports it.
fn pod(cluster: &Cluster, i: usize, rc: &str) -> Option<Value> {
    let pods = cluster.try_get_json(i, "pods")?;
    pods.as_array()?.iter().find(|p| p["rc"] == rc).cloned()
}

/// The messages of the cluster's `Failed` events about `pod`, from peer `i`.
fn failed_events(cluster: &Cluster, i: usize, pod: &str) -> Vec<String> {
    let target = format!("pod/{pod}");
    let out = cluster.cli(i, &["get", "events", "--for", &target, "-o", "json"]);
    if !out.status.success() {
        return Vec::new();
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("events as JSON");
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["reason"] == "Failed")
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_tampered_stream_is_refused_and_the_image_comes_from_an_honest_holder() {
    let cluster = Cluster::builder(66, 3)
        .engine_per_node()
        .machine_labels()
        .peer_env(0, TAMPER_ENV, "1")
        .start();
    let id = image_id(&cluster, 0, IMAGE).expect("machine 0 holds the test image");
    for i in [1, 2] {
        sh(&format!(
            "docker -H {} image rm {IMAGE} >/dev/null",
            cluster.engine(i).host()
        ));
    }

    // One replica, which only machine 2 may run; only machine 0 holds it.
    let rc = hello_rc("tamper", 1, IMAGE).replace(
        "    spec:\n      terminationGracePeriodSeconds",
        "    spec:\n      nodeSelector:\n        machine: \"2\"\n      terminationGracePeriodSeconds",
    );
    let manifest = cluster.manifest("tamper.yaml", &rc);
    ok(&cluster.cli(1, &["apply", "-f", manifest.to_str().unwrap()]));

    // The refusal shows in the pod's status and in its events.
    let refused = |text: &str| text.contains("node0") && text.contains("could not load");
    let mut seen = None;
    let reported = wait_until(Duration::from_secs(60), || {
        let Some(pod) = pod(&cluster, 1, "tamper") else {
            return false;
        };
        let error = pod["last_error"].as_str().unwrap_or_default().to_owned();
        let name = pod["name"].as_str().unwrap_or_default().to_owned();
        let events = failed_events(&cluster, 1, &name);
        if refused(&error) && events.iter().any(|e| refused(e)) {
            seen = Some((pod, events));
        }
        seen.is_some()
    });
    assert!(
        reported,
        "no refusal reported: {:?} {:?}\n{}",
        pod(&cluster, 1, "tamper"),
        seen,
        cluster.log_tail(2)
    );
    let (pod_then, events) = seen.unwrap();
    assert_eq!(pod_then["node"], "node2", "{pod_then}");
    assert_ne!(pod_then["phase"], "Running", "{pod_then}");
    println!("refused: {}\nevents: {events:?}", pod_then["last_error"]);
    // Nothing ran on machine 2, and it does not hold the image.
    assert_eq!(image_id(&cluster, 2, IMAGE), None, "a tampered image kept");
    assert!(
        cluster.machine_containers(2).is_empty(),
        "{:?}",
        cluster.machine_containers(2)
    );

    // An honest holder appears: machine 1 gets the machine's own copy.
    sh(&format!(
        "docker save {IMAGE} | docker -H {} load -q >/dev/null",
        cluster.engine(1).host()
    ));
    let running = wait_until(Duration::from_secs(90), || {
        pod(&cluster, 1, "tamper").is_some_and(|p| p["node"] == "node2" && p["phase"] == "Running")
    });
    assert!(
        running,
        "never ran once machine 1 held the image: {:?}\n{}",
        pod(&cluster, 1, "tamper"),
        cluster.log_tail(2)
    );
    assert_eq!(image_id(&cluster, 2, IMAGE).as_deref(), Some(id.as_str()));
    let log = std::fs::read_to_string(&cluster.peers[2].log).unwrap();
    let line = |what: &str, holder: &str| {
        log.lines()
            .any(|l| l.contains(what) && l.contains(&format!("holder={holder}")))
    };
    assert!(
        line("image fetch failed", "node0") && line("image transferred and loaded", "node1"),
        "machine 2 did not refuse node0's stream and then load node1's:\n{}",
        cluster.log_tail(2)
    );
    assert!(
        !line("image transferred and loaded", "node0"),
        "machine 2 accepted node0's tampered stream"
    );
}
