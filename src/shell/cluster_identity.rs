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
//!
//! A node that started that way asks again in the background ([`recheck`],
//! backing off up to [`RECHECK_FOR`]). An answer that names another
//! identity is logged as an error with the fix; the running node does not
//! switch: its containers are labelled, its DNS server and API CA serve
//! under the identity it started with, and changing them under running
//! pods and clients is not safe.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;

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
/// The background ask's first pause, doubled after each unanswered round
/// up to [`RECHECK_MAX_PAUSE`]; it stops once [`RECHECK_FOR`] has passed.
const RECHECK_FIRST_PAUSE: Duration = Duration::from_secs(30);
const RECHECK_MAX_PAUSE: Duration = Duration::from_secs(5 * 60);
pub const RECHECK_FOR: Duration = Duration::from_secs(30 * 60);

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

/// The identity a node settled on at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub cluster: ClusterIdentity,
    /// A fresh joiner none of whose seeds answered in time: `cluster` is its
    /// token's, taken on trust; [`recheck`] asks again.
    pub unconfirmed: bool,
}

/// The identity this node uses; one learned from a seed that is not the
/// token's own is recorded in `identity` and node.json. `learn` is given for a fresh data dir that joins.
pub async fn settle(
    data: &DataDir,
    identity: &mut NodeIdentity,
    token: &JoinToken,
    learn: Option<Learn<'_>>,
) -> anyhow::Result<Settled> {
    let settled = |cluster| Settled {
        cluster,
        unconfirmed: false,
    };
    if let Some(text) = &identity.cluster {
        let cluster = text.parse().with_context(|| {
            format!(
                "the cluster identity in {} is malformed",
                data.path().join("node.json").display()
            )
        })?;
        return Ok(settled(cluster));
    }
    let cluster = match learn {
        None => ClusterIdentity::of(token),
        Some(learn) => match ask_seeds(&learn).await {
            Ok(cluster) => cluster,
            Err(why) => {
                tracing::warn!(
                    reason = %why,
                    "no seed told the cluster's identity within {}s: starting with this join token's (right unless the token was rotated; a peer that joined with a rotated token then has an id and API CA of its own: start it again with an empty data dir once a seed is up). Asking again in the background for {} minutes",
                    learn.within.as_secs(),
                    RECHECK_FOR.as_secs() / 60
                );
                return Ok(Settled {
                    cluster: ClusterIdentity::of(token),
                    unconfirmed: true,
                });
            }
        },
    };
    if cluster == ClusterIdentity::of(token) {
        // Derivable from the token: not written, so node.json stays as the
        // previous release wrote and checks it (a rollback keeps working).
        return Ok(settled(cluster));
    }
    tracing::info!(cluster = %cluster.cluster_id(), "joined with a rotated token: using the cluster's identity");
    identity.cluster = Some(cluster.to_string());
    data.save_identity(identity)?;
    Ok(settled(cluster))
}

/// What a late answer says about the identity a node runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// The seeds' identity is the one the node runs with.
    Confirmed,
    /// The node runs with another identity than the cluster's: the text
    /// says so and how to fix it (never the CA seed).
    Wrong(String),
}

/// Compares a seed's answer with the identity the node runs with.
pub fn recheck_verdict(
    running: &ClusterIdentity,
    seed: SocketAddr,
    answer: &ClusterIdentity,
) -> Recheck {
    if running == answer {
        return Recheck::Confirmed;
    }
    let ca = if running.cluster_id() == answer.cluster_id() {
        " (same id, another API CA)"
    } else {
        ""
    };
    Recheck::Wrong(format!(
        "this peer runs with the wrong cluster identity: no seed answered at its start, so it \
         took its join token's (cluster id {}), and seed {seed} now says the cluster's is \
         cluster id {}{ca} (the token was rotated). Its container labels, DNS identity and API \
         CA differ from the other members' until it is fixed: stop it, move its --data-dir \
         away and start it again with the same --join while a seed is up (it then learns the \
         cluster's identity)",
        running.cluster_id(),
        answer.cluster_id(),
    ))
}

/// The pause before background ask number `attempt` (from 0), when
/// `waited` has passed since the first; `None` once [`RECHECK_FOR`] would
/// be passed.
pub fn recheck_pause(attempt: u32, waited: Duration) -> Option<Duration> {
    let pause = RECHECK_FIRST_PAUSE
        .saturating_mul(1 << attempt.min(16))
        .min(RECHECK_MAX_PAUSE);
    (waited + pause <= RECHECK_FOR).then_some(pause)
}

/// For a node that started on its token's identity without an answer
/// ([`Settled::unconfirmed`]): asks `seeds` again with growing pauses until
/// one answers, [`RECHECK_FOR`] passes or the peer shuts down, and logs
/// what the answer means ([`recheck_verdict`]).
pub async fn recheck(
    transport: QuicTransport,
    seeds: Vec<SocketAddr>,
    running: ClusterIdentity,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut attempt = 0;
    while let Some(pause) = recheck_pause(attempt, started.elapsed()) {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => return,
        }
        attempt += 1;
        // Raced against shutdown too: the task holds the transport.
        let asked = tokio::select! {
            asked = ask_round(&transport, &seeds) => asked,
            _ = shutdown.changed() => return,
        };
        let failures = match asked {
            Ok((seed, answer)) => {
                match recheck_verdict(&running, seed, &answer) {
                    Recheck::Confirmed => tracing::info!(
                        %seed,
                        cluster = %running.cluster_id(),
                        "a seed confirmed the cluster identity this peer started with"
                    ),
                    Recheck::Wrong(why) => tracing::error!(
                        %seed,
                        running = %running.cluster_id(),
                        cluster = %answer.cluster_id(),
                        "{why}"
                    ),
                }
                return;
            }
            Err(failures) => failures,
        };
        for (seed, why) in failures {
            tracing::debug!(%seed, reason = %why, "the cluster identity ask is still unanswered");
        }
    }
    if !*shutdown.borrow() {
        tracing::warn!(
            "no seed told the cluster's identity within {} minutes of the start; this peer keeps its join token's (right unless the token was rotated)",
            RECHECK_FOR.as_secs() / 60
        );
    }
}

/// Asks every seed at once, round after round, until one answers or
/// `learn.within` passes; the error lists each seed's last failure. Seeds
/// that fail are reported as the join watch would (`join_watch`).
async fn ask_seeds(learn: &Learn<'_>) -> Result<ClusterIdentity, String> {
    let deadline = Instant::now() + learn.within;
    let mut next_report = Instant::now() + FIRST_REPORT;
    loop {
        let failures = match ask_round(learn.transport, learn.seeds).await {
            Ok((_, cluster)) => return Ok(cluster),
            Err(failures) => failures,
        };
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

/// Asks every seed once, all at once: the first answer with the seed that
/// gave it, or each seed's failure explained.
async fn ask_round(
    transport: &QuicTransport,
    seeds: &[SocketAddr],
) -> Result<(SocketAddr, ClusterIdentity), Vec<(SocketAddr, String)>> {
    let asks = seeds.iter().map(|&seed| async move {
        let asked = tokio::time::timeout(
            ASK_TIMEOUT,
            transport.request(seed, Bytes::from_static(MAGIC), MAX_ANSWER),
        )
        .await;
        let result = match asked {
            Err(_) => {
                Err(explain(Some(&transport.dial_failure(seed).unwrap_or(
                    format!("no answer within {}s", ASK_TIMEOUT.as_secs()),
                ))))
            }
            Ok(Err(e)) => Err(explain(Some(
                &transport.dial_failure(seed).unwrap_or(e.to_string()),
            ))),
            Ok(Ok(bytes)) => decode_answer(&bytes).map_err(|e| format!("{e:#}")),
        };
        (seed, result)
    });
    let mut failures = Vec::new();
    for (seed, result) in futures_util::future::join_all(asks).await {
        match result {
            Ok(cluster) => return Ok((seed, cluster)),
            Err(why) => failures.push((seed, why)),
        }
    }
    Err(failures)
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

    #[test]
    fn a_late_answer_confirms_or_says_the_identity_is_wrong_and_how_to_fix_it() {
        let seed: SocketAddr = "127.0.107.1:7946".parse().unwrap();
        let creation = ClusterIdentity::of(&JoinToken::from_seed([1; 32]));
        let rotated = ClusterIdentity::of(&JoinToken::from_seed([2; 32]));
        assert_eq!(
            recheck_verdict(&rotated, seed, &rotated),
            Recheck::Confirmed
        );
        let Recheck::Wrong(why) = recheck_verdict(&rotated, seed, &creation) else {
            panic!("another identity is not confirmed");
        };
        assert!(why.contains("wrong cluster identity"), "{why}");
        assert!(why.contains(&rotated.cluster_id()) && why.contains(&creation.cluster_id()));
        assert!(why.contains("--data-dir") && why.contains(&seed.to_string()));
        let seed_hex = creation.to_string().rsplit('.').next().unwrap().to_owned();
        assert!(!why.contains(&seed_hex), "the CA seed is never logged");
    }

    #[test]
    fn the_background_ask_backs_off_and_stops_after_its_bound() {
        let mut waited = Duration::ZERO;
        let mut pauses = Vec::new();
        while let Some(pause) = recheck_pause(pauses.len() as u32, waited) {
            pauses.push(pause);
            waited += pause;
        }
        assert_eq!(pauses[..4], [30, 60, 120, 240].map(Duration::from_secs));
        assert!(pauses.iter().all(|p| *p <= RECHECK_MAX_PAUSE));
        assert!(waited <= RECHECK_FOR && waited + RECHECK_MAX_PAUSE > RECHECK_FOR);
        assert_eq!(
            recheck_pause(u32::MAX, Duration::ZERO),
            Some(RECHECK_MAX_PAUSE)
        );
    }
}
