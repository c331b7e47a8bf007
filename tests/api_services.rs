//! The service routes over real peer cores: apply (with RCs), list,
//! describe, replace, delete, and the refusals with status and message.

mod api_support;

use std::time::Duration;

use api_support::{EXAMPLE, TestNode, eventually, start_cluster};
use reqwest::{Method, StatusCode};
use shoal::shell::api::ErrorBody;
use shoal::shell::api::models::{ApplyResponse, CommandResponse, ServiceDetail, ServiceJson};

const SERVICE: &str = include_str!("../examples/hello-service.yaml");

async fn send(node: &TestNode, method: Method, path: &str, body: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, format!("{}/api/v1{path}", node.url))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn services(node: &TestNode) -> Vec<ServiceJson> {
    send(node, Method::GET, "/services", "")
        .await
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_service_applied_with_its_rc_is_listed_described_replaced_and_deleted() {
    let nodes = start_cluster(&["node-a", "node-b"], None).await;
    let manifest = format!("{EXAMPLE}---\n{SERVICE}");
    let response = send(&nodes[0], Method::POST, "/services", &manifest).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: ApplyResponse = response.json().await.unwrap();
    let applied: Vec<(&str, &str)> = body
        .applied
        .iter()
        .map(|a| (a.kind.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(
        applied,
        [("replicationcontroller", "hello"), ("service", "hello")]
    );

    // Both pods come up on the stand-in engine, which publishes no ports:
    // listed as endpoints, none ready. Seen from the other peer too.
    let listed = eventually(Duration::from_secs(10), || async {
        services(&nodes[1])
            .await
            .first()
            .is_some_and(|s| s.endpoints_total == 2)
    })
    .await;
    assert!(listed, "{:?}", services(&nodes[1]).await);
    let svc = &services(&nodes[1]).await[0];
    assert_eq!(
        (svc.service_type.as_str(), svc.endpoints_ready),
        ("NodePort", 0)
    );
    let node_port = svc.ports[0].node_port.expect("allocated");
    assert_eq!(svc.ports[0].to_string(), format!("8080:{node_port}/TCP"));
    let detail: ServiceDetail = send(&nodes[1], Method::GET, "/services/hello", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail.endpoints.len(), 2);
    assert!(
        detail
            .endpoints
            .iter()
            .all(|e| !e.ready && e.addresses.is_empty())
    );

    // PUT replaces it (the node port stays), and must name only itself.
    let moved = SERVICE.replace("port: 8080", "port: 8081");
    let response = send(&nodes[1], Method::PUT, "/services/hello", &moved).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: ApplyResponse = response.json().await.unwrap();
    assert_eq!(body.applied[0].outcome, "configured");
    assert_eq!(
        services(&nodes[1]).await[0].ports[0].node_port,
        Some(node_port)
    );
    let response = send(&nodes[1], Method::PUT, "/services/other", &moved).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A clash changes nothing, not even the RC in the same manifest.
    let clash = format!(
        "{}---\n{}",
        EXAMPLE.replace("name: hello\n", "name: second\n"),
        moved.replace("name: hello\n", "name: second\n")
    );
    let response = send(&nodes[0], Method::POST, "/rcs", &clash).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: ErrorBody = response.json().await.unwrap();
    assert!(
        error.error.contains("\"second\"") && error.error.contains("\"hello\""),
        "{}",
        error.error
    );
    let rcs: Vec<serde_json::Value> = send(&nodes[0], Method::GET, "/rcs", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rcs.len(), 1, "the clashing manifest's RC was not applied");

    let response = send(&nodes[0], Method::DELETE, "/services/hello", "").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: CommandResponse = response.json().await.unwrap();
    assert_eq!(body.outcome, "deleted");
    let response = send(&nodes[0], Method::GET, "/services/hello", "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = send(&nodes[0], Method::DELETE, "/services/hello", "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let error: ErrorBody = response.json().await.unwrap();
    assert!(error.error.contains("`shoal get svc`"), "{}", error.error);
}
