//! The client verbs as a user runs them: the real binary against a real
//! peer core serving the real API on loopback (no Docker: the test world
//! reports started pods as running, see `api_support`), and what `shoal up`
//! refuses before it starts anything.

mod api_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use api_support::{TestNode, eventually, start_cluster};
use serde_json::Value;

/// Runs `shoal ARGS` against `server` (through SHOAL_SERVER) off the async
/// workers, so the API keeps serving while the binary runs.
async fn shoal(server: &str, args: &[&str], stdin: &str) -> Output {
    shoal_env(server, args, stdin, &[]).await
}

/// [`shoal`] with extra environment variables.
async fn shoal_env(server: &str, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let server = server.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = bare_shoal(&args)
            .env("SHOAL_SERVER", &server)
            .envs(env)
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

/// The binary with none of the user's Shoal settings in its environment.
fn bare_shoal(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for var in [
        "SHOAL_SERVER",
        "SHOAL_TOKEN",
        "SHOAL_API_TOKEN",
        "SHOAL_JOIN_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    cmd
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
    // kubectl's columns; the RC was created seconds ago.
    let table = rows(&text(&out.stdout));
    assert_eq!(table[0], ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(table[1][..4], ["hello", "2", "2", "2"]);
    assert!(is_seconds(&table[1][4]), "{table:?}");
    let wide = shoal(&node.url, &["get", "rc", "-o", "wide"], "").await;
    assert_eq!(
        rows(&text(&wide.stdout))[1][5..],
        ["shoal-test/hello:1.0", "app=hello"]
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
            "AGE",
            "NODE",
            "PORTS",
            "IP",
            "IMAGE",
            "LAST ERROR"
        ]
    );
    assert_eq!(table.len(), 3, "{table:?}");
    assert_eq!(table[1][..4], ["hello-0", "1/1", "Running", "0"]);
    // Started seconds ago, on node-a.
    assert!(is_seconds(&table[1][4]), "{table:?}");
    assert_eq!(table[1][5], "node-a");

    let nodes = shoal(&node.url, &["get", "nodes"], "").await;
    let table = rows(&text(&nodes.stdout));
    assert_eq!(
        table[0],
        ["NAME", "STATUS", "RUNTIME", "AGE", "PODS", "CPU", "MEMORY"]
    );
    assert_eq!(table[1][..3], ["node-a", "Alive", "Ready"]);
    assert!(is_seconds(&table[1][3]), "{table:?}");
    assert_eq!(table[1][4..], ["2", "2", "4Gi"]);
}

/// An age of under two minutes, as kubectl prints it (`42s`).
fn is_seconds(age: &str) -> bool {
    age.strip_suffix('s')
        .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n < 120))
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
    // Times are local, with their age: `Created: 2026-12-02 04:10:33 (12s ago)`.
    let created = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Created:"))
        .unwrap_or_default()
        .trim();
    assert!(
        created.ends_with("s ago)") && created.len() > 20,
        "{stdout}"
    );
    let history = stdout
        .lines()
        .find(|l| l.contains("hello=shoal-test/hello:1.0"))
        .unwrap_or_default();
    assert_eq!(history.matches(" ago)").count(), 2, "{stdout}");

    let out = shoal(&node.url, &["describe", "pod", "hello-2"], "").await;
    assert!(
        text(&out.stdout).contains("Image:          shoal-test/hello:1.1"),
        "{}",
        text(&out.stdout)
    );
    // Rolled out, so ready: kubectl's word, then ready containers / containers.
    assert!(
        text(&out.stdout).contains("Ready:          True (1/1)"),
        "{}",
        text(&out.stdout)
    );
    let out = shoal(&node.url, &["describe", "node", "node-a"], "").await;
    assert!(
        text(&out.stdout).contains("Pods:           3"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("Allocatable:    cpu 2, memory 4Gi")
            && text(&out.stdout).contains(" ago)"),
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
async fn a_token_protected_peer_needs_the_api_token_and_says_which() {
    let node = start_cluster(&["node-a"], Some("s3cret")).await.remove(0);
    for (args, env) in [
        (&["get", "nodes"][..], &[][..]),
        (&["get", "nodes"][..], &[("SHOAL_API_TOKEN", "")][..]),
        (&["get", "nodes", "--api-token", ""][..], &[][..]),
    ] {
        let out = shoal_env(&node.url, args, "", env).await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("needs a token"),
            "an empty token is no token: {stderr}"
        );
        assert!(stderr.contains("--api-token"), "{stderr}");
        assert!(stderr.contains("SHOAL_API_TOKEN"), "{stderr}");
        assert!(!stderr.to_lowercase().contains("join"), "{stderr}");
    }

    let out = shoal(&node.url, &["get", "nodes", "--api-token", "guess"], "").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("wrong API token"), "{stderr}");
    assert!(stderr.contains("--api-token"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("join"), "{stderr}");

    let out = shoal(&node.url, &["get", "nodes", "--token", "s3cret"], "").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: --token is no longer accepted"),
        "{stderr}"
    );
    assert!(stderr.contains("--api-token"), "{stderr}");

    let out = shoal(&node.url, &["get", "nodes", "--api-token", "s3cret"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("NAME "),
        "{}",
        text(&out.stdout)
    );
    let out = shoal_env(
        &node.url,
        &["get", "nodes"],
        "",
        &[("SHOAL_API_TOKEN", "s3cret")],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A well-formed join token, as `shoal up` prints it.
fn join_token() -> String {
    shoal_gossip::quic::JoinToken::from_seed([7; 32]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_never_sends_a_join_token_as_its_api_token() {
    // A listener that would see any connection the CLI made.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let secret = join_token();
    for (args, env) in [
        (&["get", "nodes", "--api-token", &secret][..], &[][..]),
        (&["get", "nodes"][..], &[("SHOAL_API_TOKEN", &*secret)][..]),
        (
            &["apply", "-f", "examples/hello-local.yaml"][..],
            &[("SHOAL_API_TOKEN", &*secret)][..],
        ),
    ] {
        let out = shoal_env(&url, args, "", env).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("is the cluster's join token"), "{stderr}");
        assert!(stderr.contains("never sends"), "{stderr}");
        assert!(stderr.contains("shoal up --api-token"), "{stderr}");
        assert!(
            !stderr.contains(&secret),
            "the secret is not echoed: {stderr}"
        );
    }
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "the CLI connected to the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_manifest_over_the_limit_prints_the_servers_413_message() {
    let node = node().await;
    // 2 MiB, and 32 MiB: still being sent when the peer has decided.
    for mib in [2, 32] {
        let big = format!(
            "# {}\n{}",
            "x".repeat(mib * 1024 * 1024),
            api_support::EXAMPLE
        );
        let out = shoal(&node.url, &["apply", "-f", "-"], &big).await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(text(&out.stdout), "");
        assert_eq!(
            text(&out.stderr),
            format!(
                "error: the request body ({mib}.0 MiB) is larger than the API's limit of 1 MiB; \
                 split the manifest into several files and apply each\n"
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_from_a_proxy_is_printed_as_it_said_it() {
    // Not a shoal peer: answers every request with a plain-text 413.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::Read;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let body =
                "<html><body>\n  <h1>413 Request Entity Too Large</h1>\n  nginx\n</body></html>\n";
            let _ = write!(
                stream,
                "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/html\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = shoal(&url, &["get", "rc"], "").await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: the server at {url} answered 413 Payload Too Large: <html><body> \
             <h1>413 Request Entity Too Large</h1> nginx </body></html>\n\
             (not a shoal error body: is --server a shoal peer, or is a proxy in between?)\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_into_a_pipe_whose_reader_has_gone_ends_quietly() {
    let node = node().await;
    let out = shoal(&node.url, &["apply", "-f", "examples/hello-local.yaml"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [["get", "pods"], ["get", "nodes"]] {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let server = node.url.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = bare_shoal(&args)
                .env("SHOAL_SERVER", &server)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the shoal binary runs");
            // `| head -0`: the reader closes before the first line is written.
            drop(child.stdout.take());
            child.wait_with_output().expect("shoal exits")
        })
        .await
        .unwrap();
        assert_eq!(text(&out.stderr), "", "no `Broken pipe` error");
        assert!(out.status.success(), "{:?}", out.status);
    }
}

#[test]
fn up_refuses_an_empty_api_token_before_starting() {
    let dir = tempdir("empty-api-token");
    for (args, env) in [
        (&["--api-token", ""][..], &[][..]),
        (&[][..], &[("SHOAL_API_TOKEN", "")][..]),
        (&["--api-token", "   "][..], &[][..]),
    ] {
        let out = up(&dir, args, env);
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("error: --api-token (or SHOAL_API_TOKEN) is empty"),
            "{stderr}"
        );
        assert!(
            !dir.join("node.json").exists(),
            "nothing was started or written"
        );
    }
}

#[test]
fn up_refuses_the_join_token_as_its_api_token() {
    let dir = tempdir("join-as-api-token");
    let secret = join_token();
    let out = up(&dir, &["--api-token", &secret], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("is a join token"), "{stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");
}

#[test]
fn up_warns_about_the_retired_token_names() {
    let dir = tempdir("retired-token-names");
    // An empty --api-token stops `up` right after the warnings.
    let secret = join_token();
    let out = up(&dir, &["--token", &secret, "--api-token", ""], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr
            .matches("warning: --token is deprecated; use --join-token")
            .count(),
        1,
        "{stderr}"
    );
    let out = up(&dir, &["--api-token", ""], &[("SHOAL_TOKEN", &secret)]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: SHOAL_TOKEN is no longer read"),
        "{stderr}"
    );
    assert!(stderr.contains("SHOAL_JOIN_TOKEN"), "{stderr}");
    assert!(stderr.contains("SHOAL_API_TOKEN"), "{stderr}");
    assert!(!stderr.contains(&secret), "{stderr}");
}

/// A fresh, empty directory for one test's `--data-dir`.
fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `shoal up` on fixed loopback ports (it never binds them when it refuses to
/// start) with `dir` as its data dir. It must stop by
/// itself: one still running after 10 s is killed and fails the test.
fn up(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all: Vec<String> = [
        "up",
        "--listen",
        "127.0.0.1:27946",
        "--api",
        "127.0.0.1:27070",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    all.push("--data-dir".to_owned());
    all.push(dir.display().to_string());
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let mut child = bare_shoal(&all)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal up runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waiting for shoal up").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("shoal up exits");
            panic!(
                "shoal up {args:?} kept running; stderr:\n{}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("shoal up exits")
}
