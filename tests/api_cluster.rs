//! The API of a two-peer cluster: tokens, reads that span nodes, and logs
//! forwarded to the node that runs the pod.

mod api_support;

use std::time::Duration;

use api_support::{EXAMPLE, client, eventually, start_cluster};
use reqwest::StatusCode;
use shoal::shell::api::ErrorBody;
use shoal::shell::api::models::{NodeDetail, NodeJson, PodJson, RcJson};

#[tokio::test]
async fn with_an_api_token_every_request_without_it_is_a_401_naming_it() {
    let nodes = start_cluster(&["node-a"], Some("s3cret")).await;
    let url = &nodes[0].url;
    for path in [
        "/api/v1/rcs",
        "/api/v1/healthz",
        "/healthz",
        "/api/v1/no-such-route",
    ] {
        let response = client().get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let body: ErrorBody = response.json().await.unwrap();
        assert_names_the_api_token(&body.error);
    }
    let wrong = client()
        .get(format!("{url}/api/v1/rcs"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: ErrorBody = wrong.json().await.unwrap();
    assert!(body.error.contains("wrong API token"), "{}", body.error);
    assert_names_the_api_token(&body.error);
    let denied = client()
        .post(format!("{url}/api/v1/rcs"))
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let allowed = client()
        .post(format!("{url}/api/v1/rcs"))
        .bearer_auth("s3cret")
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::CREATED);
}

/// A 401 names the API token's flag and variable, and never the join token
/// (the cluster's root secret must not be sent as a bearer token).
fn assert_names_the_api_token(message: &str) {
    assert!(message.contains("--api-token"), "{message}");
    assert!(message.contains("SHOAL_API_TOKEN"), "{message}");
    assert!(!message.to_lowercase().contains("join"), "{message}");
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_in_any_case() {
    let nodes = start_cluster(&["node-a"], Some("s3cret")).await;
    let url = &nodes[0].url;
    let status = |authorization: &'static str| async move {
        client()
            .get(format!("{url}/api/v1/nodes"))
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .unwrap()
            .status()
    };
    for accepted in [
        "Bearer s3cret",
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR  s3cret",
    ] {
        assert_eq!(status(accepted).await, StatusCode::OK, "{accepted}");
    }
    for refused in [
        "bearer guess",
        "Basic s3cret",
        "Bearers3cret",
        "s3cret",
        "bearer",
    ] {
        assert_eq!(status(refused).await, StatusCode::UNAUTHORIZED, "{refused}");
    }
}

#[tokio::test]
async fn both_nodes_list_the_whole_cluster_and_spread_the_replicas() {
    let nodes = start_cluster(&["node-a", "node-b"], None).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let joined = eventually(Duration::from_secs(10), || async {
        let rows: Vec<NodeJson> = client()
            .get(format!("{}/api/v1/nodes", a.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        rows.len() == 2 && rows.iter().all(|n| n.state == "Alive")
    })
    .await;
    assert!(joined, "node-a sees both nodes alive");

    let applied = client()
        .post(format!("{}/api/v1/rcs", a.url))
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), StatusCode::CREATED);
    // Written at node-a, read at node-b once gossip carried it and both
    // nodes reported their replica.
    let spread = eventually(Duration::from_secs(10), || async {
        let rcs: Vec<RcJson> = client()
            .get(format!("{}/api/v1/rcs", b.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        rcs.first().is_some_and(|rc| rc.running == 2)
    })
    .await;
    assert!(spread, "node-b sees the RC with two running replicas");
    let pods: Vec<PodJson> = client()
        .get(format!("{}/api/v1/pods", b.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut on: Vec<&str> = pods.iter().map(|p| p.node.as_str()).collect();
    on.sort_unstable();
    assert_eq!(on, ["node-a", "node-b"], "one replica per node: {pods:?}");

    let detail: NodeDetail = client()
        .get(format!("{}/api/v1/nodes/node-b", a.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail.node.pods, 1);
    assert_eq!(detail.pod_list.len(), 1);
    assert_eq!(
        detail.node.labels.get("zone").map(String::as_str),
        Some("z1")
    );
}

#[tokio::test]
async fn logs_of_a_pod_on_another_node_are_asked_of_that_node() {
    let nodes = start_cluster(&["node-a", "node-b"], None).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let applied = client()
        .post(format!("{}/api/v1/rcs", a.url))
        .body(EXAMPLE)
        .send()
        .await
        .unwrap();
    assert_eq!(applied.status(), StatusCode::CREATED);
    let remote_pods = || async {
        let pods: Vec<PodJson> = client()
            .get(format!("{}/api/v1/pods", a.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pods.into_iter()
            .find(|p| p.node == "node-b")
            .map(|p| p.name)
    };
    let placed = eventually(Duration::from_secs(10), || async {
        remote_pods().await.is_some()
    })
    .await;
    assert!(placed, "a replica runs on node-b");
    let pod = remote_pods().await.unwrap();
    // The test peers run no container engine: node-b itself says so, and
    // node-a's answer carries node-b's reason, which proves the request got there.
    let direct = client()
        .get(format!("{}/api/v1/pods/{pod}/logs", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), StatusCode::SERVICE_UNAVAILABLE);
    let proxied = client()
        .get(format!("{}/api/v1/pods/{pod}/logs?follow=false", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: ErrorBody = proxied.json().await.unwrap();
    assert!(
        body.error
            .starts_with("node node-b: this peer runs without a container runtime"),
        "{}",
        body.error
    );
    let bad_query = client()
        .get(format!("{}/api/v1/pods/{pod}/logs?follow=maybe", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_query.status(), StatusCode::BAD_REQUEST);
}
