//! `/metrics` and `/ui` behind an API token: the metrics need it like every
//! route; the dashboard page holds no data, is served without it, and
//! loads nothing from elsewhere.

mod api_support;

use api_support::start_cluster;
use reqwest::StatusCode;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

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
