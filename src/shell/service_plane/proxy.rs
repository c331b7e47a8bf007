//! One client connection: connect to an endpoint (trying another when one
//! fails), then copy both ways through fixed buffers until either side
//! closes or nothing moves for the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::backends::{ActiveGuard, Backends};

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
}

/// Forwards `client` to one of `backends`; returns once the connection is
/// over. `random` picks among endpoints (see `Backends::attempt_order`).
pub async fn forward(
    client: TcpStream,
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
    for backend in &order {
        let guard = ActiveGuard::new(backend.clone());
        match tokio::time::timeout(limits.connect_timeout, TcpStream::connect(backend.addr)).await {
            Ok(Ok(stream)) => {
                connected = Some((guard, stream));
                break;
            }
            Ok(Err(e)) => last = format!("{} ({}): {e}", backend.pod, backend.addr),
            Err(_) => last = format!("{} ({}): connect timed out", backend.pod, backend.addr),
        }
        tracing::debug!(endpoint = %backend.addr, pod = %backend.pod, "endpoint unreachable; trying another");
    }
    let Some((guard, upstream)) = connected else {
        return Err(ForwardError::Unreachable {
            tried: order.len(),
            last,
        });
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
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
