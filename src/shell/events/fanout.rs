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
            let asked =
                tokio::time::timeout(PEER_TIMEOUT, transport.request(addr, request(), MAX_ANSWER))
                    .await;
            let result = match asked {
                Err(_) => Err(format!("no answer within {}s", PEER_TIMEOUT.as_secs())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(bytes)) => {
                    shoal_crdt_state::wire::decode::<Vec<EventJson>>(&bytes, MAX_ANSWER)
                        .map_err(|e| e.to_string())
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::events::{EventRecord, EventType, ObjectKind};
    use crate::shell::events::EventStore;
    use crate::shell::events::store::EVENTS_KEPT;

    #[test]
    fn a_full_store_fits_one_answer_and_round_trips() {
        let mut store = EventStore::new("node-with-a-long-name".into(), EVENTS_KEPT);
        for i in 0..EVENTS_KEPT as u64 * 2 {
            store.record(EventRecord::new(
                1_796_190_968_158 + i,
                EventType::Warning,
                "BackOff",
                (ObjectKind::Pod, format!("frontend-{i}")),
                "Back-off restarting the failed pod (exited with code 1)".into(),
            ));
        }
        let list = store.list();
        assert_eq!(list.len(), EVENTS_KEPT);
        let bytes = answer(&list);
        eprintln!(
            "a full store ({EVENTS_KEPT} events) is {} bytes on the wire",
            bytes.len()
        );
        assert!(bytes.len() < MAX_ANSWER);
        let back: Vec<EventJson> = shoal_crdt_state::wire::decode(&bytes, MAX_ANSWER).unwrap();
        assert_eq!(back, list);
        assert!(is_request(&request()) && !is_request(b"SHOALIMG"));
    }
}
