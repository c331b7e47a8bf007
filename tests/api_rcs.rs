//! The HTTP API over a real peer core: apply, read, scale, roll, delete,
//! and every refusal with the status and message a user acts on.

mod api_support;

use std::time::Duration;

use api_support::{EXAMPLE, TestNode, client, eventually, start_cluster};
use reqwest::StatusCode;
use serde_json::Value;
use shoal::shell::api::ErrorBody;
use shoal::shell::api::models::{ApplyResponse, PodJson, RcDetail, RcJson};

async fn apply(node: &TestNode, text: &str) -> reqwest::Response {
    client()
        .post(format!("{}/api/v1/rcs", node.url))
        .body(text.to_owned())
        .send()
        .await
        .unwrap()
}

async fn get_json<T: serde::de::DeserializeOwned>(node: &TestNode, path: &str) -> (StatusCode, T) {
    let response = client()
        .get(format!("{}/api/v1{path}", node.url))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn one_node() -> TestNode {
    start_cluster(&["node-a"], None).await.remove(0)
}

#[tokio::test]
async fn applying_the_example_creates_the_rc_and_its_pods_come_up() {
    let node = one_node().await;
    let response = apply(&node, EXAMPLE).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: ApplyResponse = response.json().await.unwrap();
    assert_eq!(body.applied.len(), 1);
    assert_eq!(body.applied[0].name, "hello");
    assert_eq!(body.applied[0].outcome, "created");

    let (status, rcs): (_, Vec<RcJson>) = get_json(&node, "/rcs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rcs.len(), 1);
    assert_eq!(rcs[0].name, "hello");
    assert_eq!(rcs[0].replicas, 2);
    assert_eq!(rcs[0].image, "shoal-test/hello:1.0");
    assert_eq!(
        rcs[0].selector.get("app").map(String::as_str),
        Some("hello")
    );

    let up = eventually(Duration::from_secs(5), || async {
        let (_, rcs): (_, Vec<RcJson>) = get_json(&node, "/rcs").await;
        rcs[0].running == 2 && rcs[0].ready == 2
    })
    .await;
    assert!(up, "both replicas reported running and ready");
    let (_, pods): (_, Vec<PodJson>) = get_json(&node, "/pods?rc=hello").await;
    let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["hello-0", "hello-1"]);
    assert!(
        pods.iter()
            .all(|p| p.node == "node-a" && p.phase == "Running" && p.current)
    );

    // The same manifest again changes nothing.
    let again = apply(&node, EXAMPLE).await;
    assert_eq!(again.status(), StatusCode::OK);
    let body: ApplyResponse = again.json().await.unwrap();
    assert_eq!(body.applied[0].outcome, "unchanged");
}

#[tokio::test]
async fn list_json_shapes_keep_their_field_names() {
    let node = one_node().await;
    assert_eq!(apply(&node, EXAMPLE).await.status(), StatusCode::CREATED);
    let (_, rcs): (_, Value) = get_json(&node, "/rcs").await;
    let keys: Vec<&str> = rcs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "created_ms",
            "image",
            "name",
            "ready",
            "replicas",
            "running",
            "selector"
        ]
    );
    // Stamped by the apply above, on this machine's clock.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let created = rcs[0]["created_ms"].as_u64().unwrap();
    assert!(
        created <= now_ms && now_ms - created < 60_000,
        "{created} vs {now_ms}"
    );
    let (_, nodes): (_, Value) = get_json(&node, "/nodes").await;
    let row = nodes[0].as_object().unwrap();
    for key in [
        "name",
        "id",
        "address",
        "state",
        "ready",
        "pods",
        "labels",
        "cpu",
        "memory",
        "started_ms",
    ] {
        assert!(row.contains_key(key), "nodes row lacks {key}: {row:?}");
    }
    assert_eq!(row["state"], "Alive");
    assert_eq!(row["cpu"], "2");
    assert_eq!(row["memory"], "4Gi");
    let pods_up = eventually(Duration::from_secs(5), || async {
        let (_, pods): (_, Value) = get_json(&node, "/pods").await;
        pods.as_array().is_some_and(|p| p.len() == 2)
    })
    .await;
    assert!(pods_up);
    let (_, pods): (_, Value) = get_json(&node, "/pods").await;
    let row = pods[0].as_object().unwrap();
    for key in [
        "name",
        "rc",
        "node",
        "image",
        "phase",
        "ready",
        "restarts",
        "ip",
        "ports",
        "last_error",
    ] {
        assert!(row.contains_key(key), "pods row lacks {key}: {row:?}");
    }
}

#[tokio::test]
async fn malformed_yaml_is_a_400_that_names_the_line() {
    let node = one_node().await;
    let response = apply(
        &node,
        "kind: ReplicationController\nspec: [unclosed\n  replicas: 2\n",
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.status, 400);
    assert!(body.problems.iter().any(|p| p.line.is_some()), "{body:?}");
    assert!(body.error.contains("line"), "{}", body.error);
    let (_, rcs): (_, Vec<RcJson>) = get_json(&node, "/rcs").await;
    assert!(rcs.is_empty(), "nothing applied");
}

#[tokio::test]
async fn a_selector_that_misses_the_template_is_a_422_naming_selector() {
    let node = one_node().await;
    let bad = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/bad-selector.yaml"
    ))
    .unwrap();
    let response = apply(&node, &bad).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: ErrorBody = response.json().await.unwrap();
    let problem = body
        .problems
        .iter()
        .find(|p| p.path == "spec.selector")
        .unwrap_or_else(|| panic!("no problem at spec.selector: {body:?}"));
    assert_eq!(problem.line, Some(11));
    assert!(
        body.error.contains("spec.selector (line 11)"),
        "{}",
        body.error
    );
}

#[tokio::test]
async fn unknown_names_are_404s_that_say_how_to_list() {
    let node = one_node().await;
    for path in [
        "/rcs/nope",
        "/nodes/nope",
        "/pods/nope-0",
        "/pods/nope",
        "/pods/nope-0/logs",
    ] {
        let response = client()
            .get(format!("{}/api/v1{path}", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: ErrorBody = response.json().await.unwrap();
        assert!(body.error.contains("shoal get"), "{path}: {}", body.error);
    }
    let scale = client()
        .put(format!("{}/api/v1/rcs/nope/scale", node.url))
        .json(&serde_json::json!({"replicas": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(scale.status(), StatusCode::NOT_FOUND);
    let delete = client()
        .delete(format!("{}/api/v1/rcs/nope", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::NOT_FOUND);
    let body: ErrorBody = delete.json().await.unwrap();
    assert!(body.error.contains("\"nope\" not found"), "{}", body.error);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_a_413_with_advice() {
    let node = one_node().await;
    // Far over the limit too: the client is still sending when the peer
    // has decided, and must read the answer rather than a reset connection.
    for size in [1024 * 1024 + 10, 32 * 1024 * 1024] {
        let huge = format!("# {}\n{EXAMPLE}", "x".repeat(size));
        let response = apply(&node, &huge).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body: ErrorBody = response.json().await.unwrap();
        assert_eq!(body.status, 413);
        assert!(body.error.contains("limit of 1 MiB"), "{}", body.error);
        assert!(body.error.contains("split the manifest"), "{}", body.error);
    }
}

#[tokio::test]
async fn a_body_of_unknown_length_over_the_limit_is_a_413_too() {
    let node = one_node().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'#'; 64 * 1024])).collect();
    let response = client()
        .post(format!("{}/api/v1/rcs", node.url))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: ErrorBody = response.json().await.unwrap();
    assert!(body.error.contains("limit of 1 MiB"), "{}", body.error);

    let scale = client()
        .put(format!("{}/api/v1/rcs/hello/scale", node.url))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            (0..40).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(scale.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: ErrorBody = scale.json().await.unwrap();
    assert!(body.error.contains("limit of 1 MiB"), "{}", body.error);
}

#[tokio::test]
async fn scale_rolling_update_and_delete_show_in_the_next_read() {
    let node = one_node().await;
    assert_eq!(apply(&node, EXAMPLE).await.status(), StatusCode::CREATED);
    let scaled = client()
        .put(format!("{}/api/v1/rcs/hello/scale", node.url))
        .json(&serde_json::json!({"replicas": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(scaled.status(), StatusCode::OK);
    let (_, rc): (_, RcDetail) = get_json(&node, "/rcs/hello").await;
    assert_eq!(rc.rc.replicas, 3);

    // An absurd count is refused (placement work grows with it); nothing changes.
    let absurd = client()
        .put(format!("{}/api/v1/rcs/hello/scale", node.url))
        .json(&serde_json::json!({"replicas": 4_000_000_000u32}))
        .send()
        .await
        .unwrap();
    assert!(absurd.status().is_client_error(), "{}", absurd.status());
    assert!(
        absurd
            .text()
            .await
            .unwrap()
            .contains("between 0 and 100000")
    );
    let (_, rc): (_, RcDetail) = get_json(&node, "/rcs/hello").await;
    assert_eq!(rc.rc.replicas, 3);

    let rolled = client()
        .post(format!("{}/api/v1/rcs/hello/rolling-update", node.url))
        .json(&serde_json::json!({"image": "shoal-test/hello:1.1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), StatusCode::OK);
    let done = eventually(Duration::from_secs(10), || async {
        let (_, rc): (_, RcDetail) = get_json(&node, "/rcs/hello").await;
        rc.updated_ready == 3 && rc.total_pods == 3
    })
    .await;
    assert!(done, "all three replicas moved to the new template");
    let (_, rc): (_, RcDetail) = get_json(&node, "/rcs/hello").await;
    assert_eq!(rc.rc.image, "shoal-test/hello:1.1");
    assert_eq!(rc.history.len(), 1);
    assert_eq!(rc.history[0].images, ["hello=shoal-test/hello:1.0"]);
    // The first template was written by the apply that created the RC and
    // replaced, requests later, by the rolling update.
    assert_eq!(rc.history[0].written_at_ms, rc.rc.created_ms);
    assert!(
        rc.history[0].replaced_at_ms > rc.history[0].written_at_ms,
        "{:?}",
        rc.history
    );
    assert_eq!(rc.spec["spec"]["replicas"], 3);

    let wrong = client()
        .post(format!("{}/api/v1/rcs/hello/rolling-update", node.url))
        .json(&serde_json::json!({"image": "x:1", "container": "sidecar"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let deleted = client()
        .delete(format!("{}/api/v1/rcs/hello", node.url))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let (status, _): (_, ErrorBody) = get_json(&node, "/rcs/hello").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rolling_update_to_an_invalid_image_is_a_422_naming_image_and_changes_nothing() {
    let node = one_node().await;
    assert_eq!(apply(&node, EXAMPLE).await.status(), StatusCode::CREATED);
    let refused = client()
        .post(format!("{}/api/v1/rcs/hello/rolling-update", node.url))
        .json(&serde_json::json!({"image": "NOT a valid image!!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: ErrorBody = refused.json().await.unwrap();
    assert_eq!(body.status, 422);
    assert!(
        body.error
            .starts_with("image: \"NOT a valid image!!\" is not a valid image reference: "),
        "{}",
        body.error
    );
    assert!(
        body.error.contains("character ' ' (position 4)"),
        "{}",
        body.error
    );
    let (_, rc): (_, RcDetail) = get_json(&node, "/rcs/hello").await;
    assert_eq!(rc.rc.image, "shoal-test/hello:1.0");
    assert!(rc.history.is_empty(), "no rollout was recorded");
}

#[tokio::test]
async fn a_scale_body_that_is_not_json_is_a_400() {
    let node = one_node().await;
    assert_eq!(apply(&node, EXAMPLE).await.status(), StatusCode::CREATED);
    let response = client()
        .put(format!("{}/api/v1/rcs/hello/scale", node.url))
        .header("content-type", "application/json")
        .body("{\"replicas\": \"many\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: ErrorBody = response.json().await.unwrap();
    assert!(body.error.contains("replicas"), "{}", body.error);
}
