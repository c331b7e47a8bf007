//! The rollout routes over real peer cores (two peers, real SWIM and CRDT
//! sync, the test world standing in for the engine): status, history at
//! both peers, undo, pause, resume, restart, and each refusal with the
//! status and message a user acts on.

mod api_support;

use std::time::Duration;

use api_support::{EXAMPLE, TestNode, client, eventually, start_cluster};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shoal::shell::api::ErrorBody;
use shoal::shell::api::models::{CommandResponse, RolloutHistoryJson, RolloutStatusJson};

async fn post(node: &TestNode, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/api/v1{path}", node.url))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get<T: serde::de::DeserializeOwned>(node: &TestNode, path: &str) -> (StatusCode, T) {
    let response = client()
        .get(format!("{}/api/v1{path}", node.url))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// `(revision, image, current)` of each revision at `node`.
async fn revisions(node: &TestNode) -> Vec<(u64, String, bool)> {
    let (status, h): (_, RolloutHistoryJson) = get(node, "/rcs/hello/rollout/history").await;
    assert_eq!(status, StatusCode::OK);
    h.revisions
        .into_iter()
        .map(|r| (r.revision, r.images[0].clone(), r.current))
        .collect()
}

async fn refused(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    response.json::<ErrorBody>().await.unwrap().error
}

async fn complete(node: &TestNode) -> bool {
    eventually(Duration::from_secs(10), || async {
        let (_, s): (_, RolloutStatusJson) = get(node, "/rcs/hello/rollout").await;
        s.complete
    })
    .await
}

#[tokio::test]
async fn rollout_routes_number_revisions_alike_at_every_peer() {
    let nodes = start_cluster(&["node-a", "node-b"], None).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let created = client()
        .post(format!("{}/api/v1/rcs", a.url))
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(complete(a).await, "hello never rolled out");

    let rolled = post(
        a,
        "/rcs/hello/rolling-update",
        json!({"image": "shoal-test/hello:1.1"}),
    )
    .await;
    assert_eq!(rolled.status(), StatusCode::OK);
    let want = vec![
        (1, "hello=shoal-test/hello:1.0".to_owned(), false),
        (2, "hello=shoal-test/hello:1.1".to_owned(), true),
    ];
    let agreed = eventually(Duration::from_secs(10), || async {
        revisions(b).await == want
    })
    .await;
    assert!(agreed, "node-b history: {:?}", revisions(b).await);
    assert!(complete(b).await);
    let (_, s): (_, RolloutStatusJson) = get(b, "/rcs/hello/rollout").await;
    assert_eq!((s.revision, s.updated_ready, s.total_pods), (2, 2, 2));
    assert!(s.failing.is_empty() && !s.paused);

    // Pause at one peer: the other refuses a second pause.
    let paused = post(a, "/rcs/hello/rollout/pause", json!(null)).await;
    assert_eq!(paused.status(), StatusCode::OK);
    let outcome: CommandResponse = paused.json().await.unwrap();
    assert_eq!(outcome.outcome, "paused");
    let seen = eventually(Duration::from_secs(10), || async {
        let (_, s): (_, RolloutStatusJson) = get(b, "/rcs/hello/rollout").await;
        s.paused
    })
    .await;
    assert!(seen, "node-b never saw the pause");
    let (_, detail): (_, shoal::shell::api::models::RcDetail) = get(b, "/rcs/hello").await;
    assert_eq!((detail.revision, detail.paused), (2, true));
    let again = refused(
        post(b, "/rcs/hello/rollout/pause", json!(null)).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(again.contains("already paused"), "{again}");

    // Undo while paused is written, but no pod moves until resumed.
    let undone = post(b, "/rcs/hello/rollout/undo", json!({})).await;
    assert_eq!(undone.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, s): (_, RolloutStatusJson) = get(a, "/rcs/hello/rollout").await;
    assert_eq!((s.revision, s.updated, s.complete), (3, 0, false), "{s:?}");
    let resumed = post(a, "/rcs/hello/rollout/resume", json!(null)).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    assert!(complete(a).await, "undo never rolled out after resume");
    assert_eq!(
        revisions(a).await.last(),
        Some(&(3, "hello=shoal-test/hello:1.0".to_owned(), true))
    );
    let not_paused = refused(
        post(a, "/rcs/hello/rollout/resume", json!(null)).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(not_paused.contains("not paused"), "{not_paused}");

    let restarted = post(a, "/rcs/hello/rollout/restart", json!(null)).await;
    assert_eq!(restarted.status(), StatusCode::OK);
    assert!(complete(b).await);
    assert_eq!(revisions(b).await.len(), 4);

    let unknown = refused(
        post(a, "/rcs/hello/rollout/undo", json!({"to_revision": 9})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        unknown.contains("no revision 9") && unknown.contains("1, 2, 3, 4"),
        "{unknown}"
    );
    let no_rc = refused(
        post(a, "/rcs/nope/rollout/pause", json!(null)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(no_rc.contains("\"nope\" not found"), "{no_rc}");
    let (status, body): (_, ErrorBody) = get(a, "/rcs/nope/rollout").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.error.contains("shoal get rc"), "{}", body.error);
}
