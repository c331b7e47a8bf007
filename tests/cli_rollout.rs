//! `shoal rollout ...` as a user runs it: real `shoal up` processes on
//! 127.0.42.x, real QUIC, the machine's Docker engine running the test
//! images (`scripts/test-images.sh`). What pods run is read from the engine
//! itself (`docker ps`), not only from what the peers say.
//!
//! One cluster serves the scenarios in turn (each on its own RC): the task
//! owns one loopback subnet, and a cluster start is the slow part.

mod cluster_support;

use std::process::{Command, Output};
use std::time::Duration;

use cluster_support::{Cluster, ensure_test_images, hello_rc, ok, wait_until};
use serde_json::Value;

const SUBNET: u8 = 42;
const V10: &str = "shoal-test/hello:1.0";
const V11: &str = "shoal-test/hello:1.1";
/// A tag nobody built: the rollout to it cannot succeed.
const MISSING: &str = "shoal-test/hello:0.0-missing";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got success: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// `(container id, image)` of every running container of `rc` on the engine.
fn containers(cluster: &Cluster, rc: &str) -> Vec<(String, String)> {
    let out = Command::new("docker")
        .args(["ps", "--format", "{{.ID}} {{.Image}}"])
        .arg("--filter")
        .arg(format!("label=io.shoal.cluster={}", cluster.cluster_id))
        .arg("--filter")
        .arg(format!("label=io.shoal.rc={rc}"))
        .output()
        .expect("run docker ps");
    let mut rows: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, image)| (id.to_owned(), image.to_owned()))
        .collect();
    rows.sort();
    rows
}

fn images(cluster: &Cluster, rc: &str) -> Vec<String> {
    let mut images: Vec<String> = containers(cluster, rc).into_iter().map(|c| c.1).collect();
    images.sort();
    images
}

/// `replicas` containers of `rc` run on the engine, all of `image`, and
/// the peers count them ready.
fn runs_only(cluster: &Cluster, rc: &str, replicas: usize, image: &str) -> bool {
    images(cluster, rc) == vec![image.to_owned(); replicas]
        && cluster
            .rc_counts(0, rc)
            .is_some_and(|(_, ready)| ready == replicas as u64)
}

fn wait_runs_only(cluster: &Cluster, rc: &str, replicas: usize, image: &str) {
    let done = wait_until(Duration::from_secs(120), || {
        runs_only(cluster, rc, replicas, image)
    });
    assert!(
        done,
        "{rc} does not run {replicas} × {image}: engine {:?}, peer {:?}\n{}",
        containers(cluster, rc),
        cluster.try_get_json(0, "pods"),
        cluster.log_tail(0)
    );
}

fn apply(cluster: &Cluster, rc: &str, replicas: u32, image: &str) {
    let manifest = cluster.manifest(&format!("{rc}.yaml"), &hello_rc(rc, replicas, image));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    wait_runs_only(cluster, rc, replicas as usize, image);
}

/// `rollout history NAME -o json` at peer `i`: `(revision, first image, current)`.
fn history(cluster: &Cluster, i: usize, rc: &str) -> Vec<(u64, String, bool)> {
    let out = ok(&cluster.cli(i, &["rollout", "history", rc, "-o", "json"]));
    let v: Value = serde_json::from_str(&out).expect("history -o json prints JSON");
    v["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let image = r["images"][0].as_str().unwrap();
            (
                r["revision"].as_u64().unwrap(),
                image.split_once('=').unwrap().1.to_owned(),
                r["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn rollout_status(cluster: &Cluster, rc: &str, timeout: &str) -> Output {
    cluster.cli(
        1,
        &["rollout", "status", rc, "--watch", "--timeout", timeout],
    )
}

#[test]
fn rollout_verbs_drive_real_pods() {
    ensure_test_images();
    let cluster = Cluster::start(SUBNET, 2);

    history_undo_and_restart(&cluster);
    apply_of_a_changed_template_is_a_rollout(&cluster);
    pause_holds_and_resume_continues(&cluster);
    status_fails_with_the_image_reason(&cluster);
}

/// History lists numbered revisions with images at every peer; undo
/// returns the pods to the earlier image; restart replaces every pod with
/// one of the same image.
fn history_undo_and_restart(cluster: &Cluster) {
    apply(cluster, "web", 2, V10);
    assert_eq!(history(cluster, 1, "web"), vec![(1, V10.to_owned(), true)]);

    ok(&cluster.cli(0, &["rolling-update", "web", "--image", V11]));
    let done = rollout_status(cluster, "web", "120s");
    let said = ok(&done);
    assert!(
        said.contains("successfully rolled out (revision 2)"),
        "{said}"
    );
    wait_runs_only(cluster, "web", 2, V11);
    let want = vec![(1, V10.to_owned(), false), (2, V11.to_owned(), true)];
    for i in 0..2 {
        assert!(
            wait_until(Duration::from_secs(20), || history(cluster, i, "web")
                == want),
            "peer {i} history: {:?}",
            history(cluster, i, "web")
        );
    }
    let table = ok(&cluster.cli(0, &["rollout", "history", "web"]));
    eprintln!("{table}");
    assert!(table.contains("REVISION   IMAGES"), "{table}");
    assert!(table.contains(" ago)"), "WHEN shows the age: {table}");

    let unknown = failed(&cluster.cli(0, &["rollout", "undo", "web", "--to-revision", "9"]));
    assert!(
        unknown.contains("no revision 9") && unknown.contains("1, 2"),
        "{unknown}"
    );

    let undone = ok(&cluster.cli(0, &["rollout", "undo", "web"]));
    assert!(
        undone.contains("replicationcontroller/web rolled back"),
        "{undone}"
    );
    wait_runs_only(cluster, "web", 2, V10);
    ok(&rollout_status(cluster, "web", "120s"));
    assert_eq!(
        history(cluster, 0, "web"),
        vec![
            (1, V10.to_owned(), false),
            (2, V11.to_owned(), false),
            (3, V10.to_owned(), true)
        ]
    );

    // Undo to the revision the RC already runs says so and changes nothing.
    let same = failed(&cluster.cli(0, &["rollout", "undo", "web", "--to-revision", "1"]));
    assert!(
        same.contains("already runs the template of revision 1"),
        "{same}"
    );

    let before = containers(cluster, "web");
    ok(&cluster.cli(1, &["rollout", "restart", "web"]));
    let replaced = wait_until(Duration::from_secs(120), || {
        let now = containers(cluster, "web");
        runs_only(cluster, "web", 2, V10) && now.iter().all(|c| !before.contains(c))
    });
    assert!(
        replaced,
        "restart did not replace every pod: before {before:?}, now {:?}",
        containers(cluster, "web")
    );
    ok(&rollout_status(cluster, "web", "120s"));
    let revisions = history(cluster, 0, "web");
    assert_eq!(
        revisions.last(),
        Some(&(4, V10.to_owned(), true)),
        "{revisions:?}"
    );
    ok(&cluster.cli(0, &["delete", "rc", "web"]));
}

/// `apply` of a manifest with another image rolls the pods over and is a
/// revision like `rolling-update`.
fn apply_of_a_changed_template_is_a_rollout(cluster: &Cluster) {
    apply(cluster, "applied", 2, V10);
    let manifest = cluster.manifest("applied.yaml", &hello_rc("applied", 2, V11));
    let said = ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    assert!(said.contains("configured"), "{said}");
    ok(&rollout_status(cluster, "applied", "120s"));
    wait_runs_only(cluster, "applied", 2, V11);
    assert_eq!(
        history(cluster, 1, "applied"),
        vec![(1, V10.to_owned(), false), (2, V11.to_owned(), true)]
    );
    // The same manifest again changes nothing: no new revision.
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    assert_eq!(history(cluster, 0, "applied").len(), 2);
    ok(&cluster.cli(0, &["delete", "rc", "applied"]));
}

/// While paused, no pod moves to the new template; resume lets it finish.
fn pause_holds_and_resume_continues(cluster: &Cluster) {
    apply(cluster, "held", 2, V10);
    let paused = ok(&cluster.cli(0, &["rollout", "pause", "held"]));
    assert!(
        paused.contains("replicationcontroller/held paused"),
        "{paused}"
    );
    let again = failed(&cluster.cli(1, &["rollout", "pause", "held"]));
    assert!(
        again.contains("already paused") && again.contains("rollout resume held"),
        "{again}"
    );

    let before = containers(cluster, "held");
    ok(&cluster.cli(1, &["rolling-update", "held", "--image", V11]));
    // Long enough for an unpaused rollout of 2 pods to have moved one.
    let moved = wait_until(Duration::from_secs(15), || {
        containers(cluster, "held") != before
    });
    assert!(
        !moved,
        "a pod moved while paused: before {before:?}, now {:?}",
        containers(cluster, "held")
    );
    let status = failed(&cluster.cli(0, &["rollout", "status", "held"]));
    assert!(status.contains("paused"), "{status}");

    let resumed = ok(&cluster.cli(1, &["rollout", "resume", "held"]));
    assert!(resumed.contains("resumed"), "{resumed}");
    ok(&rollout_status(cluster, "held", "120s"));
    wait_runs_only(cluster, "held", 2, V11);
    let not_paused = failed(&cluster.cli(0, &["rollout", "resume", "held"]));
    assert!(not_paused.contains("not paused"), "{not_paused}");
    ok(&cluster.cli(0, &["delete", "rc", "held"]));
}

/// A rollout to an image no engine has fails `status --watch` with the
/// pods' reason, and the verbs name an unknown RC.
fn status_fails_with_the_image_reason(cluster: &Cluster) {
    apply(cluster, "broken", 2, V10);
    ok(&cluster.cli(0, &["rolling-update", "broken", "--image", MISSING]));
    let out = rollout_status(cluster, "broken", "180s");
    let reason = failed(&out);
    eprintln!("{}{reason}", text(&out.stdout));
    assert!(
        reason.contains("is failing") && reason.contains(MISSING),
        "status should name the image: {reason}\nstdout: {}",
        text(&out.stdout)
    );
    // The replicas it did not touch still run 1.0.
    assert!(
        images(cluster, "broken").contains(&V10.to_owned()),
        "{:?}",
        containers(cluster, "broken")
    );
    let undone = ok(&cluster.cli(0, &["rollout", "undo", "broken"]));
    assert!(undone.contains("rolled back"), "{undone}");
    wait_runs_only(cluster, "broken", 2, V10);

    let unknown = failed(&cluster.cli(0, &["rollout", "history", "nope"]));
    assert!(unknown.contains("\"nope\" not found"), "{unknown}");
    ok(&cluster.cli(0, &["delete", "rc", "broken"]));
}
