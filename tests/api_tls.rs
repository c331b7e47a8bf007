//! TLS on the API and certificates that expire, with real `shoal up`
//! processes on 127.0.47.x and the real CLI.
//!
//! "Off loopback" in a test: every 127.0.47.x address is loopback, so peer A
//! is started with `--api-tls` (forcing the TLS an off-loopback bind gets),
//! and peer B binds its API to `0.0.0.0:27070`, a real non-loopback bind,
//! which gets TLS by the rule itself. The port is below the kernel's
//! ephemeral range: a wildcard bind there can collide with any outgoing
//! socket or engine port proxy of the machine (CI saw it fail). No container is started: an RC with
//! zero replicas is enough to show that state still syncs.

mod up_support;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use up_support::{UpProcs, join_token, shoal_cli, text};

use shoal_gossip::quic::{ClusterIssuer, JoinToken};

const API_TOKEN: &str = "api-tls-test-token-0123456789";
/// Short enough that the test outlives several certificates.
const CERT_VALIDITY: &str = "6s";

/// This test's peers on 127.0.47.x: each with the API token, certificates
/// that expire within seconds and DNS on :5347.
struct Peers(UpProcs);

impl Peers {
    fn new(name: &str) -> Peers {
        Peers(UpProcs::new(47, "apitls", &format!("apitls-{name}")))
    }

    /// Starts `shoal up` for peer `n` on 127.0.47.n with `extra` flags.
    fn up(&mut self, n: u8, extra: &[&str]) -> PathBuf {
        let common = [
            "--dns-port",
            "5347",
            "--api-token",
            API_TOKEN,
            "--cert-validity",
            CERT_VALIDITY,
        ];
        self.0.up(n, &[&common[..], extra].concat())
    }

    /// Runs the CLI until it succeeds and shows `want`; on timeout the
    /// failure carries every peer's log, which says why a peer never served.
    fn eventually(&self, args: &[&str], want: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let output = shoal(args);
            let said = text(&output);
            if output.status.success() && said.contains(want) {
                return said;
            }
            if Instant::now() >= deadline {
                let logs: String = (1..=self.len() as u8)
                    .map(|n| format!("--- peer {n} log:\n{}\n", self.log(n)))
                    .collect();
                panic!(
                    "`shoal {}` did not show {want:?} within {within:?}; last said:\n{said}\n{logs}",
                    args.join(" ")
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl std::ops::Deref for Peers {
    type Target = UpProcs;
    fn deref(&self) -> &UpProcs {
        &self.0
    }
}

/// The CLI with the API token and no TLS settings from the environment.
fn shoal(args: &[&str]) -> Output {
    shoal_cli(Some(API_TOKEN), args)
}

/// A plain HTTP/1.0 GET with the API token; the whole answer.
fn plain_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {API_TOKEN}\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: apitls-zero
spec:
  replicas: 0
  selector:
    app: apitls-zero
  template:
    metadata:
      labels:
        app: apitls-zero
    spec:
      containers:
        - name: c
          image: shoal-test/hello:1.0
";

#[test]
fn api_speaks_only_tls_off_loopback_and_certificates_renew() {
    let mut peers = Peers::new("main");
    let a_data = peers.up(1, &["--api", "127.0.47.1:7070", "--api-tls"]);
    let a = "https://127.0.47.1:7070";
    let insecure = ["--server", a, "--insecure-skip-tls-verify"];
    peers.eventually(
        &[&["get", "nodes"][..], &insecure].concat(),
        "apitls-1",
        Duration::from_secs(90),
    );

    // The CA comes from the data dir, on the peer's machine.
    let ca = shoal(&["ca", "print", "--data-dir", a_data.to_str().unwrap()]);
    assert!(ca.status.success(), "{}", text(&ca));
    let ca_file = peers.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.stdout).unwrap();
    let ca_path = ca_file.to_str().unwrap();
    let verified = ["--server", a, "--ca-file", ca_path];

    let ok = shoal(&[&["get", "nodes"][..], &verified].concat());
    assert!(ok.status.success(), "with the CA: {}", text(&ok));
    assert!(text(&ok).contains("apitls-1"), "{}", text(&ok));

    // Another cluster's CA: refused, and the message says why.
    let other = ClusterIssuer::from_token(&JoinToken::from_seed([47; 32])).unwrap();
    let wrong_file = peers.dir.join("wrong-ca.pem");
    std::fs::write(&wrong_file, other.ca_pem()).unwrap();
    let wrong = shoal(&[
        "get",
        "nodes",
        "--server",
        a,
        "--ca-file",
        wrong_file.to_str().unwrap(),
    ]);
    assert!(!wrong.status.success());
    assert!(text(&wrong).contains("did not sign"), "{}", text(&wrong));

    // No CA and no insecure flag: refused before connecting.
    let bare = shoal(&["get", "nodes", "--server", a]);
    assert!(!bare.status.success());
    assert!(text(&bare).contains("--ca-file"), "{}", text(&bare));

    // The environment variable works like the flag.
    let by_env = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["get", "nodes", "--server", a])
        .env("SHOAL_API_TOKEN", API_TOKEN)
        .env("SHOAL_INSECURE_SKIP_TLS_VERIFY", "1")
        .output()
        .unwrap();
    assert!(by_env.status.success(), "{}", text(&by_env));

    // Plain HTTP on the TLS port: a clear refusal, not a reset.
    let plain = shoal(&["get", "nodes", "--server", "http://127.0.47.1:7070"]);
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("speaks only HTTPS"),
        "{}",
        text(&plain)
    );

    // Peer B binds its API off loopback (0.0.0.0) without --api-tls: TLS
    // by the rule. Its certificate names its advertised address.
    let token = join_token(&a_data);
    peers.up(
        2,
        &[
            "--api",
            "0.0.0.0:27070",
            "--join",
            "127.0.47.1:7946",
            "--join-token",
            &token,
        ],
    );
    let b = "https://127.0.47.2:27070";
    let b_verified = ["--server", b, "--ca-file", ca_path];
    peers.eventually(
        &[&["get", "nodes"][..], &b_verified].concat(),
        "apitls-1",
        Duration::from_secs(90),
    );
    let refused = shoal(&["get", "nodes", "--server", "http://127.0.47.2:27070"]);
    assert!(
        text(&refused).contains("speaks only HTTPS"),
        "{}",
        text(&refused)
    );

    // Outlive several certificates (validity 6 s, renewed every 3 s).
    std::thread::sleep(Duration::from_secs(20));

    // New API handshakes still verify: the certificate was renewed.
    let later = shoal(&[&["get", "nodes"][..], &verified].concat());
    assert!(
        later.status.success(),
        "after expiry of the first certificate: {}",
        text(&later)
    );

    // Existing members keep syncing over their QUIC connections.
    let rc_file = peers.dir.join("rc.yaml");
    std::fs::write(&rc_file, RC).unwrap();
    let applied = shoal(&[&["apply", "-f", rc_file.to_str().unwrap()][..], &verified].concat());
    assert!(applied.status.success(), "{}", text(&applied));
    peers.eventually(
        &[&["get", "rc"][..], &b_verified].concat(),
        "apitls-zero",
        Duration::from_secs(60),
    );

    // A new peer handshakes with both, whose first certificates expired.
    peers.up(
        3,
        &[
            "--api",
            "127.0.47.3:7070",
            "--join",
            "127.0.47.2:7946",
            "--join-token",
            &token,
        ],
    );
    let said = peers.eventually(
        &["get", "nodes", "--server", "http://127.0.47.3:7070"],
        "apitls-1",
        Duration::from_secs(90),
    );
    assert!(said.contains("apitls-2"), "{said}");
    peers.eventually(
        &["get", "rc", "--server", "http://127.0.47.3:7070"],
        "apitls-zero",
        Duration::from_secs(60),
    );
    // Every peer serves the same CA, also over plain HTTP on loopback.
    let served = plain_get("127.0.47.3:7070", "/api/v1/ca");
    assert!(served.starts_with("HTTP/1.0 200"), "{served}");
    assert!(
        served.ends_with(&String::from_utf8_lossy(&ca.stdout).to_string()),
        "{served}"
    );

    for n in 1..=3 {
        assert!(
            !peers.log(n).contains("certificate renewal failed"),
            "peer {n}:\n{}",
            peers.log(n)
        );
    }
}
