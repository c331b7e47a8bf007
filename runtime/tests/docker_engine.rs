//! The executor and its engine: unreachable engines are clear errors and an
//! unhealthy runtime; readiness probes report changes.
#![cfg(feature = "docker")]

mod support;

use std::time::Duration;

use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::spec::{Probe, ProbeAction};
use shoal_runtime::docker::{DockerRuntime, RuntimeConfig, RuntimeError};
use shoal_runtime::vocabulary::{PodAction, PodEvent, RuntimeHealth};
use support::*;

const NOWHERE: &str = "unix:///nonexistent.sock";

async fn assert_unreachable(
    rt: &DockerRuntime,
    rx: &mut tokio::sync::mpsc::Receiver<shoal_runtime::vocabulary::PodObservation>,
) {
    let RuntimeHealth::Unhealthy(message) = rt.health() else {
        panic!("an engine at {NOWHERE} cannot be healthy");
    };
    assert!(
        message.contains("cannot reach the Docker engine"),
        "{message}"
    );
    assert!(message.contains("/nonexistent.sock"), "{message}");
    assert!(
        message.contains("DOCKER_HOST"),
        "message must say what to do: {message}"
    );

    let err = rt.list_existing().await.unwrap_err();
    assert!(matches!(err, RuntimeError::Unreachable { .. }), "{err:?}");

    let p = pod("hello", 0);
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: hello_template(HELLO_10),
    });
    let event = wait_for(rx, &p, "StartError", |e| {
        matches!(e, PodEvent::StartError(_))
    })
    .await;
    assert!(
        matches!(&event, PodEvent::StartError(m) if m.contains("/nonexistent.sock")),
        "{event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_engine_is_a_clear_error_and_an_unhealthy_runtime() {
    let mut config = RuntimeConfig::new(unique_cluster("nowhere"), NodeId(1));
    config.docker_host = Some(NOWHERE.into());
    let (rt, mut rx) = DockerRuntime::connect(config)
        .await
        .expect("connect never needs the engine");
    assert_unreachable(&rt, &mut rx).await;
}

/// Run by `docker_host_from_the_environment_is_respected` in a child process
/// with DOCKER_HOST set (the environment of this process is shared by parallel tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child of docker_host_from_the_environment_is_respected"]
async fn child_with_docker_host_nowhere() {
    assert_eq!(std::env::var("DOCKER_HOST").as_deref(), Ok(NOWHERE));
    let config = RuntimeConfig::new(unique_cluster("env"), NodeId(1));
    let (rt, mut rx) = DockerRuntime::connect(config).await.unwrap();
    assert_unreachable(&rt, &mut rx).await;
}

#[test]
fn docker_host_from_the_environment_is_respected() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_with_docker_host_nowhere",
            "--ignored",
            "--nocapture",
        ])
        .env("DOCKER_HOST", NOWHERE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reachable_engine_is_healthy() {
    let (rt, _rx) = connect(&unique_cluster("healthy"), 1).await;
    assert_eq!(rt.health(), RuntimeHealth::Healthy);
    assert_eq!(rt.check_health().await, RuntimeHealth::Healthy);
}

fn probe(action: ProbeAction) -> Probe {
    Probe {
        action,
        initial_delay_secs: 0,
        period_secs: 1,
        timeout_secs: 1,
        failure_threshold: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probe_reports_ready_then_unready_when_the_page_goes_away() {
    ensure_test_images();
    let cluster = unique_cluster("httpprobe");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;
    let p = pod("probed", 0);
    let mut t = hello_template(HELLO_10);
    t.containers[0].readiness_probe = Some(probe(ProbeAction::HttpGet {
        path: "/index.html".into(),
        port: 80,
    }));
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: t,
    });
    wait_for(&mut rx, &p, "Ready(true)", |e| *e == PodEvent::Ready(true)).await;

    // Break the page from outside: the probe now gets a 404.
    let id = containers_of(&cluster).remove(0);
    let status = std::process::Command::new("docker")
        .args(["exec", &id, "rm", "/www/index.html"])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(&mut rx, &p, "Ready(false)", |e| {
        *e == PodEvent::Ready(false)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_tcp_probes_gate_readiness() {
    ensure_test_images();
    let cluster = unique_cluster("execprobe");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;
    let p = pod("gated", 0);
    let mut t = hello_template(HELLO_10);
    t.containers[0].readiness_probe = Some(probe(ProbeAction::Exec {
        command: vec!["test".into(), "-f".into(), "/tmp/ready".into()],
    }));
    let mut side = container("side", HELLO_10);
    side.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "trap 'exit 0' TERM; sleep 3600 & wait".into(),
    ];
    side.readiness_probe = Some(probe(ProbeAction::TcpSocket { port: 80 }));
    t.containers.push(side);
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: t,
    });
    wait_for(&mut rx, &p, "Running", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await;

    // Not ready while /tmp/ready is missing: watch a few probe periods.
    let early = tokio::time::timeout(Duration::from_secs(3), async {
        wait_for(&mut rx, &p, "Ready", |e| matches!(e, PodEvent::Ready(_))).await
    })
    .await;
    assert!(
        early.is_err(),
        "ready before the exec probe could pass: {early:?}"
    );

    let web = {
        let out = std::process::Command::new("docker")
            .args(["ps", "-q", "--no-trunc", "--filter"])
            .arg(format!("label=io.shoal.cluster={cluster}"))
            .args(["--filter", "label=io.shoal.container=web"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let status = std::process::Command::new("docker")
        .args(["exec", &web, "touch", "/tmp/ready"])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(&mut rx, &p, "Ready(true)", |e| *e == PodEvent::Ready(true)).await;
}
