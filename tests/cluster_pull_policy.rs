//! `imagePullPolicy` with real peers and one Docker engine per machine (no
//! registry is reachable): `Never` runs only what the node's engine holds,
//! shows `ErrImageNeverPull` in `get pods` otherwise and never takes the
//! image from a peer; `Always` tries the registry, then falls back to the
//! local image or a peer's, so an offline site keeps running.
#![cfg(feature = "shell")]

mod cluster_support;

use std::time::Duration;

use cluster_support::images::image_id;
use cluster_support::{Cluster, hello_rc, ok, wait_until};

const IMAGE: &str = "shoal-test/hello:1.0";

/// `hello_rc` with an explicit `imagePullPolicy`.
fn rc_with_policy(name: &str, replicas: u32, policy: &str) -> String {
    hello_rc(name, replicas, IMAGE).replace(
        &format!("        image: {IMAGE}\n"),
        &format!("        image: {IMAGE}\n        imagePullPolicy: {policy}\n"),
    )
}

/// The pods of `rc` as peer `i` reports them: (phase, node, last error).
fn pods_of(cluster: &Cluster, i: usize, rc: &str) -> Vec<(String, String, String)> {
    let Some(pods) = cluster.try_get_json(i, "pods") else {
        return Vec::new();
    };
    let mut out: Vec<_> = pods
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["rc"] == rc)
        .map(|p| {
            (
                p["phase"].as_str().unwrap_or_default().to_owned(),
                p["node"].as_str().unwrap_or_default().to_owned(),
                p["last_error"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn never_runs_only_what_the_node_holds_and_always_falls_back_offline() {
    let cluster = Cluster::start_machines(50, 2);
    let id = image_id(&cluster, 0, IMAGE).expect("machine 0 holds the test image");
    let out = cluster
        .engine(1)
        .docker()
        .args(["image", "rm", IMAGE])
        .output()
        .expect("docker image rm");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(image_id(&cluster, 1, IMAGE), None);

    // Never, one replica per machine: machine 0's runs, machine 1's says why not.
    let never = cluster.manifest("never.yaml", &rc_with_policy("never", 2, "Never"));
    ok(&cluster.cli(0, &["apply", "-f", never.to_str().unwrap()]));
    let shown = wait_until(Duration::from_secs(120), || {
        let pods = pods_of(&cluster, 0, "never");
        pods.len() == 2
            && pods.iter().any(|p| p.0 == "Running")
            && pods.iter().any(|p| p.0 == "ErrImageNeverPull")
    });
    let pods = pods_of(&cluster, 0, "never");
    assert!(
        shown,
        "never: {pods:?}\n{}\n{}",
        cluster.log_tail(0),
        cluster.log_tail(1)
    );
    let refused = pods.iter().find(|p| p.0 == "ErrImageNeverPull").unwrap();
    assert!(
        refused.2.contains("imagePullPolicy is Never") && refused.2.contains(IMAGE),
        "{refused:?}"
    );
    let table = ok(&cluster.cli(1, &["get", "pods"]));
    assert!(table.contains("ErrImageNeverPull"), "{table}");
    // The peer that holds it is not asked: retries (wait for a restart to be
    // counted) leave machine 1 without the image and without containers.
    let retried = wait_until(Duration::from_secs(60), || {
        let pods = cluster.get_json(0, "pods");
        pods.as_array().unwrap().iter().any(|p| {
            p["rc"] == "never"
                && p["phase"] == "ErrImageNeverPull"
                && p["restarts"].as_u64().unwrap_or(0) >= 2
        })
    });
    assert!(retried, "no retry: {}", cluster.get_json(0, "pods"));
    assert_eq!(
        image_id(&cluster, 1, IMAGE),
        None,
        "machine 1 fetched under Never"
    );
    assert!(
        cluster.machine_containers(1).is_empty(),
        "{:?}",
        cluster.machine_containers(1)
    );

    // Always, with no registry: machine 0 runs its own copy, machine 1 gets
    // machine 0's from the peers; both run, with the same image ID.
    let always = cluster.manifest("always.yaml", &rc_with_policy("always", 2, "Always"));
    ok(&cluster.cli(0, &["apply", "-f", always.to_str().unwrap()]));
    let both = wait_until(Duration::from_secs(180), || {
        cluster.running_pods(0, "always").len() == 2
    });
    assert!(
        both,
        "always: {:?}\n{}\n{}",
        pods_of(&cluster, 0, "always"),
        cluster.log_tail(0),
        cluster.log_tail(1)
    );
    let nodes: std::collections::BTreeSet<_> = cluster
        .running_pods(0, "always")
        .into_iter()
        .map(|(_, node)| node)
        .collect();
    assert_eq!(nodes.len(), 2, "both replicas on one machine");
    assert_eq!(image_id(&cluster, 1, IMAGE).as_deref(), Some(id.as_str()));

    // Now that machine 1 holds the image, its Never pod runs at its next retry.
    let healed = wait_until(Duration::from_secs(120), || {
        cluster.running_pods(0, "never").len() == 2
    });
    assert!(
        healed,
        "never after the image arrived: {:?}",
        pods_of(&cluster, 0, "never")
    );
}
