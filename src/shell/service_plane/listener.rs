//! One listening socket of the load balancer: accepts while the service has
//! room (a semaphore per service), and hands each connection to the proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::backends::Backends;
use super::proxy::{ForwardError, ProxyLimits, forward};

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

/// Starts accepting on `listener` for `service`, forwarding to whatever
/// `backends` holds when a connection arrives.
pub fn spawn_listener(
    service: String,
    listener: TcpListener,
    backends: watch::Receiver<Arc<Backends>>,
    room: Arc<Semaphore>,
    limits: ProxyLimits,
) -> Listening {
    Listening {
        task: tokio::spawn(accept_loop(service, listener, backends, room, limits)),
    }
}

async fn accept_loop(
    service: String,
    listener: TcpListener,
    backends: watch::Receiver<Arc<Backends>>,
    room: Arc<Semaphore>,
    limits: ProxyLimits,
) {
    let local = listener.local_addr().ok();
    loop {
        // Full: stop accepting; the kernel's backlog holds the next clients.
        let Ok(permit) = room.clone().acquire_owned().await else {
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
        let current = backends.borrow().clone();
        let service = service.clone();
        tokio::spawn(async move {
            let _permit = permit;
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

/// Binds `addr` for the load balancer.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
