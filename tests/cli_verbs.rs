//! The client verbs as a user runs them: the real binary against a real
//! peer core serving the real API on loopback (no Docker: the test world
//! reports started pods as running, see `api_support`).

mod api_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use api_support::{TestNode, eventually, start_cluster};
use serde_json::Value;

/// Runs `shoal ARGS` against `server` (through SHOAL_SERVER) off the async
/// workers, so the API keeps serving while the binary runs.
async fn shoal(server: &str, args: &[&str], stdin: &str) -> Output {
    let server = server.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("SHOAL_SERVER", &server)
            .env_remove("SHOAL_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the shoal binary runs");
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(stdin.as_bytes()).expect("writing stdin");
        drop(pipe);
        child.wait_with_output().expect("shoal exits")
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn node() -> TestNode {
    start_cluster(&["node-a"], None).await.remove(0)
}

/// The rows of a table, split on runs of spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_then_get_rc_prints_an_aligned_table() {
    let node = node().await;
    let out = shoal(&node.url, &["apply", "-f", "examples/hello-local.yaml"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "replicationcontroller/hello created\n");

    let up = eventually(Duration::from_secs(5), || async {
        let out = shoal(&node.url, &["get", "rc"], "").await;
        text(&out.stdout).contains("hello   2         2         2")
    })
    .await;
    let out = shoal(&node.url, &["get", "rc"], "").await;
    assert!(up, "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout),
        "NAME    DESIRED   CURRENT   READY   IMAGE\nhello   2         2         2       shoal-test/hello:1.0\n"
    );

    let pods = shoal(&node.url, &["get", "pods", "-o", "wide"], "").await;
    let table = rows(&text(&pods.stdout));
    assert_eq!(
        table[0],
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "NODE",
            "PORTS",
            "IP",
            "IMAGE",
            "LAST ERROR"
        ]
    );
    assert_eq!(table.len(), 3, "{table:?}");
    assert_eq!(table[1][..5], ["hello-0", "true", "Running", "0", "node-a"]);

    let nodes = shoal(&node.url, &["get", "nodes"], "").await;
    let table = rows(&text(&nodes.stdout));
    assert_eq!(
        table[0],
        ["NAME", "STATUS", "RUNTIME", "PODS", "CPU", "MEMORY"]
    );
    assert_eq!(table[1], ["node-a", "Alive", "Ready", "2", "2", "4Gi"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_output_json_prints_the_api_shapes() {
    let node = node().await;
    let out = shoal(&node.url, &["apply", "-f", "-"], api_support::EXAMPLE).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = shoal(&node.url, &["get", "rc", "-o", "json"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(list[0]["name"], "hello");
    assert_eq!(list[0]["replicas"], 2);
    assert_eq!(list[0]["selector"]["app"], "hello");

    let one = shoal(&node.url, &["get", "rc", "hello", "-o", "json"], "").await;
    let detail: Value = serde_json::from_slice(&one.stdout).expect("JSON on stdout");
    assert_eq!(detail["spec"]["kind"], "ReplicationController");

    let yaml = shoal(&node.url, &["get", "nodes", "-o", "yaml"], "").await;
    assert!(
        text(&yaml.stdout).contains("name: node-a"),
        "{}",
        text(&yaml.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_rolling_update_wait_describe_and_delete() {
    let node = node().await;
    assert!(
        shoal(&node.url, &["apply", "-f", "examples/hello-local.yaml"], "")
            .await
            .status
            .success()
    );

    let out = shoal(&node.url, &["scale", "hello", "--replicas", "3"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "replicationcontroller/hello scaled\n");
    let out = shoal(&node.url, &["scale", "rc", "hello", "--replicas", "3"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = shoal(
        &node.url,
        &[
            "rolling-update",
            "hello",
            "--image",
            "shoal-test/hello:1.1",
            "--wait",
            "--timeout",
            "20s",
        ],
        "",
    )
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("replicationcontroller/hello rolling update started\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hello: 3 of 3 replicas updated and ready (3 pods in all)"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("replicationcontroller/hello rolled out\n"),
        "{stdout}"
    );

    let out = shoal(&node.url, &["describe", "rc", "hello"], "").await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("Images:         hello=shoal-test/hello:1.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 desired | 3 running | 3 ready | 3 updated and ready"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hello=shoal-test/hello:1.0"),
        "history shows the old image: {stdout}"
    );

    let out = shoal(&node.url, &["describe", "pod", "hello-2"], "").await;
    assert!(
        text(&out.stdout).contains("Image:          shoal-test/hello:1.1"),
        "{}",
        text(&out.stdout)
    );
    let out = shoal(&node.url, &["describe", "node", "node-a"], "").await;
    assert!(
        text(&out.stdout).contains("Pods:           3"),
        "{}",
        text(&out.stdout)
    );

    let out = shoal(
        &node.url,
        &["delete", "-f", "examples/hello-local.yaml"],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "replicationcontroller/hello deleted\n");
    let out = shoal(&node.url, &["delete", "rc", "hello"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: replicationcontroller \"hello\" not found; `shoal get rc` lists them\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_manifest_prints_every_problem_and_fails() {
    let node = node().await;
    let out = shoal(
        &node.url,
        &["apply", "-f", "examples/bad-selector.yaml"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: doc 1 spec.selector (line 11)"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was applied"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_to_an_invalid_image_prints_the_reason_and_fails() {
    let node = node().await;
    let out = shoal(&node.url, &["apply", "-f", "examples/hello-local.yaml"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = shoal(
        &node.url,
        &["rolling-update", "hello", "--image", "foo:::bar"],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "error: image: \"foo:::bar\" is not a valid image reference: tag \"::bar\" is not valid"
        ),
        "{stderr}"
    );

    let out = shoal(&node.url, &["get", "rc", "hello", "-o", "json"], "").await;
    let detail: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(detail["image"], "shoal-test/hello:1.0", "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_an_unknown_pod_say_how_to_find_pods() {
    let node = node().await;
    let out = shoal(&node.url, &["logs", "ghost-0"], "").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: pod \"ghost-0\" not found"),
        "{stderr}"
    );
    assert!(stderr.contains("shoal get pods"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_running_gets_a_clear_message() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = shoal(&url, &["get", "rc"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: cannot reach the shoal peer at {url}: is `shoal up` running? (set --server or SHOAL_SERVER)\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protected_peer_needs_the_token() {
    let node = start_cluster(&["node-a"], Some("s3cret")).await.remove(0);
    let out = shoal(&node.url, &["get", "nodes"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs a token"),
        "{}",
        text(&out.stderr)
    );
    let out = shoal(&node.url, &["get", "nodes", "--token", "s3cret"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("NAME "),
        "{}",
        text(&out.stdout)
    );
}
