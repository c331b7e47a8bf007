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
//! directly) has no `ClientConn` and is not limited.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use tokio::net::{TcpListener, TcpStream};

use super::ApiState;
use super::error::ApiError;

/// Above this many clients with a bucket, buckets that are full again are
/// dropped (a full bucket is the same as none).
const PRUNE_ABOVE: usize = 4096;

/// The limits of one peer's API, per client IP; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per second a client may sustain (`--api-rate-limit`).
    pub rate_per_sec: u32,
    /// Requests a client may send at once above the rate (`--api-burst`).
    pub burst: u32,
    /// Connections one client may hold open (`--api-max-connections`).
    pub max_connections: u32,
}

impl LimitSettings {
    /// The defaults of `shoal up`: generous for people, scripts and
    /// kubectl (a `get -w`, the dashboard and a polling loop stay far
    /// below), small enough that one client cannot take the whole peer.
    pub const DEFAULT: LimitSettings = LimitSettings {
        rate_per_sec: 100,
        burst: 200,
        max_connections: 64,
    };

    pub const UNLIMITED: LimitSettings = LimitSettings {
        rate_per_sec: 0,
        burst: 0,
        max_connections: 0,
    };
}

/// The limits and what each client has used of them.
#[derive(Debug)]
pub struct ClientLimits {
    settings: LimitSettings,
    connections: Mutex<HashMap<IpAddr, u32>>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ClientLimits {
    pub fn new(settings: LimitSettings) -> Arc<ClientLimits> {
        Arc::new(ClientLimits {
            settings,
            connections: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> LimitSettings {
        self.settings
    }

    /// A connection from `addr` was accepted: counted until the returned
    /// value (and every copy) is dropped, unless it is over the cap.
    pub fn open(self: &Arc<ClientLimits>, addr: SocketAddr) -> ClientConn {
        let ip = addr.ip();
        let cap = self.settings.max_connections;
        let mut open = lock(&self.connections);
        let count = open.entry(ip).or_default();
        let over = cap > 0 && *count >= cap;
        if !over {
            *count += 1;
        }
        ClientConn {
            addr,
            slot: Some(Arc::new(Slot {
                limits: self.clone(),
                ip,
                over,
            })),
        }
    }

    /// Takes one request from `ip`'s bucket at `now`, or says how long
    /// until one is there.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let LimitSettings {
            rate_per_sec: rate,
            burst,
            ..
        } = self.settings;
        if rate == 0 {
            return Ok(());
        }
        let mut buckets = lock(&self.buckets);
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| !b.is_full(now, rate, burst));
        }
        buckets
            .entry(ip)
            .or_insert_with(|| Bucket::full(now, burst))
            .take(now, rate, burst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere leaves counts that are still counts.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One client's requests: `tokens` left as of `at`, refilled at the rate
/// up to `burst` (at least 1, so a rate without a burst still serves).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(now: Instant, burst: u32) -> Bucket {
        Bucket {
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: u32, burst: u32) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst.max(1)));
        self.at = now;
    }

    fn take(&mut self, now: Instant, rate: u32, burst: u32) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / f64::from(rate),
            ))
        }
    }

    fn is_full(&self, now: Instant, rate: u32, burst: u32) -> bool {
        let mut copy = *self;
        copy.refill(now, rate, burst);
        copy.tokens >= f64::from(burst.max(1))
    }
}

/// A client connection: where from, and its place in the count.
#[derive(Debug, Clone)]
pub struct ClientConn {
    pub addr: SocketAddr,
    slot: Option<Arc<Slot>>,
}

impl ClientConn {
    /// Over the client's connection cap: its requests get 429.
    fn over_cap(&self) -> bool {
        self.slot.as_ref().is_some_and(|s| s.over)
    }
}

/// Gives the connection back to the count when the last copy goes.
#[derive(Debug)]
struct Slot {
    limits: Arc<ClientLimits>,
    ip: IpAddr,
    over: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.over {
            return;
        }
        let mut open = lock(&self.limits.connections);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
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
        (stream, self.limits.open(addr))
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
    fn a_bucket_serves_the_burst_then_the_rate() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 10,
            burst: 5,
            max_connections: 0,
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limits.take(ip, t0).is_ok());
        }
        let wait = limits.take(ip, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // Another client has its own bucket.
        assert!(limits.take(other, t0).is_ok());
        // A tenth of a second later, one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limits.take(ip, t1).is_ok());
        assert!(limits.take(ip, t1).is_err());
        // Long after, a full burst again, not more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(limits.take(ip, t2).is_ok());
        }
        assert!(limits.take(ip, t2).is_err());
    }

    #[test]
    fn connections_over_the_cap_are_marked_and_slots_come_back() {
        let limits = ClientLimits::new(LimitSettings {
            rate_per_sec: 0,
            burst: 0,
            max_connections: 2,
        });
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let a = limits.open(at(1));
        let b = limits.open(at(2));
        let c = limits.open(at(3));
        assert!(!a.over_cap() && !b.over_cap() && c.over_cap());
        let a_copy = a.clone();
        drop(a);
        assert!(limits.open(at(4)).over_cap(), "a copy still holds the slot");
        drop(a_copy);
        drop(c);
        let d = limits.open(at(5));
        assert!(!d.over_cap());
        // Another client is not affected.
        assert!(
            !limits
                .open(SocketAddr::from(([127, 0, 0, 2], 1)))
                .over_cap()
        );
        drop((b, d));
        assert!(lock(&limits.connections).is_empty());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let r = with_retry_after(Response::default(), Duration::from_millis(1200));
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = with_retry_after(Response::default(), Duration::from_millis(10));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
