//! Join-token rotation in the shell: follows the replicated join-secret
//! register (`shoal_crdt_state::join_secrets`), re-trusts the QUIC transport
//! and records the tokens in node.json.
//!
//! Calling order: [`JoinTrust::note`] after every drain of the peer (it
//! compares one stamp, so it costs nothing when nothing rotated). What a
//! rotation changes is the set of tokens whose certificates new handshakes
//! accept and which certificate this node presents; connections already
//! open are left as they are, so no member restarts or reconnects.
//!
//! node.json keeps the register's value so that a member restarted after a
//! rotation presents the new token's certificate and trusts the tokens
//! still in grace, even before it hears from anyone. A failure to write it
//! is logged and retried at the next change; the state file holds the
//! register too and is applied at the first drain after a start.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shoal_crdt_state::hlc::Hlc;
use shoal_crdt_state::join_secrets::JoinSecrets;
use shoal_gossip::quic::{JoinToken, QuicConfig, QuicTransport};

use super::persist::{DataDir, NodeIdentity};
use crate::peer::Peer;

/// Follows the register for one peer.
#[derive(Debug)]
pub struct JoinTrust {
    /// Stamp of the register value last applied (`None`: never rotated).
    applied: Option<Hlc>,
    data: DataDir,
    identity: NodeIdentity,
}

impl JoinTrust {
    pub fn new(data: DataDir, identity: NodeIdentity) -> JoinTrust {
        JoinTrust {
            applied: None,
            data,
            identity,
        }
    }

    /// Applies the register if it changed since the last call.
    pub fn note(&mut self, peer: &Peer, transport: &QuicTransport) {
        let register = peer.state().desired.join_secrets();
        if register.stamp() == self.applied {
            return;
        }
        self.applied = register.stamp();
        let Some(value) = register.get() else {
            return;
        };
        let (current, rotated) = trusted(value, SystemTime::now());
        let Some(current) = current else {
            tracing::warn!("the replicated join token is malformed; trust left unchanged");
            return;
        };
        tracing::info!(
            current = %current.cluster_id(),
            in_grace = rotated.len(),
            "join token rotated: presenting the new token's certificate, trusting the old until its deadline"
        );
        if let Err(e) = transport.set_trusted_tokens(current, &rotated) {
            tracing::error!(error = %e, "cannot switch the QUIC transport to the rotated join token; trying again");
            // Not applied: the next call tries again.
            self.applied = None;
        }
        if self.identity.join_secrets.as_ref() != Some(value) {
            self.identity.join_secrets = Some(value.clone());
            if let Err(e) = self.data.save_identity(&self.identity) {
                tracing::error!(error = %e, "cannot record the rotated join token in node.json; a restart before the next rotation trusts the tokens of the state file only once it is loaded");
            }
        }
    }
}

/// The current token and the rotated-out ones still in grace at `now`, as
/// the transport takes them. A token that does not parse is left out
/// (logged); a malformed current one gives `None`.
pub fn trusted(
    value: &JoinSecrets,
    now: SystemTime,
) -> (Option<JoinToken>, Vec<(JoinToken, SystemTime)>) {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let current = value.current.parse::<JoinToken>().ok();
    let rotated = value
        .in_grace(now_ms)
        .filter_map(|r| match r.token.parse::<JoinToken>() {
            Ok(token) => Some((token, UNIX_EPOCH + Duration::from_millis(r.until_ms))),
            Err(e) => {
                tracing::warn!(error = %e, "a rotated-out join token is malformed; not trusted");
                None
            }
        })
        .collect();
    (current, rotated)
}

/// Sets `quic` up from what node.json recorded of the last rotation.
pub fn configure(quic: &mut QuicConfig, identity: &NodeIdentity) {
    let Some(value) = &identity.join_secrets else {
        return;
    };
    let (current, rotated) = trusted(value, SystemTime::now());
    if let Some(current) = current {
        quic.current_token = Some(current);
        quic.rotated_tokens = rotated;
    }
}

/// The join token that admits new members: the replicated register's
/// current token (`replicated`, from the state this peer loaded), else the
/// one node.json recorded at the last rotation, else the token this node
/// started with (a cluster that never rotated). A recorded token that does
/// not parse is skipped, as [`trusted`] does.
pub fn admitting_token<'a>(
    identity: &'a NodeIdentity,
    replicated: Option<&'a JoinSecrets>,
) -> &'a str {
    replicated
        .into_iter()
        .chain(identity.join_secrets.as_ref())
        .map(|value| value.current.as_str())
        .find(|token| token.parse::<JoinToken>().is_ok())
        .unwrap_or(&identity.token)
}

/// Whether `given` (a `--join-token`) is one this data dir's node may start
/// with: the token it joined with, or one its last rotation admits now.
pub fn admits(identity: &NodeIdentity, given: &str, now: SystemTime) -> bool {
    if given == identity.token {
        return true;
    }
    let Some(value) = &identity.join_secrets else {
        return false;
    };
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    value.current == given || value.in_grace(now_ms).any(|r| r.token == given)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(seed: u8) -> String {
        JoinToken::from_seed([seed; 32]).to_string()
    }

    fn started_with(first: &str) -> NodeIdentity {
        NodeIdentity {
            node_id: 1,
            incarnation: 0,
            name: "n".into(),
            token: first.to_owned(),
            cluster: None,
            join_secrets: None,
        }
    }

    #[test]
    fn the_admitting_token_is_the_rotated_one_not_the_first() {
        let first = token(1);
        let mut identity = started_with(&first);
        assert_eq!(admitting_token(&identity, None), first);

        let second = JoinSecrets::rotated(None, &first, token(2), 1_000, 60_000);
        identity.join_secrets = Some(second.clone());
        assert_eq!(admitting_token(&identity, None), token(2));

        // The state file may hold a later rotation than node.json.
        let third = JoinSecrets::rotated(Some(&second), &first, token(3), 2_000, 60_000);
        assert_eq!(admitting_token(&identity, Some(&third)), token(3));
    }

    #[test]
    fn a_malformed_recorded_token_is_not_printed() {
        let first = token(1);
        let mut identity = started_with(&first);
        let garbage = JoinSecrets {
            current: "not-a-token".into(),
            rotated: Vec::new(),
        };
        identity.join_secrets = Some(garbage.clone());
        assert_eq!(admitting_token(&identity, Some(&garbage)), first);
    }
}
