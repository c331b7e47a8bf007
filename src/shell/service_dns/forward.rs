//! Names outside the cluster domain go to the host's resolvers (the
//! `nameserver` lines of /etc/resolv.conf), as they are: the query's bytes
//! out, the first matching answer back, or nothing after a short timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::net::UdpSocket;

/// Each resolver gets this long; at most [`MAX_UPSTREAMS`] are tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);
pub const MAX_UPSTREAMS: usize = 2;

/// Largest answer taken from a resolver (EDNS's usual ceiling).
const MAX_ANSWER: usize = 4096;

/// The host's resolvers.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    servers: Vec<SocketAddr>,
}

/// Why a forwarded name has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no resolver in /etc/resolv.conf to forward to")]
    NoResolver,
    #[error("no resolver answered (last: {0})")]
    NoAnswer(String),
}

impl Upstreams {
    pub fn new(servers: Vec<SocketAddr>) -> Upstreams {
        Upstreams { servers }
    }

    /// The `nameserver`s of `path`, leaving out `ours` (forwarding to
    /// ourselves would loop). A file that cannot be read gives none.
    pub fn from_resolv_conf(path: &Path, ours: &[IpAddr]) -> Upstreams {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "cannot read resolvers; names outside the cluster will fail");
            String::new()
        });
        let servers = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("nameserver"))
            .filter_map(|rest| rest.trim().parse::<IpAddr>().ok())
            .filter(|ip| !ours.contains(ip))
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        Upstreams { servers }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Sends `query` (a whole DNS message) to the resolvers in turn and
    /// returns the first answer with the query's id.
    pub async fn forward(&self, query: &[u8]) -> Result<Message, ForwardError> {
        if self.servers.is_empty() {
            return Err(ForwardError::NoResolver);
        }
        let mut last = String::new();
        for server in self.servers.iter().take(MAX_UPSTREAMS) {
            match tokio::time::timeout(UPSTREAM_TIMEOUT, ask(*server, query)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => last = format!("{server}: {e}"),
                Err(_) => last = format!("{server}: timed out"),
            }
        }
        Err(ForwardError::NoAnswer(last))
    }
}

pub(super) async fn ask(server: SocketAddr, query: &[u8]) -> std::io::Result<Message> {
    let any: IpAddr = match server {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; MAX_ANSWER];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything that is not the answer to this query is ignored.
        if n < 2 || buf[..2] != query[..2] {
            continue;
        }
        match Message::from_vec(&buf[..n]) {
            Ok(message) => return Ok(message),
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("malformed answer: {e}"),
                ));
            }
        }
    }
}
