//! Who holds a DNS address this peer could not bind. Peers sharing one
//! Docker engine share its bridge address, where pods reach DNS: the first
//! peer binds it, the others find it taken. Asked for
//! [`IDENTITY_NAME`](super::answer::IDENTITY_NAME), a Shoal peer answers
//! its cluster id; anything else answers differently or not at all.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};

use super::answer::IDENTITY_NAME;
use super::forward::ask;

/// Each try waits this long for an answer.
const TRY_FOR: Duration = Duration::from_millis(500);
const TRIES: usize = 2;

/// What answers DNS at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A Shoal peer of this cluster id.
    Peer { cluster: String },
    /// Something that is no Shoal peer (or did not answer): why we think so.
    Other(String),
}

/// Asks whoever answers DNS at `addr` which cluster it serves.
pub async fn holder_of(addr: SocketAddr) -> Holder {
    let Ok(name) = Name::from_ascii(IDENTITY_NAME) else {
        return Holder::Other("internal: bad identity name".to_owned());
    };
    let mut query = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    query.add_query(Query::query(name, RecordType::TXT));
    let Ok(bytes) = query.to_vec() else {
        return Holder::Other("internal: cannot encode the query".to_owned());
    };
    let mut last = String::from("no answer");
    for _ in 0..TRIES {
        match tokio::time::timeout(TRY_FOR, ask(addr, &bytes)).await {
            Ok(Ok(answer)) => {
                let cluster = answer.answers.iter().find_map(|r| match &r.data {
                    RData::TXT(txt) => txt
                        .txt_data
                        .first()
                        .map(|s| String::from_utf8_lossy(s).into_owned()),
                    _ => None,
                });
                return match cluster {
                    Some(cluster) => Holder::Peer { cluster },
                    None => Holder::Other(format!(
                        "it answers {IDENTITY_NAME} TXT without a cluster id ({})",
                        answer.metadata.response_code
                    )),
                };
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no answer".to_owned(),
        }
    }
    Holder::Other(format!("{last} to {IDENTITY_NAME} TXT"))
}
