//! The real `kubectl` against peers that serve their API over HTTPS
//! (`shoal up --api-tls`) and require an API token: the kubeconfig `shoal
//! kubeconfig` writes (https server, the cluster CA inline, the token) is
//! all kubectl needs; one with another cluster's CA fails with kubectl's
//! own x509 error, and one without the token is refused.
//!
//! Real `shoal up` processes on 127.0.49.x; no container is started (an RC
//! with zero replicas is enough to show writes and reads through kubectl).
//! Skipped, with a message, when kubectl is absent.

mod up_support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use shoal_gossip::quic::{ClusterIssuer, JoinToken};
use up_support::{UpProcs, join_token, kubectl_present, shoal_cli, wait_until};

const API_TOKEN: &str = "kube-tls-test-token-0123456789";

/// This test's peers on 127.0.49.x: each with its API on :7070 over TLS,
/// the API token and DNS on :5349.
struct Peers(UpProcs);

impl Peers {
    fn new() -> Peers {
        Peers(UpProcs::new(49, "kubetls", "kubetls"))
    }

    /// Starts peer `n` on 127.0.49.n with its API on :7070 over TLS.
    fn up(&mut self, n: u8, extra: &[&str]) -> PathBuf {
        let api = format!("{}:7070", self.ip(n));
        let common = [
            "--api",
            &api,
            "--api-tls",
            "--api-token",
            API_TOKEN,
            "--dns-port",
            "5349",
        ];
        self.0.up(n, &[&common[..], extra].concat())
    }
}

impl std::ops::Deref for Peers {
    type Target = UpProcs;
    fn deref(&self) -> &UpProcs {
        &self.0
    }
}

/// The CLI with no server, token or TLS settings from the environment.
fn shoal(args: &[&str]) -> Output {
    shoal_cli(None, args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// kubectl with `kubeconfig`, a cache and HOME inside the test's dir (never
/// the user's ~/.kube).
fn kubectl(peers: &Peers, kubeconfig: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .arg("--cache-dir")
        .arg(peers.path("kubectl-cache"))
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", peers.path("kubectl-home"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run kubectl")
}

/// kubectl must succeed without a warning; its stdout.
fn kubectl_ok(peers: &Peers, kubeconfig: &str, args: &[&str]) -> String {
    let out = kubectl(peers, kubeconfig, args);
    assert!(
        out.status.success(),
        "kubectl {} failed:\n{}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    assert_quiet(args, &out);
    stdout(&out)
}

/// No TLS, discovery or OpenAPI warning on stderr.
fn assert_quiet(args: &[&str], out: &Output) {
    let text = stderr(out);
    for line in text.lines() {
        let lower = line.to_lowercase();
        let noisy = [
            "warning",
            "memcache",
            "openapi",
            "discovery",
            "couldn't get",
            "insecure",
        ]
        .iter()
        .any(|w| lower.contains(w));
        assert!(!noisy, "kubectl {} printed: {line}\n{text}", args.join(" "));
    }
}

/// `certificate-authority-data` as a kubeconfig holds it (base64).
fn ca_data(pem: &str) -> String {
    serde_json::to_string(&k8s_openapi::ByteString(pem.as_bytes().to_vec())).unwrap()
}

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: kubetls
spec:
  replicas: 0
  selector:
    app: kubetls
  template:
    metadata:
      labels:
        app: kubetls
    spec:
      containers:
      - name: web
        image: shoal-test/hello:1.0
";

#[test]
fn kubectl_uses_the_verified_ca_and_the_token_of_a_tls_peer() {
    if !kubectl_present() {
        eprintln!("SKIPPED: no kubectl on PATH (.ci/run installs Debian's kubernetes-client)");
        return;
    }
    let mut peers = Peers::new();
    let a_data = peers.up(1, &[]);
    let a = "https://127.0.49.1:7070";
    // The data dir holds the identity (and so the CA) once the peer started.
    assert!(
        wait_until(Duration::from_secs(60), || a_data
            .join("node.json")
            .exists()),
        "peer 1 wrote no node.json"
    );
    let ca = shoal(&["ca", "print", "--data-dir", a_data.to_str().unwrap()]);
    assert!(ca.status.success(), "{}", stderr(&ca));
    let ca_pem = stdout(&ca);
    let ca_file = peers.write("ca.pem", &ca_pem);
    let token = join_token(&a_data);
    peers.up(2, &["--join", "127.0.49.1:7946", "--join-token", &token]);
    let b = "https://127.0.49.2:7070";

    // The CLI, verified, sees both peers alive (through either).
    let verified = |server: &str, verb: &[&str]| -> Output {
        let mut args = verb.to_vec();
        args.extend(["--server", server, "--ca-file", &ca_file]);
        args.extend(["--api-token", API_TOKEN]);
        shoal(&args)
    };
    let both_alive = |server: &str| {
        wait_until(Duration::from_secs(120), || {
            let out = verified(server, &["get", "nodes", "-o", "json"]);
            let nodes: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            out.status.success()
                && nodes
                    .as_array()
                    .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["state"] == "Alive"))
        })
    };
    assert!(
        both_alive(a) && both_alive(b),
        "the two peers never saw each other alive"
    );

    // The kubeconfig of peer 2: https, the CA inline, the token; no warning.
    let out = verified(b, &["kubeconfig", "--name", "shoal-tls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "kubeconfig warned");
    let config = stdout(&out);
    assert!(
        config.contains("server: \"https://127.0.49.2:7070/kube\""),
        "{config}"
    );
    assert!(
        config.contains(&format!("certificate-authority-data: {}", ca_data(&ca_pem))),
        "the kubeconfig does not carry the cluster CA:\n{config}"
    );
    assert!(
        config.contains(&format!("token: \"{API_TOKEN}\"")),
        "{config}"
    );
    let good = peers.write("kubeconfig-good", &config);

    // kubectl, verified against the CA and sending the token.
    let nodes: Value =
        serde_json::from_str(&kubectl_ok(&peers, &good, &["get", "nodes", "-o", "json"])).unwrap();
    let mut names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["kubetls-1", "kubetls-2"], "{nodes}");

    let manifest = peers.write("rc.yaml", RC);
    let applied = kubectl_ok(&peers, &good, &["apply", "-f", &manifest]);
    assert_eq!(applied.trim(), "replicationcontroller/kubetls created");
    let rc: Value = serde_json::from_str(&kubectl_ok(
        &peers,
        &good,
        &["get", "rc", "kubetls", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(rc["kind"], "ReplicationController", "{rc}");
    assert_eq!(rc["metadata"]["name"], "kubetls", "{rc}");
    assert_eq!(rc["spec"]["replicas"], 0, "{rc}");
    assert_eq!(
        rc["spec"]["template"]["spec"]["containers"][0]["image"], "shoal-test/hello:1.0",
        "{rc}"
    );
    // The write went through peer 2 and reached the cluster: peer 1 has it.
    assert!(
        wait_until(Duration::from_secs(60), || {
            let out = verified(a, &["get", "rc", "-o", "json"]);
            stdout(&out).contains("\"kubetls\"")
        }),
        "peer 1 never saw the RC kubectl applied through peer 2"
    );

    // Another cluster's CA: kubectl's own x509 error, nothing sent.
    let other = ClusterIssuer::from_token(&JoinToken::from_seed([49; 32])).unwrap();
    let wrong_config = config.replace(&ca_data(&ca_pem), &ca_data(other.ca_pem()));
    assert_ne!(wrong_config, config);
    let wrong = peers.write("kubeconfig-wrong-ca", &wrong_config);
    let out = kubectl(&peers, &wrong, &["get", "nodes"]);
    assert!(!out.status.success(), "a wrong CA was accepted");
    assert!(
        stderr(&out).contains("x509: certificate signed by unknown authority"),
        "{}",
        stderr(&out)
    );

    // The same kubeconfig with a wrong token: the peer refuses kubectl.
    // (Without any token kubectl would prompt for a username on a 401.)
    let wrong_token = config.replace(
        &format!("token: \"{API_TOKEN}\""),
        "token: \"not-the-token\"",
    );
    assert_ne!(wrong_token, config);
    let wrong_token = peers.write("kubeconfig-wrong-token", &wrong_token);
    let out = kubectl(&peers, &wrong_token, &["get", "rc"]);
    assert!(
        !out.status.success(),
        "a wrong token, yet kubectl was answered"
    );
    assert!(
        stderr(&out).contains("You must be logged in to the server"),
        "{}",
        stderr(&out)
    );

    // Unverified CLI: the kubeconfig skips verification too, and says so.
    let out = shoal(&[
        "kubeconfig",
        "--server",
        a,
        "--insecure-skip-tls-verify",
        "--api-token",
        API_TOKEN,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not verified"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("insecure-skip-tls-verify: true")
            && !stdout(&out).contains("certificate-authority"),
        "{}",
        stdout(&out)
    );
}
