//! Which cluster identity this node uses (its id and API CA, see
//! [`ClusterIdentity`]), recorded in node.json, and how a new member learns
//! it from the members it joins through.
//!
//! The identity must be known before the runtime (container labels), the
//! DNS server and the API start, and none of them can change it later. A
//! new member's token may be a rotated one, whose own identity is not the
//! cluster's, so it asks its `--join` seeds over QUIC (mutual TLS: only a
//! holder of an admitted token is answered) before anything else starts;
//! every member answers with the identity it recorded, which is the
//! creator's by induction. A node that creates a cluster takes its token's
//! identity, as does a data dir written before identities were recorded
//! (its containers already carry that id).
//!
//! The ask is short ([`ASK_WITHIN`]) and never fatal: peers are often
//! started one by one, each naming the others as seeds, so the first one's
//! seeds are not up yet. Without an answer the node starts with its token's
//! identity, which is the cluster's unless the token was rotated (then the
//! warning says what to do). Whether the seeds are reached at all is the join
//! watch's question, with `--join-timeout`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use shoal_gossip::quic::{ClusterIdentity, JoinToken, QuicTransport};

use super::join_watch::explain;
use super::persist::{DataDir, NodeIdentity};

const MAGIC: &[u8; 8] = b"SHOALCID";
/// An answer is ~100 bytes; anything much larger is not one.
const MAX_ANSWER: usize = 4096;
/// One seed's time to answer one ask.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a fresh member waits for an answer before it starts with its
/// token's identity: two rounds of asks, so one lost handshake packet
/// (QUIC resends after ~1 s) does not cost a rotated joiner its identity.
pub const ASK_WITHIN: Duration = Duration::from_secs(4);
/// Pause between rounds of asks while no seed answered.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// First report of a seed that does not answer, then every so often.
const FIRST_REPORT: Duration = Duration::from_secs(2);
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// True when an inbound request asks for the cluster identity.
pub fn is_request(body: &[u8]) -> bool {
    body == MAGIC
}

/// A member's answer: its recorded identity, under the wire encoding.
pub fn answer(identity: &ClusterIdentity) -> Bytes {
    match shoal_crdt_state::wire::encode(&identity.to_string()) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the cluster identity for a peer");
            Bytes::new()
        }
    }
}

/// A seed's answer to the ask (bytes from another peer: fuzzed as
/// `cluster_identity_answer`).
pub fn decode_answer(bytes: &[u8]) -> anyhow::Result<ClusterIdentity> {
    let text: String = shoal_crdt_state::wire::decode(bytes, MAX_ANSWER)
        .context("the answer is not a cluster identity (does the seed run an older release?)")?;
    Ok(text.parse()?)
}

/// How a fresh member that joins learns the identity.
#[derive(Debug)]
pub struct Learn<'a> {
    pub transport: &'a QuicTransport,
    pub seeds: &'a [SocketAddr],
    /// Give up after this long ([`ASK_WITHIN`]; tests shorten it).
    pub within: Duration,
}

/// The identity this node uses; one learned from a seed that is not the
/// token's own is recorded in `identity` and node.json. `learn` is given for a fresh data dir that joins.
pub async fn settle(
    data: &DataDir,
    identity: &mut NodeIdentity,
    token: &JoinToken,
    learn: Option<Learn<'_>>,
) -> anyhow::Result<ClusterIdentity> {
    if let Some(text) = &identity.cluster {
        return text.parse().with_context(|| {
            format!(
                "the cluster identity in {} is malformed",
                data.path().join("node.json").display()
            )
        });
    }
    let cluster = match learn {
        None => ClusterIdentity::of(token),
        Some(learn) => match ask_seeds(&learn).await {
            Ok(cluster) => cluster,
            Err(why) => {
                tracing::warn!(
                    reason = %why,
                    "no seed told the cluster's identity within {}s: starting with this join token's (right unless the token was rotated; a peer that joined with a rotated token then has an id and API CA of its own: start it again with an empty data dir once a seed is up)",
                    learn.within.as_secs()
                );
                return Ok(ClusterIdentity::of(token));
            }
        },
    };
    if cluster == ClusterIdentity::of(token) {
        // Derivable from the token: not written, so node.json stays as the
        // previous release wrote and checks it (a rollback keeps working).
        return Ok(cluster);
    }
    tracing::info!(cluster = %cluster.cluster_id(), "joined with a rotated token: using the cluster's identity");
    identity.cluster = Some(cluster.to_string());
    data.save_identity(identity)?;
    Ok(cluster)
}

/// Asks every seed at once, round after round, until one answers or
/// `learn.within` passes; the error lists each seed's last failure. Seeds
/// that fail are reported as the join watch would (`join_watch`).
async fn ask_seeds(learn: &Learn<'_>) -> Result<ClusterIdentity, String> {
    let deadline = Instant::now() + learn.within;
    let mut next_report = Instant::now() + FIRST_REPORT;
    let mut failures = Vec::new();
    loop {
        let asks = learn.seeds.iter().map(|&seed| async move {
            let asked = tokio::time::timeout(
                ASK_TIMEOUT,
                learn
                    .transport
                    .request(seed, Bytes::from_static(MAGIC), MAX_ANSWER),
            )
            .await;
            let result = match asked {
                Err(_) => Err(explain(Some(
                    &learn
                        .transport
                        .dial_failure(seed)
                        .unwrap_or(format!("no answer within {}s", ASK_TIMEOUT.as_secs())),
                ))),
                Ok(Err(e)) => Err(explain(Some(
                    &learn.transport.dial_failure(seed).unwrap_or(e.to_string()),
                ))),
                Ok(Ok(bytes)) => decode_answer(&bytes).map_err(|e| format!("{e:#}")),
            };
            (seed, result)
        });
        failures.clear();
        for (seed, result) in futures_util::future::join_all(asks).await {
            match result {
                Ok(cluster) => return Ok(cluster),
                Err(why) => failures.push((seed, why)),
            }
        }
        if Instant::now() >= next_report {
            next_report = Instant::now() + REPORT_EVERY;
            for (seed, why) in &failures {
                tracing::warn!(%seed, reason = %why, "cannot join through this peer yet");
            }
        }
        if Instant::now() + ASK_EVERY >= deadline {
            let list: Vec<String> = failures
                .iter()
                .map(|(seed, why)| format!("{seed}: {why}"))
                .collect();
            return Err(list.join("; "));
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

/// The identity a node.json names: the recorded one, or that of the node's
/// token for files written before identities were recorded.
pub fn of_recorded(identity: &NodeIdentity) -> anyhow::Result<ClusterIdentity> {
    match &identity.cluster {
        Some(text) => Ok(text.parse()?),
        None => Ok(ClusterIdentity::of(
            &identity
                .token
                .parse::<JoinToken>()
                .context("the join token in node.json is malformed")?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_round_trips_and_garbage_is_refused() {
        let cluster = ClusterIdentity::of(&JoinToken::from_seed([4; 32]));
        assert_eq!(decode_answer(&answer(&cluster)).unwrap(), cluster);
        assert!(is_request(MAGIC) && !is_request(b"SHOALEVT"));
        let not_one = shoal_crdt_state::wire::encode(&"shoal1.x.y".to_owned()).unwrap();
        assert!(decode_answer(&not_one).is_err());
        let err = decode_answer(b"\x00garbage").unwrap_err();
        assert!(format!("{err:#}").contains("older release"), "{err:#}");
    }

    #[test]
    fn an_old_node_json_names_the_cluster_of_its_token() {
        let token = JoinToken::from_seed([5; 32]);
        let mut identity = NodeIdentity {
            node_id: 1,
            incarnation: 0,
            name: "n".into(),
            token: token.to_string(),
            join_secrets: None,
            cluster: None,
        };
        assert_eq!(of_recorded(&identity).unwrap(), ClusterIdentity::of(&token));
        let other = ClusterIdentity::of(&JoinToken::from_seed([6; 32]));
        identity.cluster = Some(other.to_string());
        assert_eq!(of_recorded(&identity).unwrap(), other);
        identity.cluster = Some("shoalcluster1.zz".into());
        assert!(of_recorded(&identity).is_err());
    }
}
