//! The service routes over real peer cores: apply (with RCs), list,
//! describe, replace, delete, and the refusals with status and message.

mod api_support;

use std::time::Duration;

use api_support::{EXAMPLE, TestNode, client, eventually, start_cluster};
use reqwest::{Method, StatusCode};
use shoal::shell::api::ErrorBody;
use shoal::shell::api::models::{ApplyResponse, CommandResponse, ServiceDetail, ServiceJson};

const SERVICE: &str = include_str!("../examples/hello-service.yaml");

async fn send(node: &TestNode, method: Method, path: &str, body: &str) -> reqwest::Response {
    client()
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

async fn names(node: &TestNode, path: &str) -> Vec<String> {
    let list: Vec<serde_json::Value> = send(node, Method::GET, path, "")
        .await
        .json()
        .await
        .unwrap();
    list.iter()
        .map(|o| o["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn port_clashes_are_refused_whole_naming_both_sides() {
    let nodes = start_cluster(&["node-a"], None).await;
    // Within one manifest: a validation error (422, with the line); against
    // what the cluster holds: a conflict (409).
    let refused = async |manifest: &str, expected: StatusCode, both: [&str; 2]| {
        let response = send(&nodes[0], Method::POST, "/services", manifest).await;
        let status = response.status();
        let error: ErrorBody = response.json().await.unwrap();
        assert_eq!(status, expected, "{}\n{manifest}", error.error);
        for name in both {
            assert!(
                error.error.contains(&format!("{name:?}")),
                "{name:?} not named in: {}",
                error.error
            );
        }
    };

    // Two services of one manifest on one port: nothing is applied, not
    // the first service, nor the RC.
    let web = SERVICE.replace("name: hello\n", "name: web\n");
    let api = SERVICE.replace("name: hello\n", "name: api\n");
    let both = format!("{EXAMPLE}---\n{web}---\n{api}");
    refused(&both, StatusCode::UNPROCESSABLE_ENTITY, ["web", "api"]).await;
    assert_eq!(names(&nodes[0], "/services").await, Vec::<String>::new());
    assert_eq!(names(&nodes[0], "/rcs").await, Vec::<String>::new());

    // A service's nodePort that an RC of the same manifest binds as hostPort.
    let pinned = EXAMPLE.replace("name: hello\n", "name: pinned\n").replace(
        "- containerPort: 80\n",
        "- containerPort: 80\n              hostPort: 30111\n",
    );
    let node_port = web.replace(
        "targetPort: 80\n",
        "targetPort: 80\n      nodePort: 30111\n",
    );
    let both = format!("{pinned}---\n{node_port}");
    refused(&both, StatusCode::UNPROCESSABLE_ENTITY, ["web", "pinned"]).await;
    assert_eq!(names(&nodes[0], "/rcs").await, Vec::<String>::new());

    // The same, one after the other, both ways round.
    let response = send(&nodes[0], Method::POST, "/rcs", &pinned).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    refused(&node_port, StatusCode::CONFLICT, ["web", "pinned"]).await;
    let response = send(&nodes[0], Method::POST, "/services", &web).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let node_port_of_web = services(&nodes[0]).await[0].ports[0]
        .node_port
        .expect("allocated");
    let second = EXAMPLE.replace("name: hello\n", "name: second\n").replace(
        "- containerPort: 80\n",
        &format!("- containerPort: 80\n              hostPort: {node_port_of_web}\n"),
    );
    let response = send(&nodes[0], Method::POST, "/rcs", &second).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let error: ErrorBody = response.json().await.unwrap();
    assert!(
        error.error.contains("\"second\"") && error.error.contains("\"web\""),
        "{}",
        error.error
    );
    assert_eq!(names(&nodes[0], "/rcs").await, ["pinned"]);
}
