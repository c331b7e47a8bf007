//! Reads come from immutable snapshots the driver publishes (see
//! `shell/snapshots.rs`): a client reads its own acknowledged writes, and
//! readers holding snapshots never hold up the task that owns the peer.

mod api_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_support::{EXAMPLE, TestNode, client, start_cluster};
use reqwest::StatusCode;
use shoal::peer::Command;
use shoal::shell::api::models::{RcDetail, RcJson};

/// Generous: only there so that a hang fails instead of stalling the run.
const HANG: Duration = Duration::from_secs(120);

fn manifest(replicas: u32, image: &str) -> String {
    EXAMPLE
        .replace("replicas: 2", &format!("replicas: {replicas}"))
        .replace("shoal-test/hello:1.0", image)
}

async fn describe(client: &reqwest::Client, node: &TestNode) -> RcDetail {
    let response = client
        .get(format!("{}/api/v1/rcs/hello", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Lists RCs and pods at `node` until `stop`: keeps the published snapshot
/// current most of the time, so reads take the path without a round trip.
fn poll_until(node: &TestNode, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let (client, url) = (client(), node.url.clone());
    tokio::spawn(async move {
        let mut reads = 0;
        while !stop.load(Ordering::Relaxed) {
            for path in ["rcs", "pods"] {
                let response = client
                    .get(format!("{url}/api/v1/{path}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                reads += 1;
            }
        }
        reads
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_every_write_it_had_acknowledged_while_others_poll() {
    let nodes = start_cluster(&["node-a", "node-b", "node-c"], None).await;
    let node = &nodes[0];
    let client = client();
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = nodes.iter().map(|n| poll_until(n, stop.clone())).collect();

    let created = client
        .post(format!("{}/api/v1/rcs", node.url))
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    for round in 1..=200u32 {
        // Scale, then read at once: the answer said it was done.
        let scaled = client
            .put(format!("{}/api/v1/rcs/hello/scale", node.url))
            .json(&serde_json::json!({ "replicas": round % 5 + 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(scaled.status(), StatusCode::OK);
        let seen = describe(&client, node).await;
        assert_eq!(seen.rc.replicas, round % 5 + 1, "round {round}: scale");
        let listed: Vec<RcJson> = client
            .get(format!("{}/api/v1/rcs", node.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed[0].replicas, round % 5 + 1, "round {round}: list");

        // Apply a new image and count, then read at once.
        let image = format!("shoal-test/hello:1.{round}");
        let applied = client
            .post(format!("{}/api/v1/rcs", node.url))
            .body(manifest(round % 3 + 1, &image))
            .send()
            .await
            .unwrap();
        assert_eq!(applied.status(), StatusCode::OK);
        let seen = describe(&client, node).await;
        assert_eq!(
            (seen.rc.replicas, seen.rc.image.as_str()),
            (round % 3 + 1, image.as_str()),
            "round {round}: apply"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for poller in pollers {
        assert!(poller.await.unwrap() > 0, "the pollers read along");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_holding_snapshots_do_not_hold_up_the_peer() {
    let nodes = start_cluster(&["node-a", "node-b"], None).await;
    let node = &nodes[0];
    node.handle
        .command(Command::Apply(
            shoal_crdt_state::manifest::parse_manifests(EXAMPLE)
                .unwrap()
                .specs
                .remove(0),
        ))
        .await
        .unwrap();
    let held = node.handle.snapshot().await.unwrap();
    assert_eq!(held.state.desired.get("hello").unwrap().replicas, 2);

    // Readers that take snapshots and keep them while the peer works.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (handle, stop) = (node.handle.clone(), stop.clone());
            tokio::spawn(async move {
                let mut kept = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    kept.push(handle.snapshot().await.unwrap());
                    if kept.len() > 50 {
                        kept.remove(0);
                    }
                    tokio::task::yield_now().await;
                }
                kept.len()
            })
        })
        .collect();

    let writes = async {
        for i in 0..1_000u32 {
            let command = Command::Scale {
                name: "hello".to_owned(),
                replicas: i % 4 + 3,
            };
            node.handle.command(command).await.unwrap();
        }
    };
    tokio::time::timeout(HANG, writes)
        .await
        .expect("1,000 writes were answered while readers held snapshots");
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    assert_eq!(
        held.state.desired.get("hello").unwrap().replicas,
        2,
        "a held snapshot keeps what it saw"
    );
    let latest = node.handle.snapshot().await.unwrap();
    assert_eq!(
        latest.state.desired.get("hello").unwrap().replicas,
        999 % 4 + 3
    );
}
