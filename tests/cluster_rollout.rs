//! Rollouts end to end: 3 machines (a peer and its own Docker engine each),
//! 4 replicas of shoal-test/hello:1.0 behind a NodePort Service, surge 1
//! and nothing unavailable. A rollout to an image no machine has stops at
//! its surge pod with the image's reason while 1.0 keeps serving; then
//! `rolling-update --image shoal-test/hello:1.1` under a client loop of
//! ~100 requests a second through peer 0 fails no request, every answer is
//! 1.0 or 1.1, and peer 0 shows at least 4 ready endpoints at every sample;
//! `rollout undo --to-revision 1` returns to 1.0 the same way.

mod cluster_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc_probed, http, ok, wait_until};

const NODE_PORT: u16 = 30481;

fn manifest() -> String {
    let rc = hello_rc_probed("hello", 4, "shoal-test/hello:1.0").replace(
        "spec:\n  replicas: 4\n",
        "spec:\n  replicas: 4\n  progressDeadlineSeconds: 20\n  strategy:\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n",
    );
    format!(
        "{rc}---
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  type: NodePort
  selector:
    app: hello
  ports:
    - port: 8080
      targetPort: 80
      nodePort: {NODE_PORT}
"
    )
}

fn ready_endpoints(cluster: &Cluster, i: usize) -> Option<u64> {
    let services = cluster.try_get_json(i, "svc")?;
    let svc = services.as_array()?.iter().find(|s| s["name"] == "hello")?;
    svc["endpoints_ready"].as_u64()
}

/// The page a GET at `addr` returned (`hello from 1.0`), or `None`.
fn answer(addr: &str) -> Option<String> {
    let (status, body) = http(addr, "GET", "/", None, Duration::from_secs(3))?;
    (status == 200).then(|| body.trim().to_owned())
}

/// Images of the pods peer `i` lists for `hello`.
fn pod_images(cluster: &Cluster, i: usize) -> Vec<String> {
    cluster
        .try_get_json(i, "pods")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|p| p["rc"] == "hello")
        .map(|p| p["image"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_surge_rollout_stops_on_a_missing_image_then_rolls_out_and_back_without_a_failed_request() {
    let cluster = Cluster::start_machines(41, 3);
    let path = cluster.manifest("hello.yaml", &manifest());
    ok(&cluster.cli(0, &["apply", "-f", path.to_str().unwrap()]));
    let ready = wait_until(Duration::from_secs(120), || {
        ready_endpoints(&cluster, 0) == Some(4)
    });
    assert!(
        ready,
        "{:?}\n{}",
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );
    let addr = format!("{}:{NODE_PORT}", cluster.peers[0].ip);
    let served = wait_until(Duration::from_secs(30), || answer(&addr).is_some());
    assert!(served, "peer 0 does not serve:\n{}", cluster.log_tail(0));

    // A missing image: the surge pod never gets ready, the rollout stops
    // and says why, and 1.0 keeps serving on all four replicas.
    ok(&cluster.cli(
        1,
        &[
            "rolling-update",
            "hello",
            "--image",
            "shoal-test/hello:0.404",
        ],
    ));
    let mut describe = String::new();
    let stopped = wait_until(Duration::from_secs(120), || {
        describe = ok(&cluster.cli(2, &["describe", "rc", "hello"]));
        describe.contains("rollout stopped")
    });
    assert!(stopped, "{describe}\n{}", cluster.log_tail(0));
    let reason = describe
        .lines()
        .find(|l| l.contains("rollout stopped"))
        .unwrap()
        .to_owned();
    println!("{reason}");
    assert!(reason.contains("not ready after 20s"), "{reason}");
    assert!(reason.contains("hello:0.404"), "{reason}");
    assert!(ready_endpoints(&cluster, 0) >= Some(4));
    let images = pod_images(&cluster, 0);
    assert_eq!(
        images
            .iter()
            .filter(|i| *i == "shoal-test/hello:1.0")
            .count(),
        4,
        "{images:?}"
    );
    for _ in 0..20 {
        assert_eq!(answer(&addr).as_deref(), Some("hello from 1.0"));
    }

    // The real rollout, under load, then `rollout undo` back the same way.
    roll_under_load(
        &cluster,
        &addr,
        &["rolling-update", "hello", "--image", "shoal-test/hello:1.1"],
        "shoal-test/hello:1.1",
    );
    // Revision 2 is the missing image: back to revision 1.
    roll_under_load(
        &cluster,
        &addr,
        &["rollout", "undo", "hello", "--to-revision", "1"],
        "shoal-test/hello:1.0",
    );
}

/// Runs `command` at peer 1 under ~100 requests a second through peer 0's
/// node port (`addr`; at most 12,000) until every pod runs `image`: no
/// request fails, every answer is 1.0 or 1.1 and the new version answers,
/// peer 0 counts at least 4 ready endpoints at every sample, and at most
/// replicas + maxSurge pods are listed.
fn roll_under_load(cluster: &Cluster, addr: &str, command: &[&str], image: &str) {
    let done = Arc::new(AtomicBool::new(false));
    let stop_client = done.clone();
    let client_addr = addr.to_owned();
    let start = Instant::now();
    let client = std::thread::spawn(move || {
        let mut answers = Vec::new();
        for k in 0..12_000u64 {
            if stop_client.load(Ordering::Relaxed) {
                break;
            }
            let slot = start + Duration::from_millis(10 * k);
            std::thread::sleep(slot.saturating_duration_since(Instant::now()));
            answers.push((start.elapsed(), answer(&client_addr)));
        }
        answers
    });
    std::thread::sleep(Duration::from_secs(1));
    ok(&cluster.cli(1, command));
    let mut samples = Vec::new();
    let mut most_pods = 0;
    let rolled = wait_until(Duration::from_secs(150), || {
        samples.push(ready_endpoints(cluster, 0).unwrap_or(0));
        let images = pod_images(cluster, 0);
        most_pods = most_pods.max(images.len());
        images.len() == 4 && images.iter().all(|i| i == image)
    });
    let rolled_at = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Relaxed);
    let answers = client.join().unwrap();
    assert!(
        rolled,
        "{command:?}: {:?}\n{}",
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );

    let failed: Vec<Duration> = answers
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|(t, _)| *t)
        .collect();
    let versions: std::collections::BTreeMap<String, usize> = answers
        .iter()
        .filter_map(|(_, a)| a.clone())
        .fold(Default::default(), |mut m, a| {
            *m.entry(a).or_default() += 1;
            m
        });
    let min_ready = samples.iter().min().copied().unwrap_or(0);
    println!(
        "{command:?} to {image} by {rolled_at:?}: {} requests, {} failed, answers {versions:?}, \
         ready endpoints at peer 0 over {} samples: min {min_ready}, max {}; \
         at most {most_pods} pods listed",
        answers.len(),
        failed.len(),
        samples.len(),
        samples.iter().max().copied().unwrap_or(0)
    );
    assert!(answers.len() >= 500, "{} requests", answers.len());
    assert!(
        failed.is_empty(),
        "{command:?}: requests failed at {failed:?}\n{}",
        cluster.log_tail(0)
    );
    assert!(
        versions
            .keys()
            .all(|v| v == "hello from 1.0" || v == "hello from 1.1"),
        "{versions:?}"
    );
    let new_version = format!(
        "hello from {}",
        image.rsplit(':').next().unwrap_or_default()
    );
    assert!(versions.contains_key(&new_version), "{versions:?}");
    assert!(
        min_ready >= 4,
        "{command:?}: ready endpoints fell to {min_ready}: {samples:?}"
    );
    assert!(
        most_pods <= 5,
        "{command:?}: {most_pods} pods: more than replicas + maxSurge"
    );
}
