//! Saying why a join does not complete, and giving up on a hopeless one.
//!
//! A peer started with `--join` that reaches nobody would otherwise run as
//! a one-node island and say nothing. The watch reports every unreached
//! seed at warn level with the transport's reason, within seconds and then
//! every few seconds, and after `--join-timeout` ends the peer with an
//! error — unless it was told to `--start-alone`, or it restarted with
//! remembered members, which it keeps trying forever (a site whose other
//! machines are still booting).

use std::net::SocketAddr;
use std::time::Duration;

use shoal_gossip::quic::QuicTransport;

use crate::peer::Peer;

/// First report of an unreached seed (a wrong token fails in milliseconds,
/// a dead address within the transport's connect timeout).
const FIRST_REPORT: Duration = Duration::from_secs(2);
/// Later reports, while the join goes on.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Watches one join, from the peer's start until it sees another member.
#[derive(Debug)]
pub struct JoinWatch {
    /// Give up at this time; `None`: keep trying.
    give_up_at: Option<Duration>,
    next_report: Duration,
}

/// What the watch concluded at one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinVerdict {
    Waiting,
    Joined,
    /// Stop the peer: nobody answered in time. The text says why.
    GiveUp(String),
}

impl JoinWatch {
    /// Starts watching at `now`; `give_up_after` is `None` to keep trying.
    pub fn new(now: Duration, give_up_after: Option<Duration>) -> JoinWatch {
        JoinWatch {
            give_up_at: give_up_after.map(|d| now + d),
            next_report: now + FIRST_REPORT,
        }
    }

    /// Reports unreached contacts when due; says whether to go on.
    pub fn check(&mut self, now: Duration, peer: &Peer, transport: &QuicTransport) -> JoinVerdict {
        if peer.is_connected() {
            tracing::info!("joined the cluster");
            return JoinVerdict::Joined;
        }
        let unreached = peer.unreached_contacts();
        let reasons: Vec<(SocketAddr, String)> = unreached
            .iter()
            .map(|&addr| (addr, explain(transport.dial_failure(addr).as_deref())))
            .collect();
        if let Some(at) = self.give_up_at
            && now >= at
        {
            let list = reasons
                .iter()
                .map(|(addr, why)| format!("{addr}: {why}"))
                .collect::<Vec<_>>()
                .join("; ");
            return JoinVerdict::GiveUp(format!(
                "could not join the cluster: no seed answered ({list}); check --join and \
                 --join-token (SHOAL_JOIN_TOKEN), or pass --start-alone to run as a \
                 one-node cluster until a seed answers"
            ));
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_EVERY;
            for (addr, why) in &reasons {
                tracing::warn!(seed = %addr, reason = %why, "cannot join through this peer yet");
            }
        }
        JoinVerdict::Waiting
    }
}

/// The transport's reason for a failed dial, in an operator's terms.
pub fn explain(reason: Option<&str>) -> String {
    let Some(reason) = reason else {
        return "no answer yet (still trying)".to_owned();
    };
    if reason.contains("is bound to another key") {
        return format!(
            "it refuses this peer: our node id is bound to another key there ({reason}); this \
             data dir's node.key is not the one the id was bound with (a copied node.json, or a \
             lost node.key): start with a fresh data dir, and `shoal node delete` the old id once \
             it is down"
        );
    }
    // rustls names the certificate error; only a chain that does not lead
    // to this token's CA (or names another cluster) means another cluster.
    let another_cluster = ["UnknownIssuer", "BadSignature", "NotValidForName"];
    let out_of_date = ["Expired", "NotValidYet"];
    if another_cluster.iter().any(|t| reason.contains(t)) {
        format!(
            "it belongs to another cluster: the TLS handshake failed because its certificate \
             is not signed by this join token's cluster ({reason}); check --join-token"
        )
    } else if out_of_date.iter().any(|t| reason.contains(t)) {
        format!(
            "the TLS handshake failed on a certificate outside its validity period ({reason}): \
             check that both machines' clocks are right"
        )
    } else if reason.contains("no handshake within") || reason.contains("timed out") {
        format!("no answer ({reason}): is `shoal up` running there, and is its UDP port reachable?")
    } else {
        reason.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn a_certificate_failure_is_read_as_another_cluster() {
        let why = explain(Some(
            "the cryptographic handshake failed: error 48: invalid peer certificate: UnknownIssuer",
        ));
        assert!(
            why.contains("another cluster") && why.contains("--join-token"),
            "{why}"
        );
        let why = explain(Some("no handshake within 5s"));
        assert!(why.contains("is `shoal up` running there"), "{why}");
        assert!(explain(None).contains("no answer yet"));
        let why = explain(Some(
            "aborted by peer: the cryptographic handshake failed: error 46: invalid peer \
             certificate: Other(OtherError(node id 00000000000000a1 is bound to another key \
             (0102030405060708), not to the key of the certificate presented (0807060504030201)))",
        ));
        assert!(
            why.contains("our node id is bound to another key there")
                && !why.contains("another cluster"),
            "{why}"
        );
    }

    #[test]
    fn only_a_foreign_chain_is_read_as_another_cluster() {
        let why = explain(Some(
            "the cryptographic handshake failed: error 45: invalid peer certificate: Expired",
        ));
        assert!(
            why.contains("clocks") && !why.contains("another cluster"),
            "{why}"
        );
        let other = "the cryptographic handshake failed: invalid peer certificate: UnsupportedSignatureAlgorithm";
        assert_eq!(explain(Some(other)), other);
    }
}
