//! Asking the live peers for their events over the cluster's own transport.
//!
//! A request travels as a QUIC request like an image fetch, told apart by
//! a magic prefix; the answer is the peer's [`EventJson`] list under the
//! wire encoding (version byte, size limit). QUIC and not the peers' HTTP
//! APIs: those listen on loopback by default, the transport always reaches
//! a live member, authenticated by the cluster's TLS.

use std::collections::BTreeMap;
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
    names: &BTreeMap<String, String>,
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
    let mut lists = vec![name_nodes(local, names)];
    let mut unanswered = Vec::new();
    for (name, result) in answers {
        match result {
            Ok(list) => lists.push(name_nodes(list, names)),
            Err(why) => unanswered.push(format!("{name}: {why}")),
        }
    }
    ClusterEvents {
        events: store::merge(lists),
        unanswered,
    }
}

/// Names the nodes an event calls by id: a peer that sees a member come up
/// before that member's record (its name) has reached it records the id.
/// Renamed before merging, so every peer's copy of a cluster-wide event
/// becomes one row.
pub fn name_nodes(mut list: Vec<EventJson>, names: &BTreeMap<String, String>) -> Vec<EventJson> {
    for event in &mut list {
        if event.involved_object.kind != "Node" {
            continue;
        }
        if let Some(name) = names.get(&event.involved_object.name) {
            event.message = event.message.replace(&event.involved_object.name, name);
            event.involved_object.name = name.clone();
        }
    }
    list
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

    #[test]
    fn a_node_recorded_by_id_is_named_and_merges_with_the_named_copy() {
        let up = |host: &str, node: &str| {
            let mut store = EventStore::new(host.into(), EVENTS_KEPT);
            let record = EventRecord::new(
                1_796_190_968_158,
                EventType::Normal,
                "NodeUp",
                (ObjectKind::Node, node.to_owned()),
                format!("Node {node} is up"),
            );
            store.record(record.cluster_wide());
            store.list()
        };
        let names = BTreeMap::from([("26d7135204b39eeb".to_owned(), "node1".to_owned())]);
        let lists = vec![
            name_nodes(up("node0", "26d7135204b39eeb"), &names),
            name_nodes(up("node2", "node1"), &names),
        ];
        let merged = store::merge(lists);
        assert_eq!(merged.len(), 1, "{merged:?}");
        assert_eq!(merged[0].involved_object.name, "node1");
        assert_eq!(merged[0].message, "Node node1 is up");
        assert_eq!(merged[0].source.host, "node0,node2");
    }
}
