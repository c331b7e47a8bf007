//! Answers held back until the write they acknowledge is durable.
//!
//! The driver applies a write at once (the peer core is in memory) and
//! queues its records for the writer thread; the answer to the user, or to
//! the peer that asked us to store a replica of a write, waits here until
//! the writer reports that sequence number durable. Nothing here blocks the
//! driver: answers leave from short spawned tasks.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_gossip::quic::{QuicTransport, Responder};
use tokio::sync::oneshot;

use super::handle::HandleError;
use super::persist::Durability;
use crate::peer::CommandOutcome;

/// The reply a peer sends once it stored a replicated write durably.
pub const STORED: &[u8] = b"stored";

/// How long a replicated write waits for another peer's confirmation.
pub const REPLICATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Peers asked at once to store a replicated write; the first to confirm wins.
pub const REPLICATE_FANOUT: usize = 2;

/// Outcome of asking other peers to store a write.
pub type Replication = oneshot::Receiver<Result<SocketAddr, String>>;

/// One answer waiting for durability.
#[derive(Debug)]
pub enum Held {
    /// A user's command, answered with `outcome` (and, for a replicated
    /// write, once another peer confirmed too).
    Command {
        reply: oneshot::Sender<Result<CommandOutcome, HandleError>>,
        outcome: CommandOutcome,
        replication: Option<Replication>,
    },
    /// Another peer's request to store a write.
    Replica(Responder),
}

/// Held answers in sequence order.
#[derive(Debug, Default)]
pub struct Acks {
    held: VecDeque<(u64, Held)>,
}

impl Acks {
    /// Holds `answer` until everything queued up to `seq` is durable.
    pub fn hold(&mut self, seq: u64, answer: Held) {
        self.held.push_back((seq, answer));
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Answers what `durability` allows: durable ones succeed, ones a
    /// failed write covers fail with its reason; the rest keep waiting.
    pub fn release(&mut self, durability: &Durability) {
        let mut keep = VecDeque::with_capacity(self.held.len());
        for (seq, held) in self.held.drain(..) {
            if seq <= durability.durable {
                answer(held, Ok(()));
            } else if let Some((upto, why)) = &durability.failed
                && seq <= *upto
            {
                answer(held, Err(why.clone()));
            } else {
                keep.push_back((seq, held));
            }
        }
        self.held = keep;
    }
}

fn answer(held: Held, durable: Result<(), String>) {
    match held {
        Held::Command {
            reply,
            outcome,
            replication,
        } => {
            let Err(why) = durable else {
                let Some(replication) = replication else {
                    let _ = reply.send(Ok(outcome));
                    return;
                };
                tokio::spawn(async move {
                    let result = match replication.await {
                        Ok(Ok(_)) => Ok(outcome),
                        Ok(Err(why)) => Err(HandleError::NotReplicated(why)),
                        Err(_) => Err(HandleError::Closed),
                    };
                    let _ = reply.send(result);
                });
                return;
            };
            let _ = reply.send(Err(HandleError::NotDurable(why)));
        }
        Held::Replica(responder) => {
            // A peer that cannot store the write sends nothing: the
            // requester's other targets or its timeout decide.
            if durable.is_ok() {
                tokio::spawn(async move {
                    if let Err(e) = responder.respond(Bytes::from_static(STORED)).await {
                        tracing::debug!(error = %e, "replica confirmation not delivered");
                    }
                });
            }
        }
    }
}

/// Asks up to [`REPLICATE_FANOUT`] of `targets` to store `body` (an encoded
/// sync push); answers with the first that confirms.
pub fn replicate(transport: QuicTransport, targets: Vec<SocketAddr>, body: Bytes) -> Replication {
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        if targets.is_empty() {
            let _ = tx.send(Err("no other peer is alive to confirm it".to_owned()));
            return;
        }
        let asked = targets.len();
        let mut requests: futures_util::stream::FuturesUnordered<_> = targets
            .into_iter()
            .map(|to| {
                let transport = transport.clone();
                let body = body.clone();
                async move {
                    let reply = transport.request(to, body, STORED.len()).await;
                    (to, reply)
                }
            })
            .collect();
        let first = tokio::time::timeout(REPLICATE_TIMEOUT, async {
            use futures_util::StreamExt;
            let mut errors = Vec::new();
            while let Some((to, reply)) = requests.next().await {
                match reply {
                    Ok(bytes) if bytes.as_ref() == STORED => return Ok(to),
                    Ok(_) => errors.push(format!("{to} answered something else")),
                    Err(e) => errors.push(format!("{to}: {e}")),
                }
            }
            Err(errors.join("; "))
        })
        .await;
        let result = match first {
            Ok(result) => result
                .map_err(|why| format!("none of the {asked} peers asked confirmed it ({why})")),
            Err(_) => Err(format!(
                "none of the {asked} peers asked confirmed it within {REPLICATE_TIMEOUT:?}"
            )),
        };
        let _ = tx.send(result);
    });
    rx
}
