//! Asking the live peers for their events over the cluster's own transport.
//!
//! A request travels as a QUIC request like an image fetch, told apart by
//! a magic prefix; the answer is the peer's [`EventJson`] list under the
//! wire encoding (version byte, size limit). QUIC and not the peers' HTTP
//! APIs: those listen on loopback by default, the transport always reaches
//! a live member, authenticated by the cluster's TLS.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_gossip::quic::QuicTransport;

use super::store::{self, EventJson};

const MAGIC: &[u8; 8] = b"SHOALEVT";

/// Longest answer accepted: a full store is well below it (~300 B an event).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// How long one peer may take to answer before it is left out.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// True when an inbound request asks for our events.
pub fn is_request(body: &[u8]) -> bool {
    body == MAGIC
}

pub fn request() -> Bytes {
    Bytes::from_static(MAGIC)
}

/// Our answer to a peer.
pub fn answer(events: &[EventJson]) -> Bytes {
    match shoal_crdt_state::wire::encode(&events) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode our events for a peer");
            Bytes::new()
        }
    }
}

/// The whole cluster's events, as far as the live peers answered.
#[derive(Debug, Clone, Default)]
pub struct ClusterEvents {
    pub events: Vec<EventJson>,
    /// Live peers that did not answer, with why: their events are missing.
    pub unanswered: Vec<String>,
}

/// Asks every one of `peers` (name, address) at once, merges their answers
/// with `local`.
pub async fn gather(
    transport: QuicTransport,
    peers: Vec<(String, SocketAddr)>,
    local: Vec<EventJson>,
) -> ClusterEvents {
    let asks = peers.into_iter().map(|(name, addr)| {
        let transport = transport.clone();
        async move {
            let asked = tokio::time::timeout(
                PEER_TIMEOUT,
                transport.request(addr, request(), MAX_ANSWER),
            )
            .await;
            let result = match asked {
                Err(_) => Err(format!("no answer within {}s", PEER_TIMEOUT.as_secs())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(bytes)) => shoal_crdt_state::wire::decode::<Vec<EventJson>>(&bytes, MAX_ANSWER)
                    .map_err(|e| e.to_string()),
            };
            (name, result)
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let mut lists = vec![local];
    let mut unanswered = Vec::new();
    for (name, result) in answers {
        match result {
            Ok(list) => lists.push(list),
            Err(why) => unanswered.push(format!("{name}: {why}")),
        }
    }
    ClusterEvents {
        events: store::merge(lists),
        unanswered,
    }
}
