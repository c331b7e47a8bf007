//! Per-client limits on the API: a request rate (token bucket) and a number
//! of open connections, per source IP. Beyond either, a request gets 429
//! with `Retry-After` (a Kubernetes `Status` under the kubectl API), so one
//! client (a runaway script, a scraper gone wrong) cannot starve the others
//! or the peer core that answers them.
//!
//! Connections are counted where they are accepted (plain HTTP:
//! [`LimitedListener`]; HTTPS: `api_tls::serve_https`), before any request
//! is read, and every request carries its connection's [`ClientConn`]. A
//! connection over the cap is still answered, with 429 and
//! `Connection: close`, rather than reset: the client learns why and when
//! to come back. The router used without either (tests driving it
//! directly) has no `ClientConn` and is not limited. The per-IP table and
//! token bucket are `shell::client_limits`, shared with the load balancer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};

use crate::shell::client_limits::ConnectionSlot;
pub use crate::shell::client_limits::{ClientLimits, LimitSettings};

use super::ApiState;
use super::error::ApiError;

/// A client connection: where from, and its place in the count.
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub addr: SocketAddr,
    slot: Option<Arc<ConnectionSlot>>,
}

impl ClientConn {
    /// A connection from `addr` was accepted: counted until this value
    /// (and every copy) is dropped, unless it is over the cap.
    pub fn open(limits: &Arc<ClientLimits>, addr: SocketAddr) -> ClientConn {
        ClientConn {
            addr,
            slot: Some(Arc::new(limits.open(addr.ip()))),
        }
    }

    /// Over the client's connection cap: its requests get 429.
    fn over_cap(&self) -> bool {
        self.slot.as_ref().is_some_and(|s| s.over_cap())
    }
}

/// Idle time before the first keep-alive probe of an API connection.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Between unanswered probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes after which the connection counts as dead.
pub const KEEPALIVE_PROBES: u32 = 3;

/// Turns on TCP keep-alive probes, so a client that vanished without a FIN
/// or RST (machine off, network gone) is found within
/// [`KEEPALIVE_IDLE`] + [`KEEPALIVE_PROBES`] x [`KEEPALIVE_INTERVAL`] (25 s):
/// the connection's pending read then fails and the server drops it, so
/// an idle watch (nothing to write, nothing to read) frees its watch slot
/// and the event fan-in. A client that closes its socket is noticed at
/// once by the HTTP server's end-of-stream read, probes or not.
pub fn keep_alive(stream: &TcpStream) {
    let probes = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let socket = socket2::SockRef::from(stream);
    if let Err(e) = socket.set_tcp_keepalive(&probes) {
        tracing::debug!(error = %e, "cannot turn on TCP keep-alive for an API connection");
    }
    // Keep-alive probes only run on an idle connection; a watch that keeps
    // writing to a vanished client needs this bound on unacknowledged data
    // (else the kernel retransmits for ~15 minutes).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) =
        socket.set_tcp_user_timeout(Some(KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES))
    {
        tracing::debug!(error = %e, "cannot bound unacknowledged data on an API connection");
    }
}

/// A TCP listener whose connections are counted per client (plain HTTP).
#[derive(Debug)]
pub struct LimitedListener {
    pub inner: TcpListener,
    pub limits: Arc<ClientLimits>,
}

impl axum::serve::Listener for LimitedListener {
    type Io = TcpStream;
    type Addr = ClientConn;

    async fn accept(&mut self) -> (TcpStream, ClientConn) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Small answers go out at once rather than waiting on the peer's ACK.
        let _ = stream.set_nodelay(true);
        keep_alive(&stream);
        (stream, ClientConn::open(&self.limits, addr))
    }

    fn local_addr(&self) -> std::io::Result<ClientConn> {
        Ok(ClientConn {
            addr: self.inner.local_addr()?,
            slot: None,
        })
    }
}

impl Connected<IncomingStream<'_, LimitedListener>> for ClientConn {
    fn connect_info(stream: IncomingStream<'_, LimitedListener>) -> ClientConn {
        stream.remote_addr().clone()
    }
}

/// Answers 429 to a client over its connection cap or its request rate.
pub(super) async fn limit_requests(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(conn)) = request.extensions().get::<ConnectInfo<ClientConn>>() else {
        return next.run(request).await;
    };
    let kube = request.uri().path().starts_with(super::kube::PREFIX);
    let ip = conn.addr.ip();
    let settings = state.limits.settings();
    if conn.over_cap() {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many connections from {ip}: a client may hold {} open at once \
                 (`shoal up --api-max-connections`); close some and retry",
                settings.max_connections
            ),
        );
        let mut response = super::guards::refusal(e, kube);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return with_retry_after(response, Duration::from_secs(1));
    }
    if let Err(wait) = state.limits.take(ip, Instant::now()) {
        let e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests from {ip}: a client may send {} a second, {} at once \
                 (`shoal up --api-rate-limit`, `--api-burst`); retry after the Retry-After seconds",
                settings.rate_per_sec,
                settings.burst.max(1)
            ),
        );
        return with_retry_after(super::guards::refusal(e, kube), wait);
    }
    next.run(request).await
}

/// `Retry-After` in whole seconds, at least 1 (HTTP has no finer unit).
fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_holds_its_slot_until_its_last_copy_goes() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 0,
            burst: 0,
            max_connections: 2,
        });
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let a = ClientConn::open(&limits, at(1));
        let b = ClientConn::open(&limits, at(2));
        let c = ClientConn::open(&limits, at(3));
        assert!(!a.over_cap() && !b.over_cap() && c.over_cap());
        let a_copy = a.clone();
        drop(a);
        assert!(
            ClientConn::open(&limits, at(4)).over_cap(),
            "a copy still holds the slot"
        );
        drop(a_copy);
        assert!(!ClientConn::open(&limits, at(5)).over_cap());
        drop((b, c));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = with_retry_after(Response::default(), Duration::from_millis(1200));
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = with_retry_after(Response::default(), Duration::from_millis(10));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
