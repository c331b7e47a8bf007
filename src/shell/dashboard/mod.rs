//! `/ui`: the dashboard every peer serves.
//!
//! One static page, embedded in the binary (no CDN, no build step): it
//! reads the same JSON API as `shoal get` (nodes, RCs, pods, services with
//! their endpoints) every 2 s and shows what this peer sees of the whole
//! cluster, with the cluster's event stream (`/api/v1/events`, polled on
//! its own) and the followed logs of the pod one clicks. Its actions are
//! requests to that same API: apply a manifest, scale, rolling update,
//! delete an RC, cordon, uncordon and drain a node (a drain is a cordon
//! whose row then counts the node's pods down, as `shoal drain` does).
//! Wide tables scroll in their own box, so the page reads on a phone.
//!
//! The page itself holds no data, so it is served without the API token;
//! the page asks for the token when the API answers 401, keeps it for the
//! browser tab (`sessionStorage`) and sends it as a bearer token.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The page, with its script and styles inline.
const PAGE: &str = include_str!("page.html");

/// `GET /ui`.
pub async fn page() -> Response {
    let html = HeaderValue::from_static("text/html; charset=utf-8");
    // The page is a fixed asset of this binary: a browser may keep it, but
    // must ask again after an upgrade of the peer.
    let cache = HeaderValue::from_static("no-cache");
    (
        [(header::CONTENT_TYPE, html), (header::CACHE_CONTROL, cache)],
        PAGE,
    )
        .into_response()
}

/// `GET /`: a browser pointed at a peer's API address lands on the page.
pub async fn to_page() -> Redirect {
    Redirect::to("/ui")
}

#[cfg(test)]
mod tests {
    use super::PAGE;
    use crate::cli::human;

    /// The page's `duration` function, as written in it.
    fn page_duration_js() -> &'static str {
        let start = PAGE
            .find("function duration(secs) {")
            .expect("page.html has no `function duration(secs)`");
        let len = PAGE[start..]
            .find("\n}\n")
            .expect("`duration` in page.html has no closing brace at a line start");
        &PAGE[start..start + len + 2]
    }

    /// Seconds on both sides of every threshold of the rule, and a sweep
    /// in between, up to ten years.
    fn seconds() -> Vec<u64> {
        let mut secs: Vec<u64> = (0..1_000).collect();
        let (m, h, d, y) = (60, 3_600, 86_400, 365 * 86_400);
        for edge in [120, 10 * m, 180 * m, 8 * h, 48 * h, 8 * d, 2 * y, 8 * y] {
            secs.extend([edge - 1, edge, edge + 1, edge + 59, edge + 61]);
        }
        let mut s = 1_000f64;
        while s < 10.0 * y as f64 {
            secs.push(s as u64);
            s *= 1.013;
        }
        secs
    }

    /// The dashboard prints ages by the same rule as `shoal get`: the
    /// page's own JavaScript, run by Node, against `human::duration`.
    #[test]
    fn the_dashboard_prints_ages_as_kubectl_and_shoal_get_do() {
        let secs = seconds();
        let script = format!(
            "{}\nfor (const s of process.argv[1].split(',')) console.log(duration(Number(s)));",
            page_duration_js()
        );
        let list: Vec<String> = secs.iter().map(u64::to_string).collect();
        let output = std::process::Command::new("node")
            .args(["-e", &script, &list.join(",")])
            .output()
            .expect(
                "this test runs the page's JavaScript with `node` (Debian: apt install nodejs)",
            );
        assert!(
            output.status.success(),
            "node failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = String::from_utf8(output.stdout).expect("node printed UTF-8");
        let printed: Vec<&str> = printed.lines().collect();
        assert_eq!(printed.len(), secs.len());
        for (s, js) in secs.iter().zip(printed) {
            assert_eq!(
                js,
                human::duration(*s),
                "{s} s: the page and `shoal get` differ"
            );
        }
    }
}
