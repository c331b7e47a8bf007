//! The DNS server every peer runs for services (hickory-server), on UDP and
//! TCP at each address it is given: the service address (pods' resolver)
//! and the advertised address (`dig @peer`).
//!
//! - [`answer`]: what a name answers, from the service table alone.
//! - [`forward`]: names outside the cluster domain, to the host's resolvers.
//! - [`holder`]: who holds a DNS address this peer could not bind.
//!
//! Answers come from the latest `ServiceTable` the server is sent, so a
//! service is resolvable as soon as this peer knows of it.

pub mod answer;
pub mod forward;
pub mod holder;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use self::answer::{Answer, answer, identity};
pub use self::forward::Upstreams;
use crate::services::ServiceTable;

/// A TCP client that sends no query this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Answers queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// The running DNS server of one peer: one hickory server per address.
/// Dropping it stops them.
pub struct DnsServer {
    servers: Vec<Server<Handler>>,
    addrs: Vec<SocketAddr>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve DNS on {addr} ({proto}): {source}")]
pub struct DnsBindError {
    pub addr: SocketAddr,
    pub proto: &'static str,
    #[source]
    pub source: std::io::Error,
}

impl DnsServer {
    /// Serves DNS on UDP and TCP at each of `addrs`, answering from the
    /// tables sent on `tables` and forwarding other names to `upstreams`;
    /// `cluster` is the id it gives for [`answer::IDENTITY_NAME`].
    pub async fn spawn(
        addrs: &[SocketAddr],
        tables: watch::Receiver<Arc<ServiceTable>>,
        upstreams: Upstreams,
        cluster: &str,
    ) -> Result<DnsServer, DnsBindError> {
        let upstreams = Arc::new(upstreams);
        let cluster: Arc<str> = Arc::from(cluster);
        let mut servers = Vec::new();
        let mut bound = Vec::new();
        for &addr in addrs {
            let udp = UdpSocket::bind(addr).await.map_err(|source| DnsBindError {
                addr,
                proto: "UDP",
                source,
            })?;
            let addr = udp.local_addr().unwrap_or(addr);
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|source| DnsBindError {
                    addr,
                    proto: "TCP",
                    source,
                })?;
            let mut server = Server::new(Handler {
                tables: tables.clone(),
                local: addr.ip(),
                upstreams: upstreams.clone(),
                cluster: cluster.clone(),
            });
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE, TCP_RESPONSE_BUFFER);
            tracing::info!(%addr, "serving DNS for services");
            servers.push(server);
            bound.push(addr);
        }
        Ok(DnsServer {
            servers,
            addrs: bound,
        })
    }

    /// Where it listens (ports resolved when 0 was asked for).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops serving and waits for the server tasks to end.
    pub async fn shutdown(mut self) {
        for server in &mut self.servers {
            let _ = server.shutdown_gracefully().await;
        }
    }
}

/// Answers the questions that come to one address.
struct Handler {
    tables: watch::Receiver<Arc<ServiceTable>>,
    /// The address queries arrive at: first in every answer.
    local: IpAddr,
    upstreams: Arc<Upstreams>,
    cluster: Arc<str>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let edns = response_edns(request);
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let refuse = |code| {
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = code;
            metadata
        };
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            return send(
                &mut response,
                builder.error_msg(&request.metadata, ResponseCode::NotImp),
            )
            .await
            .unwrap_or_else(|| failed(refuse(ResponseCode::NotImp)));
        }
        let [query] = request.queries.queries() else {
            return send(
                &mut response,
                builder.error_msg(&request.metadata, ResponseCode::FormErr),
            )
            .await
            .unwrap_or_else(|| failed(refuse(ResponseCode::FormErr)));
        };
        let table = self.tables.borrow().clone();
        let name = query.original().name();
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let reply = identity(&self.cluster, name, query.query_type())
            .unwrap_or_else(|| answer(&table, self.local, name, query.query_type()));
        let sent = match reply {
            Answer::Records {
                answers,
                additionals,
            } => {
                metadata.authoritative = true;
                let message = builder.build(metadata, &answers, None, None, &additionals);
                send(&mut response, message).await
            }
            Answer::NxDomain => {
                metadata.authoritative = true;
                metadata.response_code = ResponseCode::NXDomain;
                send(&mut response, builder.build_no_records(metadata)).await
            }
            Answer::Forward => match self.upstreams.forward(request.as_slice()).await {
                Ok(upstream) => {
                    forwarded(&mut metadata, &upstream);
                    let message = builder.build(
                        metadata,
                        &upstream.answers,
                        &upstream.authorities,
                        None,
                        upstream.additionals.iter().filter(|r| !is_opt(r)),
                    );
                    send(&mut response, message).await
                }
                Err(e) => {
                    tracing::debug!(name = %name, error = %e, "forwarding failed");
                    metadata.response_code = ResponseCode::ServFail;
                    send(&mut response, builder.build_no_records(metadata)).await
                }
            },
        };
        sent.unwrap_or_else(|| failed(refuse(ResponseCode::ServFail)))
    }
}

/// Copies what the resolver said about the answer into ours.
fn forwarded(metadata: &mut Metadata, upstream: &Message) {
    metadata.response_code = upstream.metadata.response_code;
    metadata.truncation = upstream.metadata.truncation;
    metadata.authentic_data = false;
}

fn is_opt(record: &hickory_server::proto::rr::Record) -> bool {
    record.record_type() == hickory_server::proto::rr::RecordType::OPT
}

/// EDNS for the answer when the question had it: the client's payload size.
fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|asked| {
        let mut edns = Edns::new();
        edns.set_max_payload(asked.max_payload().max(512));
        edns
    })
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    message: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a hickory_server::proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_server::proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_server::proto::rr::Record> + Send + 'a,
        impl Iterator<Item = &'a hickory_server::proto::rr::Record> + Send + 'a,
    >,
) -> Option<ResponseInfo> {
    match response.send_response(message).await {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::debug!(error = %e, "cannot send a DNS answer");
            None
        }
    }
}

fn failed(metadata: Metadata) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
