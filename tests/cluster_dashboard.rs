//! The dashboard (`/ui`) in real headless Chromium, driven by selenium
//! through chromedriver (Debian's `chromium`, `chromium-driver`,
//! `python3-selenium`), against a real 3-peer cluster. The page lists the
//! nodes, the RC and its pods, the service with its endpoints; a click on a
//! pod shows its log lines and follows new ones; every action made in the
//! page is checked at another peer: a scale (and its event in the page's
//! event stream), a manifest applied from the text box, a rolling update to
//! another image, a delete, a drain. At a phone's width the page body does
//! not scroll sideways. It shows a killed peer's node Down within 5 s of the
//! kill (by the page's clock at the change), and logs no JavaScript error. The screenshots are kept as
//! `CARGO_TARGET_TMPDIR/dashboard.png` and `dashboard-phone.png`
//! (`target/tmp/`; their paths are printed).

mod cluster_support;

use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use cluster_support::{Cluster, hello_rc, ok, wait_until};
use serde_json::Value;

/// The subnet of this test's peers: 127.0.45.0/24.
const SUBNET: u8 = 45;

/// The interpreter Debian's `python3-selenium` is installed for.
const PYTHON: &str = "/usr/bin/python3";

/// How long the cluster may take to do what the page asked.
const CONVERGE: Duration = Duration::from_secs(120);

/// From a peer's kill to its node row shown Down in the page (issue #14).
const DOWN_WITHIN: Duration = Duration::from_secs(5);

fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    u64::try_from(now.expect("the clock is after 1970").as_millis()).unwrap_or(u64::MAX)
}

/// The selenium script, one step per line on its stdout (see its doc).
struct Page {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    stdin: Option<ChildStdin>,
}

impl Page {
    /// The script's next line, which must start with `step`.
    fn expect(&mut self, step: &str) -> String {
        let line = self.lines.next().and_then(Result::ok).unwrap_or_default();
        if !line.starts_with(step) {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let mut stderr = String::new();
            if let Some(mut err) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
            }
            panic!("the page did not reach {step}: {line:?}\n{stderr}");
        }
        line
    }

    /// Lets the script go on to its next step.
    fn go_on(&mut self) {
        let stdin = self.stdin.as_mut().expect("the script's stdin");
        writeln!(stdin, "go on").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pod of the test image that serves its page and prints
/// `tick N: hello from 1.0` twice a second.
fn ticking_rc(name: &str, replicas: u32) -> String {
    hello_rc(name, replicas, "shoal-test/hello:1.0").replace(
        "        image: shoal-test/hello:1.0\n",
        "        image: shoal-test/hello:1.0\n        command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; \
         httpd -p 80 -h /www; i=0; while true; do echo tick $i: $(cat /www/index.html); \
         i=$((i+1)); sleep 0.5 & wait; done\"]\n",
    )
}

fn rc_image(cluster: &Cluster, peer: usize, rc: &str) -> Option<String> {
    let rcs = cluster.try_get_json(peer, "rcs")?;
    rcs.as_array()?
        .iter()
        .find(|r| r["name"] == rc)
        .map(|r| r["image"].as_str().unwrap_or_default().to_owned())
}

fn node<'a>(nodes: &'a Value, name: &str) -> Option<&'a Value> {
    nodes.as_array()?.iter().find(|n| n["name"] == name)
}

#[test]
fn dashboard_shows_the_cluster_and_its_actions_reach_every_peer() {
    let mut cluster = Cluster::start(SUBNET, 3);
    let service = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: shown\nspec:\n  \
                   selector:\n    app: shown\n  ports:\n    - port: 18453\n      targetPort: 80\n";
    let text = ticking_rc("shown", 2) + service;
    let manifest = cluster.manifest("shown.yaml", &text);
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let running = wait_until(CONVERGE, || cluster.running_pods(0, "shown").len() == 2);
    assert!(
        running,
        "2 pods not running: {:?}",
        cluster.try_get_json(0, "pods")
    );
    // Typed into the page's apply box.
    let made = cluster.manifest("made.yaml", &hello_rc("made", 1, "shoal-test/hello:1.0"));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dashboard/check_page.py");
    // Kept after the test (the cluster's dir is removed when it passes).
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (screenshot, phone) = (
        shots.join("dashboard.png"),
        shots.join("dashboard-phone.png"),
    );
    let _ = std::fs::remove_file(&screenshot);
    let _ = std::fs::remove_file(&phone);
    let url = format!("{}/ui", cluster.peers[0].server());
    let mut child = Command::new(PYTHON)
        .arg(script)
        .arg(&url)
        .arg(&screenshot)
        .arg(&phone)
        .args(["3", "shown", "node1", "node2"])
        .arg(&made)
        .arg("shoal-test/hello:1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the selenium script (see .ci/run for its packages)");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let stdin = child.stdin.take();
    let mut page = Page {
        child,
        lines,
        stdin,
    };

    let ready = page.expect("READY");
    assert!(
        ready.contains("shown-0") && ready.contains("shown-1"),
        "{ready}"
    );
    // The pod's own output, followed.
    let logs = page.expect("LOGS tick ");
    assert!(logs.ends_with(": hello from 1.0"), "{logs}");

    // A scale made in the page: another peer runs the third replica.
    page.expect("SCALED");
    let three = wait_until(CONVERGE, || cluster.running_pods(1, "shown").len() == 3);
    assert!(
        three,
        "3 pods not running: {:?}",
        cluster.try_get_json(1, "pods")
    );
    page.go_on();

    // Applied from the text box: another peer lists the RC and runs it.
    page.expect("APPLIED made");
    let applied = wait_until(CONVERGE, || cluster.running_pods(1, "made").len() == 1);
    assert!(
        applied,
        "made not running: {:?}",
        cluster.try_get_json(1, "pods")
    );
    page.go_on();

    // The rolling update: the RC's image and its running pod are the new one.
    page.expect("UPDATED");
    let rolled = wait_until(CONVERGE, || {
        let pods = cluster.try_get_json(2, "pods").unwrap_or(Value::Null);
        let new_running = pods.as_array().is_some_and(|pods| {
            pods.iter().any(|p| {
                p["rc"] == "made" && p["phase"] == "Running" && p["image"] == "shoal-test/hello:1.1"
            })
        });
        new_running && rc_image(&cluster, 2, "made").as_deref() == Some("shoal-test/hello:1.1")
    });
    assert!(
        rolled,
        "made not rolled to 1.1: {:?}",
        cluster.try_get_json(2, "pods")
    );
    page.go_on();

    // Deleted: no peer lists it, no pod of it runs.
    page.expect("DELETED");
    let gone = wait_until(CONVERGE, || {
        rc_image(&cluster, 1, "made").is_none() && cluster.running_pods(1, "made").is_empty()
    });
    assert!(
        gone,
        "made still there: {:?}",
        cluster.try_get_json(1, "rcs")
    );
    page.go_on();

    // Drained: cordoned and empty, as another peer sees it.
    page.expect("DRAINED");
    let drained = wait_until(CONVERGE, || {
        let nodes = cluster.try_get_json(2, "nodes").unwrap_or(Value::Null);
        node(&nodes, "node1").is_some_and(|n| n["cordoned"] == true && n["pods"] == 0)
    });
    assert!(
        drained,
        "node1 not drained: {:?}",
        cluster.try_get_json(2, "nodes")
    );
    page.go_on();

    let widths = page.expect("PHONE");
    page.expect("WATCHING");
    let killed_ms = unix_ms();
    cluster.kill9(2);
    page.go_on();
    // When the page showed node2 not Alive, then Down (its own clock).
    let down = page.expect("DOWN ");
    let shown: Vec<u64> = down
        .split_whitespace()
        .skip(1)
        .map(|ms| ms.parse().expect("DOWN <ms> <ms>"))
        .collect();
    let since_kill = |ms: u64| Duration::from_millis(ms.saturating_sub(killed_ms));
    let (not_alive, shown_down) = (since_kill(shown[0]), since_kill(shown[1]));
    drop(page.stdin.take());
    let status = page.child.wait().expect("the selenium script ends");
    let mut stderr = String::new();
    if let Some(mut err) = page.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    assert!(status.success(), "the page logged errors: {stderr}");
    eprintln!(
        "dashboard: {logs}; {widths}; node2 shown not Alive {:.1} s and Down {:.1} s after \
         the kill; screenshots {} {}",
        not_alive.as_secs_f64(),
        shown_down.as_secs_f64(),
        screenshot.display(),
        phone.display()
    );
    // The bound, counted from the kill to the page's row showing
    // the node Down (what `get nodes` calls Down: out of placement, its
    // pods Unknown and replaced), not merely Suspect.
    assert!(
        shown_down <= DOWN_WITHIN,
        "node2 shown Down {shown_down:?} after the kill (not Alive after {not_alive:?}); \
         the bound is {DOWN_WITHIN:?}"
    );
    for shot in [&screenshot, &phone] {
        assert!(shot.exists(), "no screenshot at {}", shot.display());
    }
}
