//! One listening socket of the load balancer: accepts while the service has
//! room (a semaphore per service), refuses a client over its own limits
//! (connections held, new connections per second: `client_limits`), and
//! hands every other connection to the proxy.
//!
//! A refused connection is reset (RST: linger 0, then close) right after
//! accept, before a byte is read or an endpoint touched: the client sees
//! "connection reset by peer" at once, the peer keeps no TIME_WAIT for it,
//! and the loop goes straight on to the next client. The LB is L4, so
//! there is no 429; HAProxy's `tcp-request connection reject` does the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::backends::Backends;
use super::proxy::{ForwardError, ProxyLimits, forward};
use crate::shell::client_limits::{ClientLimits, Refusal};
use crate::shell::metrics::catalog::LB_REFUSED;

/// An accepting task; dropping it closes the socket. Connections already
/// forwarded run on until they end.
#[derive(Debug)]
pub struct Listening {
    task: JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What bounds a listener's connections: the service's room, shared by
/// its listeners, and the per-client limits, shared by every listener of
/// the peer.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub room: Arc<Semaphore>,
    pub clients: Arc<ClientLimits>,
}

/// Starts accepting on `listener` for `service`, forwarding to whatever
/// `backends` holds when a connection arrives.
pub fn spawn_listener(
    service: String,
    listener: TcpListener,
    backends: watch::Receiver<Arc<Backends>>,
    bounds: Bounds,
    limits: ProxyLimits,
) -> Listening {
    Listening {
        task: tokio::spawn(accept_loop(service, listener, backends, bounds, limits)),
    }
}

async fn accept_loop(
    service: String,
    listener: TcpListener,
    backends: watch::Receiver<Arc<Backends>>,
    bounds: Bounds,
    limits: ProxyLimits,
) {
    let local = listener.local_addr().ok();
    loop {
        // Full: stop accepting; the kernel's backlog holds the next clients.
        // A refused client gives its permit back at once, so only clients
        // within their own caps can fill a service.
        let Ok(permit) = bounds.room.clone().acquire_owned().await else {
            return;
        };
        let (client, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(service, ?local, error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match bounds.clients.admit(from.ip(), Instant::now()) {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse(client, &service, from, refusal);
                continue;
            }
        };
        let current = backends.borrow().clone();
        let service = service.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            match forward(client, from, &current, rand::random(), limits).await {
                Ok(()) => {}
                Err(e @ ForwardError::NoEndpoint) => {
                    tracing::debug!(service, %from, "connection closed: {e}");
                }
                Err(e) => tracing::info!(service, %from, "connection closed: {e}"),
            }
        });
    }
}

/// Resets `client` now and counts it.
fn refuse(client: TcpStream, service: &str, from: SocketAddr, refusal: Refusal) {
    metrics::counter!(LB_REFUSED, "reason" => refusal.reason()).increment(1);
    tracing::debug!(service, %from, reason = refusal.reason(), "connection refused: client over its limit");
    // Without linger 0 the close is a FIN: still a refusal, only slower to read as one.
    let _ = client.set_zero_linger();
    drop(client);
}

/// Binds `addr` for the load balancer.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
