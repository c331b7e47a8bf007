//! Scoped API tokens and per-client limits, with real `shoal up` processes
//! on 127.0.61.x, the real CLI, raw HTTP and the real kubectl.
//!
//! - A read-only token created at peer A works at peer B for reads and is
//!   refused (403, the role in the message) for writes, through the CLI
//!   and the API; revoked at A, it gets 401 at B within seconds; a token
//!   with `--expires` gets 401 once expired.
//! - kubectl with a read-only token (a TLS peer: kubectl sends tokens only
//!   over TLS) lists pods and gets `Error from server (Forbidden)` on scale.
//! - The dashboard in headless Chromium with a read-only token lists the
//!   RCs, and its scale form shows why the write was refused.
//! - A burst of 500 requests from one client gets some 429 with
//!   `Retry-After`, and the client is served again afterwards; connections
//!   over the cap get 429.
//!
//! No container is started: RCs have zero replicas.

mod up_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use up_support::{UpProcs, join_token, kubectl_present, shoal_cli, text, wait_until};

const ADMIN: &str = "api-tokens-test-admin-0123456789";

/// This test's peers on 127.0.61.x: each with its API on :7070, the admin
/// token and DNS on :5361.
struct Peers(UpProcs);

impl Peers {
    fn new(name: &str) -> Peers {
        Peers(UpProcs::new(61, "tokens", &format!("tokens-{name}")))
    }

    /// Starts peer `n` on 127.0.61.n, API on :7070, with `extra` flags.
    fn up(&mut self, n: u8, extra: &[&str]) -> PathBuf {
        let api = format!("{}:7070", self.ip(n));
        let common = ["--api", &api, "--dns-port", "5361", "--api-token", ADMIN];
        self.0.up(n, &[&common[..], extra].concat())
    }
}

impl std::ops::Deref for Peers {
    type Target = UpProcs;
    fn deref(&self) -> &UpProcs {
        &self.0
    }
}

/// The CLI with `token` as its API token and nothing from the environment.
fn shoal(token: &str, args: &[&str]) -> Output {
    shoal_cli(Some(token), args)
}

/// `token create` through `server` with the admin token: the secret.
fn create_token(server: &str, extra: &[&str]) -> String {
    let out = shoal(
        ADMIN,
        &[&["token", "create", "--server", server][..], extra].concat(),
    );
    assert!(out.status.success(), "token create: {}", text(&out));
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(secret.starts_with("shoal-api-"), "{}", text(&out));
    secret
}

/// One HTTP/1.1 request on a new connection: status, headers, body
/// (status 0 when nothing listens yet).
fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = match std::net::TcpStream::connect(addr) {
        Ok(stream) => stream,
        Err(e) => return (0, String::new(), e.to_string()),
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

fn rc(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata:
  name: {name}
spec:
  replicas: 0
  selector:
    app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: web
        image: shoal-test/hello:1.0
"
    )
}

#[test]
fn a_read_only_token_reads_everywhere_and_is_refused_writes_revocation_and_expiry() {
    let mut peers = Peers::new("scoped");
    let a_data = peers.up(1, &[]);
    let (a, b) = ("http://127.0.61.1:7070", "http://127.0.61.2:7070");
    assert!(
        wait_until(Duration::from_secs(60), || shoal(
            ADMIN,
            &["get", "nodes", "--server", a]
        )
        .status
        .success()),
        "peer A never answered"
    );
    let token = join_token(&a_data);
    peers.up(2, &["--join", "127.0.61.1:7946", "--join-token", &token]);

    // Created at A: one read-only token, one that expires soon, one admin.
    let reader = create_token(a, &["--role", "read-only", "--name", "ci-reader"]);
    let brief = create_token(
        a,
        &["--role", "read-only", "--name", "brief", "--expires", "4s"],
    );
    let admin = create_token(a, &["--role", "admin", "--name", "deployer"]);
    let created = Instant::now();

    // Taken names are refused with a reason.
    let again = shoal(
        ADMIN,
        &[
            "token", "create", "--role", "admin", "--name", "deployer", "--server", a,
        ],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));

    // B accepts the token created at A, for reads.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let out = shoal(&reader, &["get", "nodes", "--server", b]);
            out.status.success() && text(&out).contains("tokens-1")
        }),
        "the read-only token never worked at B: {}",
        text(&shoal(&reader, &["get", "nodes", "--server", b]))
    );
    let rc_file = peers.write("rc.yaml", &rc("tokens-zero"));

    // Writes: refused through the CLI, with the role and what is needed.
    let refused = shoal(&reader, &["apply", "-f", &rc_file, "--server", b]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains("read-only") && said.contains("admin"),
        "{said}"
    );

    // ... and through the API: 403 and a JSON body saying the same.
    let (status, _, body) = http(
        "127.0.61.2:7070",
        "POST",
        "/api/v1/rcs",
        &reader,
        &serde_json::to_string(&rc("tokens-zero")).unwrap(),
    );
    assert_eq!(status, 403, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], 403);
    assert!(
        json["error"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
    for (method, path) in [
        ("PUT", "/api/v1/rcs/tokens-zero/scale"),
        ("DELETE", "/api/v1/rcs/tokens-zero"),
        ("POST", "/api/v1/nodes/tokens-1/cordon"),
        ("POST", "/api/v1/images/load"),
        ("GET", "/api/v1/tokens"),
    ] {
        let (status, _, body) = http("127.0.61.2:7070", method, path, &reader, "{}");
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
    let (status, _, _) = http("127.0.61.2:7070", "GET", "/metrics", &reader, "");
    assert_eq!(status, 200, "metrics are a read");

    // The admin token created at A writes at B; the reader then reads it.
    let applied = shoal(&admin, &["apply", "-f", &rc_file, "--server", b]);
    assert!(applied.status.success(), "{}", text(&applied));
    let listed = shoal(&reader, &["get", "rc", "--server", b]);
    assert!(text(&listed).contains("tokens-zero"), "{}", text(&listed));

    // `token list`: no secret, and refused to the reader.
    let list = shoal(ADMIN, &["token", "list", "--server", b]);
    assert!(list.status.success(), "{}", text(&list));
    let list = text(&list);
    for want in ["ci-reader", "read-only", "brief", "deployer", "active"] {
        assert!(list.contains(want), "{want}: {list}");
    }
    assert!(!list.contains(&reader) && !list.contains(&admin), "{list}");
    assert!(
        !shoal(&reader, &["token", "list", "--server", b])
            .status
            .success()
    );

    // Expired: 401 at B, by B's clock.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(created.elapsed()));
    let (status, _, body) = http("127.0.61.2:7070", "GET", "/api/v1/nodes", &brief, "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("expired"), "{body}");
    let list = text(&shoal(ADMIN, &["token", "list", "--server", a]));
    assert!(
        list.lines()
            .any(|l| l.starts_with("brief") && l.contains("expired")),
        "{list}"
    );

    // Revoked at A: 401 at B within seconds.
    let revoke = shoal(ADMIN, &["token", "revoke", "ci-reader", "--server", a]);
    assert!(revoke.status.success(), "{}", text(&revoke));
    assert!(text(&revoke).contains("revoked"), "{}", text(&revoke));
    let revoked_at = Instant::now();
    let mut last = String::new();
    let refused_at_b = wait_until(Duration::from_secs(10), || {
        let (status, _, body) = http("127.0.61.2:7070", "GET", "/api/v1/nodes", &reader, "");
        last = body;
        status == 401
    });
    assert!(
        refused_at_b,
        "still accepted at B 10 s after revoke: {last}"
    );
    assert!(last.contains("revoked"), "{last}");
    eprintln!(
        "revoked at A, refused at B after {:?}",
        revoked_at.elapsed()
    );
    // The name of a revoked token is not reused.
    let reuse = shoal(
        ADMIN,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "ci-reader",
            "--server",
            b,
        ],
    );
    assert!(!reuse.status.success());
    assert!(text(&reuse).contains("revoked"), "{}", text(&reuse));
    // A made-up token is still refused; the admin token still works.
    let (status, _, _) = http("127.0.61.2:7070", "GET", "/api/v1/nodes", "nope", "");
    assert_eq!(status, 401);
    assert!(
        shoal(&admin, &["get", "nodes", "--server", b])
            .status
            .success()
    );
}

#[test]
fn kubectl_with_a_read_only_token_lists_and_is_forbidden_to_scale() {
    if !kubectl_present() {
        eprintln!("kubectl is not installed: skipping the kubectl read-only test");
        return;
    }
    let mut peers = Peers::new("kubectl");
    let data = peers.up(3, &["--api-tls"]);
    let server = "https://127.0.61.3:7070";
    let insecure = ["--server", server, "--insecure-skip-tls-verify"];
    assert!(
        wait_until(Duration::from_secs(60), || shoal(
            ADMIN,
            &[&["get", "nodes"][..], &insecure].concat()
        )
        .status
        .success()),
        "peer never answered"
    );
    let ca = shoal(
        ADMIN,
        &["ca", "print", "--data-dir", data.to_str().unwrap()],
    );
    assert!(ca.status.success(), "{}", text(&ca));
    let ca_file = peers.write("ca.pem", &String::from_utf8_lossy(&ca.stdout));
    let verified = ["--server", server, "--ca-file", &ca_file];
    let rc_file = peers.write("rc.yaml", &rc("kube-ro"));
    let applied = shoal(ADMIN, &[&["apply", "-f", &rc_file][..], &verified].concat());
    assert!(applied.status.success(), "{}", text(&applied));
    let reader = create_token(
        server,
        &[
            "--role",
            "read-only",
            "--name",
            "kube-reader",
            "--ca-file",
            &ca_file,
        ],
    );

    let config = shoal(&reader, &[&["kubeconfig"][..], &verified].concat());
    assert!(config.status.success(), "{}", text(&config));
    let kubeconfig = peers.write("kubeconfig", &String::from_utf8_lossy(&config.stdout));
    let home = peers.dir.join("kubectl-home");
    std::fs::create_dir_all(&home).unwrap();
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(args)
            .arg("--cache-dir")
            .arg(peers.dir.join("kubectl-cache"))
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", &home)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("run kubectl")
    };
    let pods = kubectl(&["get", "pods"]);
    assert!(pods.status.success(), "{}", text(&pods));
    let rcs = kubectl(&["get", "rc", "kube-ro"]);
    assert!(rcs.status.success(), "{}", text(&rcs));
    assert!(text(&rcs).contains("kube-ro"), "{}", text(&rcs));

    let scale = kubectl(&["scale", "rc", "kube-ro", "--replicas", "2"]);
    assert!(!scale.status.success(), "{}", text(&scale));
    let said = text(&scale);
    assert!(said.contains("Error from server (Forbidden)"), "{said}");
    assert!(said.contains("read-only"), "{said}");
    let delete = kubectl(&["delete", "rc", "kube-ro"]);
    assert!(
        text(&delete).contains("Error from server (Forbidden)"),
        "{}",
        text(&delete)
    );
    // Still there, still at 0.
    let replicas = kubectl(&["get", "rc", "kube-ro", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(text(&replicas).trim(), "0", "{}", text(&replicas));
}

#[test]
fn the_dashboard_reads_with_a_read_only_token_and_says_why_a_write_is_refused() {
    let mut peers = Peers::new("dashboard");
    peers.up(5, &[]);
    let server = "http://127.0.61.5:7070";
    assert!(
        wait_until(Duration::from_secs(60), || shoal(
            ADMIN,
            &["get", "nodes", "--server", server]
        )
        .status
        .success()),
        "peer never answered"
    );
    let rc_file = peers.write("rc.yaml", &rc("dash-ro"));
    let applied = shoal(ADMIN, &["apply", "-f", &rc_file, "--server", server]);
    assert!(applied.status.success(), "{}", text(&applied));
    let reader = create_token(server, &["--role", "read-only", "--name", "dash-reader"]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/dashboard/check_read_only.py"
    );
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-read-only.png");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("{server}/ui"))
        .arg(&reader)
        .arg("dash-ro")
        .arg(&screenshot)
        .output()
        .expect("run the selenium script (see .ci/run for its packages)");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("REFUSED") && said.contains("read-only"),
        "{said}"
    );
    eprintln!("dashboard: {}", said.trim());
}

#[test]
fn one_client_is_held_to_its_rate_and_connections_and_served_again() {
    let mut peers = Peers::new("limits");
    peers.up(4, &["--api-max-connections", "8"]);
    let addr = "127.0.61.4:7070";
    assert!(
        wait_until(Duration::from_secs(60), || http(
            addr,
            "GET",
            "/api/v1/healthz",
            ADMIN,
            ""
        )
        .0 == 200),
        "peer never answered"
    );
    // Let the bucket fill after the polling above.
    std::thread::sleep(Duration::from_secs(3));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ok, limited, retry_after) = runtime.block_on(async {
        // One client, few connections (kept alive), 500 requests fast.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut ok = 0;
        let mut limited = 0;
        let mut retry_after = None;
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..500 {
            let client = client.clone();
            batch.spawn(async move {
                client
                    .get(format!("http://{addr}/api/v1/healthz"))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .unwrap()
            });
            if batch.len() >= 4 {
                let r = batch.join_next().await.unwrap().unwrap();
                tally(r, &mut ok, &mut limited, &mut retry_after).await;
            }
        }
        while let Some(r) = batch.join_next().await {
            tally(r.unwrap(), &mut ok, &mut limited, &mut retry_after).await;
        }
        (ok, limited, retry_after)
    });
    eprintln!("500 requests: {ok} served, {limited} answered 429 (Retry-After {retry_after:?})");
    assert!(limited > 0, "no 429 in a burst of 500");
    assert!(ok >= 200, "the burst allowance was not served: {ok}");
    let wait: u64 = retry_after.expect("429 without Retry-After");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");

    // After waiting as told, a normal client is served.
    std::thread::sleep(Duration::from_secs(wait));
    let (status, _, body) = http(addr, "GET", "/api/v1/nodes", ADMIN, "");
    assert_eq!(status, 200, "{body}");

    // Connections: 8 held open, the 9th gets 429 and is closed.
    let held = hold_counted_connections(addr, 8);
    let (status, head, body) = http(addr, "GET", "/api/v1/healthz", ADMIN, "");
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert!(body.contains("too many connections"), "{body}");
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || http(
            addr,
            "GET",
            "/api/v1/healthz",
            ADMIN,
            ""
        )
        .0 == 200),
        "not served after closing the held connections"
    );
}

/// `n` open connections to `addr`, each served once (keep-alive), so the
/// server counts every one of them. A connection accepted while one of
/// this test's earlier connections was still counted (the server had not
/// yet seen it close) is marked over the cap for good: it is dropped and
/// opened again.
fn hold_counted_connections(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::{BufRead, BufReader, Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = Vec::new();
    while held.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} connections counted",
            held.len()
        );
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET /api/v1/healthz HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        reader.read_exact(&mut vec![0; length]).unwrap();
        match status.as_str() {
            "200" => held.push(stream),
            "429" => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("held connection answered {other}"),
        }
    }
    held
}

async fn tally(
    response: reqwest::Response,
    ok: &mut u32,
    limited: &mut u32,
    retry_after: &mut Option<u64>,
) {
    match response.status().as_u16() {
        200 => *ok += 1,
        429 => {
            *limited += 1;
            let header = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            *retry_after = retry_after.or(header);
            let body = response.text().await.unwrap();
            assert!(body.contains("too many requests"), "{body}");
        }
        other => panic!("unexpected status {other}"),
    }
}
