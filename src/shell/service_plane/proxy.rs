//! One client connection: connect to an endpoint (trying another when one
//! fails), then copy both ways through fixed buffers until either side
//! closes or nothing moves for the idle timeout.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use shoal_crdt_state::service::ProxyProtocol;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::backends::{ActiveGuard, Backends};
use super::proxy_header;

/// Buffer per direction per connection: memory is bounded by
/// connections × 2 × this.
const COPY_BUFFER: usize = 16 * 1024;

/// How a connection is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct ProxyLimits {
    /// Per endpoint tried: a dead endpoint costs at most this.
    pub connect_timeout: Duration,
    /// A connection where no byte moved either way this long is closed.
    pub idle_timeout: Duration,
}

/// Why a client connection was closed without being forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no ready endpoint")]
    NoEndpoint,
    #[error("{tried} endpoint(s) could not be reached, last {last}")]
    Unreachable { tried: usize, last: String },
    #[error("cannot send the PROXY protocol header to {endpoint}: {source}")]
    Header {
        endpoint: SocketAddr,
        source: io::Error,
    },
}

/// Forwards `client` (connected from `from`) to one of `backends`; returns
/// once the connection is over. `random` picks among endpoints (see
/// `Backends::attempt_order`).
pub async fn forward(
    client: TcpStream,
    from: SocketAddr,
    backends: &Backends,
    random: u64,
    limits: ProxyLimits,
) -> Result<(), ForwardError> {
    let order = backends.attempt_order(random);
    if order.is_empty() {
        return Err(ForwardError::NoEndpoint);
    }
    let mut last = String::new();
    let mut connected = None;
    'endpoints: for backend in &order {
        let guard = ActiveGuard::new(backend.clone());
        // The container's own address first (when on this node), then where
        // its node publishes it.
        for addr in backend.direct.into_iter().chain([backend.addr]) {
            match tokio::time::timeout(limits.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    connected = Some((guard, stream));
                    break 'endpoints;
                }
                Ok(Err(e)) => last = format!("{} ({addr}): {e}", backend.pod),
                Err(_) => last = format!("{} ({addr}): connect timed out", backend.pod),
            }
            tracing::debug!(endpoint = %addr, pod = %backend.pod, "endpoint unreachable; trying another");
        }
    }
    let Some((guard, mut upstream)) = connected else {
        return Err(ForwardError::Unreachable {
            tried: order.len(),
            last,
        });
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if backends.proxy_protocol != ProxyProtocol::Off {
        // The address the client connected to: this listener's.
        let at = client.local_addr().unwrap_or(from);
        let header = proxy_header::header(backends.proxy_protocol, from, at);
        upstream
            .write_all(&header)
            .await
            .map_err(|source| ForwardError::Header {
                endpoint: guard.backend().addr,
                source,
            })?;
    }
    let clock = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let mut client = Watched::new(client, activity.clone(), clock);
    let mut upstream = Watched::new(upstream, activity.clone(), clock);
    let copy = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        COPY_BUFFER,
        COPY_BUFFER,
    );
    tokio::select! {
        result = copy => {
            if let Err(e) = result {
                tracing::trace!(endpoint = %guard.backend().addr, error = %e, "connection ended with an error");
            }
        }
        () = idle(&activity, clock, limits.idle_timeout) => {
            tracing::debug!(endpoint = %guard.backend().addr, "idle connection closed");
        }
    }
    Ok(())
}

/// Returns once nothing has moved for `timeout`.
async fn idle(activity: &AtomicU64, clock: Instant, timeout: Duration) {
    loop {
        let last = clock + Duration::from_millis(activity.load(Ordering::Relaxed));
        let deadline = last + timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// A stream that notes when bytes last moved through it (ms since `clock`).
struct Watched {
    inner: TcpStream,
    activity: Arc<AtomicU64>,
    clock: Instant,
}

impl Watched {
    fn new(inner: TcpStream, activity: Arc<AtomicU64>, clock: Instant) -> Watched {
        Watched {
            inner,
            activity,
            clock,
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.store(ms, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
