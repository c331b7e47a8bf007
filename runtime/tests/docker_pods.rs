//! Real pods on the real engine: start, serve, die, restart, stop, adopt,
//! share a network, log. Each test uses its own cluster id and removes only
//! the containers carrying it.
#![cfg(feature = "docker")]

mod support;

use std::time::{Duration, Instant};

use bollard::query_parameters::KillContainerOptions;
use shoal_crdt_state::spec::{PortSpec, Protocol};
use shoal_runtime::backoff::RestartBackoff;
use shoal_runtime::vocabulary::{PodAction, PodEvent};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_pod_serves_its_page_on_the_published_port() {
    ensure_test_images();
    let cluster = unique_cluster("serve");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;
    let p = pod("hello", 0);

    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: hello_template(HELLO_10),
    });
    wait_for(&mut rx, &p, "Created", |e| *e == PodEvent::Created).await;
    let running = wait_for(&mut rx, &p, "Running", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await;
    let body = http_get(host_port(&running, 80)).await;
    assert!(body.contains("hello from 1.0"), "unexpected page: {body}");
    wait_for(&mut rx, &p, "Ready(true)", |e| *e == PodEvent::Ready(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_container_is_reported_exited_and_a_restart_brings_it_back() {
    ensure_test_images();
    let cluster = unique_cluster("kill");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;
    let p = pod("hello", 1);
    let template = hello_template(HELLO_11);
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: template.clone(),
    });
    wait_for(&mut rx, &p, "Running", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await;
    let before = containers_of(&cluster);
    assert_eq!(before.len(), 1);

    // Killed from outside, as an operator or the OOM killer would.
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let kill = KillContainerOptions {
        signal: "SIGKILL".into(),
    };
    docker.kill_container(&before[0], Some(kill)).await.unwrap();
    let exited = wait_for(&mut rx, &p, "Exited", |e| {
        matches!(e, PodEvent::Exited { .. })
    })
    .await;
    assert_eq!(
        exited,
        PodEvent::Exited {
            code: 137,
            oom_killed: false
        }
    );

    // The core's decision, played by the test: first crash restarts at once.
    tokio::time::sleep(RestartBackoff::default().delay(1)).await;
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template,
    });
    let running = wait_for(&mut rx, &p, "Running again", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await;
    let body = http_get(host_port(&running, 80)).await;
    assert!(body.contains("hello from 1.1"), "unexpected page: {body}");
    assert_eq!(
        containers_of(&cluster),
        before,
        "restart must not duplicate the pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_the_grace_period_only_for_a_pod_that_ignores_sigterm() {
    ensure_test_images();
    let cluster = unique_cluster("grace");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;

    // `sleep` as PID 1 has no SIGTERM handler, so the kernel ignores the signal.
    let mut stubborn = container("stubborn", HELLO_10);
    stubborn.command = vec!["/bin/sleep".into(), "3600".into()];
    let stubborn_template = template(vec![stubborn]);
    let polite_template = hello_template(HELLO_10);
    let (stubborn_pod, polite_pod) = (pod("stubborn", 0), pod("polite", 0));
    for (p, t) in [
        (&stubborn_pod, &stubborn_template),
        (&polite_pod, &polite_template),
    ] {
        rt.execute(PodAction::Start {
            pod: p.clone(),
            template: t.clone(),
        });
        wait_for(&mut rx, p, "Running", |e| {
            matches!(e, PodEvent::Running { .. })
        })
        .await;
    }

    // Long enough that a loaded machine's slow stop of the polite pod is
    // still told apart from waiting out the grace period.
    let grace = Duration::from_secs(8);
    let started = Instant::now();
    rt.execute(PodAction::Stop {
        pod: polite_pod.clone(),
        template_hash: polite_template.hash(),
        grace,
    });
    wait_for(&mut rx, &polite_pod, "Removed", |e| *e == PodEvent::Removed).await;
    let polite = started.elapsed();

    let started = Instant::now();
    rt.execute(PodAction::Stop {
        pod: stubborn_pod.clone(),
        template_hash: stubborn_template.hash(),
        grace,
    });
    wait_for(&mut rx, &stubborn_pod, "Removed", |e| {
        *e == PodEvent::Removed
    })
    .await;
    let stubborn = started.elapsed();

    assert!(
        polite < grace / 2,
        "SIGTERM-handling pod took {polite:?}, as if it waited out the {grace:?} grace period"
    );
    assert!(
        stubborn >= grace - Duration::from_millis(200),
        "pod ignoring SIGTERM was killed early: {stubborn:?}"
    );
    assert!(
        stubborn < grace + Duration::from_secs(10),
        "stop took {stubborn:?}"
    );
    assert!(
        containers_of(&cluster).is_empty(),
        "stop must remove the containers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_executor_adopts_the_running_pod_without_duplicating_it() {
    ensure_test_images();
    let cluster = unique_cluster("adopt");
    let _cleanup = Cleanup(cluster.clone());
    let p = pod("hello", 2);
    let template = hello_template(HELLO_10);
    let first_ports = {
        let (rt, mut rx) = connect(&cluster, 7).await;
        rt.execute(PodAction::Start {
            pod: p.clone(),
            template: template.clone(),
        });
        let running = wait_for(&mut rx, &p, "Running", |e| {
            matches!(e, PodEvent::Running { .. })
        })
        .await;
        match running {
            PodEvent::Running { ports } => ports,
            _ => unreachable!(),
        }
        // The executor (the peer) goes away here; its containers stay.
    };
    let before = containers_of(&cluster);

    let (rt, mut rx) = connect(&cluster, 7).await;
    let existing = rt.list_existing().await.unwrap();
    assert_eq!(existing.len(), 1, "{existing:?}");
    assert_eq!(existing[0].pod, p);
    assert_eq!(existing[0].template_hash, template.hash());
    assert!(existing[0].running);
    assert_eq!(existing[0].ports, first_ports);

    rt.execute(PodAction::Start {
        pod: p.clone(),
        template,
    });
    let running = wait_for(&mut rx, &p, "Running (adopted)", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await;
    assert_eq!(running, PodEvent::Running { ports: first_ports });
    assert_eq!(
        containers_of(&cluster),
        before,
        "adoption must not create containers"
    );

    // Another node of the same cluster on the same engine sees none of it.
    let (other, _rx) = connect(&cluster, 8).await;
    assert!(other.list_existing().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_an_image_error_with_the_engines_message() {
    ensure_test_images();
    let cluster = unique_cluster("noimage");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;
    let p = pod("ghost", 0);
    let template = hello_template("shoal-test/does-not-exist:0.0");
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: template.clone(),
    });
    let event = wait_for(&mut rx, &p, "ImageError", |e| {
        matches!(
            e,
            PodEvent::ImageError(_) | PodEvent::StartError(_) | PodEvent::Running { .. }
        )
    })
    .await;
    let PodEvent::ImageError(message) = event else {
        panic!("expected ImageError, got {event:?}");
    };
    let prefix = "pull shoal-test/does-not-exist:0.0: ";
    assert!(message.starts_with(prefix), "{message}");
    assert!(
        message.len() > prefix.len() + 10,
        "no engine message: {message}"
    );
    assert!(containers_of(&cluster).is_empty());

    // A second start right away backs off instead of pulling again.
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template,
    });
    let again = wait_for(&mut rx, &p, "ImageError", |e| {
        matches!(e, PodEvent::ImageError(_))
    })
    .await;
    assert!(
        matches!(&again, PodEvent::ImageError(m) if m.contains("back-off")),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_localhost_and_their_logs_are_readable() {
    ensure_test_images();
    let cluster = unique_cluster("shared");
    let _cleanup = Cleanup(cluster.clone());
    let (rt, mut rx) = connect(&cluster, 1).await;
    let p = pod("duo", 0);
    let mut web = container("web", HELLO_11);
    web.ports.push(PortSpec {
        container_port: 80,
        host_port: None,
        protocol: Protocol::Tcp,
        name: None,
    });
    let mut client = container("client", HELLO_11);
    client.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "trap 'exit 0' TERM; echo client-started >&2; \
         until wget -q -O - http://127.0.0.1:80/; do sleep 0.2; done; \
         sleep 3600 & wait"
            .into(),
    ];
    rt.execute(PodAction::Start {
        pod: p.clone(),
        template: template(vec![web, client]),
    });
    wait_for(&mut rx, &p, "Running", |e| {
        matches!(e, PodEvent::Running { .. })
    })
    .await;
    assert_eq!(containers_of(&cluster).len(), 2);

    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let stream = rt.logs(&p, Some("client"), false).await.unwrap();
        let chunks: Vec<_> = futures_util::StreamExt::collect(stream).await;
        let text: String = chunks
            .into_iter()
            .map(|c| String::from_utf8_lossy(&c.unwrap()).into_owned())
            .collect();
        if text.contains("hello from 1.1") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        text.contains("client-started"),
        "stderr missing from logs: {text:?}"
    );
    assert!(
        text.contains("hello from 1.1"),
        "second container could not reach the first on 127.0.0.1: {text:?}"
    );

    // Following the first container's log stays open: read it with a bound.
    let mut follow = rt.logs(&p, None, true).await.unwrap();
    let next = tokio::time::timeout(
        Duration::from_millis(500),
        futures_util::StreamExt::next(&mut follow),
    )
    .await;
    assert!(
        next.is_err(),
        "httpd prints nothing, so a followed log must wait: {next:?}"
    );
}
