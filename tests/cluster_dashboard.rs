//! The dashboard (`/ui`) in real headless Chromium, driven by selenium
//! through chromedriver (Debian's `chromium`, `chromium-driver`,
//! `python3-selenium`), against a real 3-peer cluster: the page lists the
//! nodes, the RC and its pods, the service with its endpoints; a scale made
//! with the page's form shows in another peer's `get pods`; it shows a
//! killed peer's node Down,
//! and logs no JavaScript error. The screenshot is kept as
//! `CARGO_TARGET_TMPDIR/dashboard.png` (`target/tmp/`; its path is printed).

mod cluster_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster_support::{Cluster, hello_rc, ok, wait_until};

/// The subnet of this test's peers: 127.0.45.0/24.
const SUBNET: u8 = 45;

/// The interpreter Debian's `python3-selenium` is installed for.
const PYTHON: &str = "/usr/bin/python3";

#[test]
fn dashboard_lists_nodes_and_pods_and_shows_a_killed_node_down() {
    let mut cluster = Cluster::start(SUBNET, 3);
    let service = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: shown\nspec:\n  \
                   selector:\n    app: shown\n  ports:\n    - port: 18453\n      targetPort: 80\n";
    let text = hello_rc("shown", 2, "shoal-test/hello:1.0") + service;
    let manifest = cluster.manifest("shown.yaml", &text);
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let running = wait_until(Duration::from_secs(120), || {
        cluster.running_pods(0, "shown").len() == 2
    });
    assert!(
        running,
        "2 pods not running: {:?}",
        cluster.try_get_json(0, "pods")
    );

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dashboard/check_page.py");
    // Kept after the test (the cluster's dir is removed when it passes).
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let url = format!("{}/ui", cluster.peers[0].server());
    let mut browser = Command::new(PYTHON)
        .arg(script)
        .arg(&url)
        .arg(&screenshot)
        .arg("3")
        .arg("shown")
        .arg("node2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the selenium script (see .ci/run for its packages)");
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    if !ready.starts_with("READY") {
        let out = browser.wait_with_output().unwrap();
        panic!(
            "the page did not list the cluster: {ready}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The pods the page lists are the RC's two.
    assert!(
        ready.contains("shown-0") && ready.contains("shown-1"),
        "{ready}"
    );

    // A scale made in the page reaches the cluster: another peer's
    // `get pods` shows the third replica running.
    let scaled = lines.next().and_then(Result::ok).unwrap_or_default();
    if scaled != "SCALED" {
        let out = browser.wait_with_output().unwrap();
        panic!(
            "the page's scale form did not work: {scaled}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let three = wait_until(Duration::from_secs(120), || {
        cluster.running_pods(1, "shown").len() == 3
    });
    assert!(
        three,
        "3 pods not running: {:?}",
        cluster.try_get_json(1, "pods")
    );

    cluster.kill9(2);
    let mut stdin = browser.stdin.take().unwrap();
    writeln!(stdin, "killed").unwrap();
    drop(stdin);
    let down = lines.next().and_then(Result::ok).unwrap_or_default();
    let out = browser.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && down.starts_with("DOWN"),
        "the page did not show node2 Down, or logged errors: {down}\n{stderr}"
    );
    eprintln!(
        "dashboard: node2 shown Down {} s after the kill; screenshot {}",
        down.trim_start_matches("DOWN "),
        screenshot.display()
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}
