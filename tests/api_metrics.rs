//! `/metrics` and `/ui` behind an API token: the metrics need it like every
//! route; the dashboard page holds no data, is served without it, and
//! loads nothing from elsewhere.

mod api_support;

use api_support::{client, start_cluster};
use reqwest::StatusCode;

#[tokio::test]
async fn metrics_need_the_api_token_and_count_the_refusal() {
    let nodes = start_cluster(&["node-a"], Some("s3cret")).await;
    let url = &nodes[0].url;
    let denied = client().get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let scrape = client()
        .get(format!("{url}/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let content_type = scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = scrape.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("shoal_api_requests_total{")
                && l.contains(r#"route="/metrics""#)
                && l.contains(r#"status="401""#)),
        "the refused scrape is not counted:\n{text}"
    );
    assert!(text.contains("# TYPE shoal_members gauge"), "{text}");
}

#[tokio::test]
async fn the_dashboard_page_is_served_without_a_token_and_is_self_contained() {
    let nodes = start_cluster(&["node-a"], Some("s3cret")).await;
    let page = client()
        .get(format!("{}/ui", nodes[0].url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let content_type = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<table id=\"nodes\">"), "{html}");
    let root = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", nodes[0].url))
        .send()
        .await
        .unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/ui");
    for outside in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        assert!(!html.contains(outside), "the page loads {outside}…");
    }
}

/// Prints the time of a `/metrics` scrape with 1,000 pods on 4 nodes
/// (in-process peers, in-memory engine), against `GET /api/v1/pods` of the
/// same snapshot. A figure, not an assertion:
/// `cargo test -p shoal --test api_metrics -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures"]
async fn scrape_time_with_a_thousand_pods() {
    let nodes = start_cluster(&["a", "b", "c", "d"], None).await;
    let url = &nodes[0].url;
    let manifest = api_support::EXAMPLE
        .replace("replicas: 2", "replicas: 1000")
        .replace("cpu: 50m", "cpu: 1m")
        .replace("memory: 16Mi", "memory: 1Mi");
    let applied = client()
        .post(format!("{url}/api/v1/rcs"))
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert!(
        applied.status().is_success(),
        "{}",
        applied.text().await.unwrap()
    );
    let all_reported = api_support::eventually(std::time::Duration::from_secs(120), || async {
        let text = client()
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.contains("shoal_state_records{kind=\"pods\"} 1000")
    })
    .await;
    assert!(all_reported, "1,000 pods not reported");
    let time = |path: &'static str| async move {
        let mut spent = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let body = client()
                .get(format!("{url}{path}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            spent.push(started.elapsed());
            bytes = body.len();
        }
        spent.sort();
        (spent[spent.len() / 2], spent[spent.len() - 1], bytes)
    };
    let (p50, max, bytes) = time("/metrics").await;
    let (pods_p50, pods_max, pods_bytes) = time("/api/v1/pods").await;
    eprintln!(
        "1,000 pods on 4 nodes: GET /metrics p50 {p50:?} max {max:?} ({bytes} B); \
         GET /api/v1/pods p50 {pods_p50:?} max {pods_max:?} ({pods_bytes} B)"
    );
}
