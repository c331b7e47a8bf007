//! Helpers for the real-engine tests: test images, a per-test cluster id
//! (tests run in parallel threads and share one engine), waiting on
//! observations with bounded timeouts, and cleanup of what a test created.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{ContainerSpec, PodTemplate, PortSpec, Protocol, RestartPolicy};
use shoal_runtime::docker::{DockerRuntime, RuntimeConfig};
use shoal_runtime::vocabulary::{PodEvent, PodObservation, labels};
use tokio::sync::mpsc::Receiver;

pub const HELLO_10: &str = "shoal-test/hello:1.0";
pub const HELLO_11: &str = "shoal-test/hello:1.1";

/// Generous bound for anything the engine does on a slow 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Builds the test images once per test binary if they are missing.
pub fn ensure_test_images() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let present = Command::new("docker")
            .args(["image", "inspect", HELLO_10, HELLO_11])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-images.sh");
            let status = Command::new("bash")
                .arg(script)
                .status()
                .expect("run test-images.sh");
            assert!(status.success(), "scripts/test-images.sh failed");
        }
    });
}

/// A cluster id no other test (or earlier run) uses.
pub fn unique_cluster(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t-{test}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Removes every container labelled with `cluster`, when dropped (also on panic).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label={}={}", labels::CLUSTER, self.0);
        let Ok(out) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

/// Ids of the containers of `cluster` on the engine, running or not.
pub fn containers_of(cluster: &str) -> Vec<String> {
    let filter = format!("label={}={}", labels::CLUSTER, cluster);
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter", &filter])
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

pub async fn connect(cluster: &str, node: u64) -> (DockerRuntime, Receiver<PodObservation>) {
    let config = RuntimeConfig::new(cluster, NodeId(node));
    DockerRuntime::connect(config)
        .await
        .expect("connect to the engine")
}

pub fn pod(rc: &str, index: u32) -> PodId {
    PodId {
        rc: rc.into(),
        index,
    }
}

pub fn container(name: &str, image: &str) -> ContainerSpec {
    ContainerSpec::new(name, image)
}

/// The hello image serving port 80, published on an engine-assigned port.
pub fn hello_template(image: &str) -> PodTemplate {
    let mut web = container("web", image);
    web.ports.push(PortSpec {
        container_port: 80,
        host_port: None,
        protocol: Protocol::Tcp,
        name: None,
    });
    template(vec![web])
}

pub fn template(containers: Vec<ContainerSpec>) -> PodTemplate {
    PodTemplate {
        labels: BTreeMap::from([("app".into(), "hello".into())]),
        containers,
        node_selector: BTreeMap::new(),
        restart_policy: RestartPolicy::Always,
        termination_grace_period_secs: 10,
    }
}

/// Waits (bounded) for an observation of `pod` matching `want`; panics with
/// what was seen instead.
pub async fn wait_for(
    rx: &mut Receiver<PodObservation>,
    pod: &PodId,
    what: &str,
    want: impl Fn(&PodEvent) -> bool,
) -> PodEvent {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(obs)) => {
                if &obs.pod == pod && want(&obs.event) {
                    return obs.event;
                }
                seen.push(obs);
            }
            Ok(None) => panic!("observation channel closed waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("no {what} for {pod} within {PATIENCE:?}; saw {seen:#?}"),
        }
    }
}

pub fn host_port(event: &PodEvent, container_port: u16) -> u16 {
    match event {
        PodEvent::Running { ports } => {
            ports
                .iter()
                .find(|p| p.container_port == container_port)
                .expect("port published")
                .host_port
        }
        other => panic!("expected Running, got {other:?}"),
    }
}

/// GETs `/` on 127.0.0.1:`port`, retrying (bounded) until the server answers.
pub async fn http_get(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s
                .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await;
            let mut body = String::new();
            if s.read_to_string(&mut body).await.is_ok() && body.contains("200") {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "no HTTP answer on port {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
