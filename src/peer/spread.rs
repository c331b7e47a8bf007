//! How changes leave this node and how remote ones are merged.
//!
//! A local change is spread record by record: a record small enough rides
//! on SWIM as a custom broadcast keyed by the record (a newer version of the
//! same record supersedes the queued one), and every record is also pushed,
//! batched, over the reliable channel to a few random members. Receivers
//! forward the desired-state records that were new to them the same way
//! (see [`super::sync_message`]). Anti-entropy with one random member per
//! period repairs anything lost.

use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt;
use shoal_crdt_state::identity::{self, RecordRejection};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::observed::{NodeRecord, ObservedDelta};
use shoal_crdt_state::{Delta, DesiredDelta, wire};
use shoal_gossip::{MAX_BROADCAST_PAYLOAD, Received};

use super::sync_message::{MAX_MESSAGE_BYTES, PIECE_BYTES, Piece, SyncEnvelope, SyncMessage};
use super::timers::PeerTimer;
use super::{Output, Peer, ms};

impl Peer {
    /// Sends a local change to the cluster.
    pub(super) fn spread(&mut self, now: Duration, delta: Delta) {
        self.state_changes += 1;
        if !delta.desired.nodes.is_empty() {
            self.node_decision_changes += 1;
        }
        for (name, record) in delta.desired.rcs {
            let key = record_key(b"rc", name.as_bytes());
            let mut one = DesiredDelta::default();
            one.rcs.insert(name, record);
            self.spread_record(now, key, one.into());
        }
        for (node, decision) in delta.desired.nodes {
            let key = record_key(b"decision", &node.0.to_be_bytes());
            let mut one = DesiredDelta::default();
            one.nodes.insert(node, decision);
            self.spread_record(now, key, one.into());
        }
        for (name, record) in delta.desired.services {
            let key = record_key(b"service", name.as_bytes());
            let mut one = DesiredDelta::default();
            one.services.insert(name, record);
            self.spread_record(now, key, one.into());
        }
        for (name, record) in delta.desired.tokens {
            let key = record_key(b"token", name.as_bytes());
            let mut one = DesiredDelta::default();
            one.tokens.insert(name, record);
            self.spread_record(now, key, one.into());
        }
        if !delta.desired.join.is_empty() {
            let key = record_key(b"join-secrets", b"");
            let one = DesiredDelta {
                join: delta.desired.join,
                ..DesiredDelta::default()
            };
            self.spread_record(now, key, one.into());
        }
        for (node, record) in delta.observed.nodes {
            let key = record_key(b"node", &node.0.to_be_bytes());
            let mut one = ObservedDelta::default();
            one.nodes.insert(node, record);
            self.spread_record(now, key, one.into());
        }
    }

    fn spread_record(&mut self, now: Duration, key: u64, delta: Delta) {
        let bytes = match wire::encode(&delta) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a local delta");
                return;
            }
        };
        if bytes.len() <= MAX_BROADCAST_PAYLOAD {
            if let Err(e) = self.membership.broadcast(now, key, bytes) {
                tracing::warn!(error = %e, "broadcast refused");
            }
            self.drain_membership(now);
        }
        // Pushed as well: SWIM piggybacking has little room per packet, and
        // the push epidemic reaches everyone in about log(N) short rounds.
        self.queue_push(now, delta);
    }

    /// Adds records to the next batched push.
    fn queue_push(&mut self, now: Duration, delta: Delta) {
        self.pending_push.merge(delta);
        if !self.push_scheduled {
            self.push_scheduled = true;
            self.schedule(now + self.config.push_delay, PeerTimer::Push);
        }
    }

    /// Sends the batched records to a few random members.
    pub(super) fn flush_push(&mut self) {
        self.push_scheduled = false;
        let delta = std::mem::take(&mut self.pending_push);
        if delta.is_empty() {
            return;
        }
        for to in self.random_members(self.config.push_fanout) {
            self.send_push(to, delta.clone(), None);
        }
    }

    /// Sends `delta` (and `digest`, when we want what we lack in return)
    /// to `to`, split into pieces when it is large (see
    /// [`super::sync_message`]). With nothing to send but a digest, one
    /// empty push carries it.
    pub(super) fn send_push(
        &mut self,
        to: SocketAddr,
        delta: Delta,
        mut digest: Option<shoal_crdt_state::Digest>,
    ) {
        let mut pieces = super::pieces::split(delta, PIECE_BYTES);
        if pieces.is_empty() {
            if digest.is_none() {
                return;
            }
            pieces.push(Delta::default());
        }
        let count = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
        let split = count > 1;
        let last = pieces.len() - 1;
        for (index, delta) in pieces.into_iter().enumerate() {
            let piece = split.then_some(Piece {
                index: index as u32,
                count,
            });
            let digest = if index == last { digest.take() } else { None };
            self.send_sync(
                to,
                SyncMessage::Push {
                    delta,
                    digest,
                    piece,
                },
            );
        }
    }

    pub(super) fn send_sync(&mut self, to: SocketAddr, message: SyncMessage) {
        let envelope = SyncEnvelope {
            from: self.config.node,
            reply_to: self.config.addr,
            message,
        };
        match wire::encode(&envelope) {
            Ok(bytes) if bytes.len() > MAX_MESSAGE_BYTES => {
                // Only a digest of some 200,000 records, or a single record
                // of 8 MiB, gets here: say so rather than send what every
                // receiver refuses.
                self.stats.sync_too_large += 1;
                tracing::error!(
                    %to,
                    len = bytes.len(),
                    limit = MAX_MESSAGE_BYTES,
                    "a sync message exceeds the network limit; not sent"
                );
            }
            Ok(bytes) => {
                self.stats.sync_out += 1;
                self.stats.sync_bytes_out += bytes.len() as u64;
                self.stats.sync_sent.add(&envelope.message, bytes.len());
                self.outputs.push_back(Output::Sync { to, bytes });
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a sync message"),
        }
    }

    /// `n` distinct active members, chosen at random.
    fn random_members(&mut self, n: usize) -> Vec<SocketAddr> {
        let mut pool: Vec<SocketAddr> = self.members.values().copied().collect();
        let mut chosen = Vec::with_capacity(n.min(pool.len()));
        while chosen.len() < n && !pool.is_empty() {
            let i = self.rng.random_range(0..pool.len());
            chosen.push(pool.swap_remove(i));
        }
        chosen
    }

    /// Asks a random member whether our states differ, unless a split
    /// transfer is arriving (it would ask for the same records again).
    pub(super) fn start_anti_entropy(&mut self, now: Duration) {
        if self.receiving_transfer(now) {
            return;
        }
        if let Some(&to) = self.random_members(1).first() {
            self.stats.anti_entropy_rounds += 1;
            let digest_hash = self.digest_hash();
            self.send_sync(to, SyncMessage::Hello { digest_hash });
        }
    }

    /// Hash of our digest, recomputed only when the state changed: every
    /// anti-entropy round asks for it on both sides.
    fn digest_hash(&mut self) -> u64 {
        match self.digest_hash_cache {
            Some((at, hash)) if at == self.state_changes => hash,
            _ => {
                let bytes = wire::encode(&self.state.digest()).unwrap_or_default();
                let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
                self.digest_hash_cache = Some((self.state_changes, hash));
                hash
            }
        }
    }

    /// A broadcast payload from a peer (relayed by SWIM).
    pub(super) fn handle_broadcast(&mut self, now: Duration, received: Received) {
        match wire::decode::<Delta>(&received.payload, MAX_BROADCAST_PAYLOAD) {
            Ok(delta) => {
                self.merge_remote(now, Sender::Node(received.from), delta);
            }
            Err(e) => {
                self.stats.bad_messages += 1;
                self.stats.rejected_broadcasts += 1;
                tracing::debug!(from = %received.from, error = %e, "bad broadcast");
            }
        }
    }

    /// One reliable sync message from `from` (the transport's remote address).
    pub fn handle_sync(&mut self, now: Duration, from: SocketAddr, bytes: &[u8]) {
        self.handle_sync_from(now, from, None, bytes);
    }

    /// One reliable sync message from a connection that authenticated
    /// `node` (`None`: a transport without node identities): dropped and
    /// counted when its envelope names another node as its sender. The
    /// records it carries may be anyone's (relayed); each is checked
    /// against its own node's key when merged.
    pub fn handle_sync_from(
        &mut self,
        now: Duration,
        from: SocketAddr,
        node: Option<NodeId>,
        bytes: &[u8],
    ) {
        self.stats.sync_in += 1;
        let envelope = match wire::decode::<SyncEnvelope>(bytes, MAX_MESSAGE_BYTES) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.stats.rejected_sync += 1;
                self.bad_message(from, e.to_string());
                return;
            }
        };
        if let Some(node) = node
            && envelope.from != node
        {
            self.stats.rejected_sync += 1;
            self.stats.impersonations += 1;
            let why = super::impersonation("sync message", envelope.from, node);
            self.bad_message(from, why);
            return;
        }
        self.stats.sync_received.add(&envelope.message, bytes.len());
        let reply_to = envelope.reply_to;
        // What merging this message logs, and the replies it sends, belong
        // to one exchange with that peer.
        let _exchange = tracing::info_span!(
            "sync",
            with = %reply_to,
            from_node = %envelope.from,
            kind = envelope.message.kind(),
            bytes = bytes.len()
        )
        .entered();
        tracing::debug!("sync message received");
        match envelope.message {
            SyncMessage::Hello { digest_hash } => {
                if digest_hash == self.digest_hash() {
                    self.synced_with_a_peer = true;
                    self.note_held(now, envelope.from, None);
                } else if !self.receiving_transfer(now) {
                    let digest = self.state.digest();
                    self.send_sync(reply_to, SyncMessage::Pull { digest });
                }
            }
            SyncMessage::Pull { digest } => {
                self.note_held(now, envelope.from, Some(&digest));
                self.catch_up_horizon(now, &digest);
                let delta =
                    self.without_collected_nodes(now, self.state.missing_for(&digest), &digest);
                let mine = self.state.digest();
                // Our digest asks for what we lack; theirs may show there
                // is nothing (we are the side ahead), and then it would
                // only cost its bytes and an empty answer.
                let ask = (!mine.holds_all_of(&digest)).then_some(mine);
                if ask.is_none() {
                    self.stats.digests_not_sent += 1;
                }
                self.send_push(reply_to, delta, ask);
            }
            SyncMessage::Push {
                delta,
                digest,
                piece,
            } => {
                self.note_piece(now, reply_to, piece);
                // Desired state is forwarded epidemically: few records, and
                // every peer needs them at once to place replicas. Node
                // records (many, changing often) spread by SWIM piggybacking
                // and anti-entropy after their first push. Pieces of a split
                // transfer are a peer catching up: not forwarded.
                let changed = self.merge_remote(now, Sender::Addr(reply_to), delta);
                if !changed.desired.is_empty() && piece.is_none() {
                    self.queue_push(now, changed.desired.into());
                }
                if let Some(digest) = digest {
                    self.note_held(now, envelope.from, Some(&digest));
                    self.catch_up_horizon(now, &digest);
                    if !self.synced_with_a_peer && self.state.digest().holds_all_of(&digest) {
                        self.synced_with_a_peer = true;
                    }
                    let delta =
                        self.without_collected_nodes(now, self.state.missing_for(&digest), &digest);
                    self.send_push(reply_to, delta, None);
                }
            }
        }
    }

    /// Whether a split transfer is arriving: a piece came that was not the
    /// last, within [`TRANSFER_IDLE`] of `now`.
    pub(super) fn receiving_transfer(&self, now: Duration) -> bool {
        self.transfer.is_some_and(|t| now < t.until)
    }

    /// Tracks a split transfer from its pieces; says when one stopped
    /// short (its missing pieces come again with anti-entropy).
    fn note_piece(&mut self, now: Duration, from: SocketAddr, piece: Option<Piece>) {
        if let Some(t) = self.transfer.filter(|t| now >= t.until) {
            tracing::warn!(
                from = %t.from,
                got = t.next,
                of = t.count,
                "a state transfer stopped short; anti-entropy resends the rest"
            );
            self.stats.transfers_incomplete += 1;
            self.transfer = None;
        }
        let Some(piece) = piece else {
            return;
        };
        if piece.is_last() {
            if self.transfer.is_some_and(|t| t.from == from) {
                self.transfer = None;
            }
            return;
        }
        self.transfer = Some(Transfer {
            from,
            next: piece.index + 1,
            count: piece.count,
            until: now + TRANSFER_IDLE,
        });
    }

    /// Joins a remote delta (from `from`, who may have relayed it); returns
    /// the part of it that was new here. Node records not signed by their
    /// node's bound key, and node decisions this peer does not take (see
    /// `admission.rs`), are dropped first: never merged, so never forwarded.
    pub(super) fn merge_remote(&mut self, now: Duration, from: Sender, mut delta: Delta) -> Delta {
        self.admit_node_decisions(now, from, &mut delta);
        let mut changed = Delta::default();
        for (name, record) in delta.desired.rcs {
            let before = self.state.desired.record(&name).cloned();
            let mut one = DesiredDelta::default();
            one.rcs.insert(name.clone(), record.clone());
            if let Some(stamp) = self.state.merge_delta(one.into()) {
                self.clock.observe(&stamp, ms(now));
            }
            if self.state.desired.record(&name) != before.as_ref() {
                changed.desired.rcs.insert(name, record);
            }
        }
        for (node, decision) in delta.desired.nodes {
            let before = self.state.desired.nodes().get(node).cloned();
            let mut one = DesiredDelta::default();
            one.nodes.insert(node, decision.clone());
            if let Some(stamp) = self.state.merge_delta(one.into()) {
                self.clock.observe(&stamp, ms(now));
            }
            if self.state.desired.nodes().get(node) != before.as_ref() {
                changed.desired.nodes.insert(node, decision);
            }
        }
        for (name, record) in delta.desired.services {
            let before = self.state.desired.service_record(&name).cloned();
            let mut one = DesiredDelta::default();
            one.services.insert(name.clone(), record.clone());
            if let Some(stamp) = self.state.merge_delta(one.into()) {
                self.clock.observe(&stamp, ms(now));
            }
            if self.state.desired.service_record(&name) != before.as_ref() {
                changed.desired.services.insert(name, record);
            }
        }
        for (name, record) in delta.desired.tokens {
            let before = self.state.desired.tokens().record(&name).cloned();
            let mut one = DesiredDelta::default();
            one.tokens.insert(name.clone(), record.clone());
            if let Some(stamp) = self.state.merge_delta(one.into()) {
                self.clock.observe(&stamp, ms(now));
            }
            if self.state.desired.tokens().record(&name) != before.as_ref() {
                changed.desired.tokens.insert(name, record);
            }
        }
        if !delta.desired.join.is_empty() {
            let before = self.state.desired.join_secrets().stamp();
            let one = DesiredDelta {
                join: delta.desired.join.clone(),
                ..DesiredDelta::default()
            };
            if let Some(stamp) = self.state.merge_delta(one.into()) {
                self.clock.observe(&stamp, ms(now));
            }
            if self.state.desired.join_secrets().stamp() != before {
                changed.desired.join = delta.desired.join;
            }
        }
        for (node, record) in delta.observed.nodes {
            if self.holds_record(node, &record) {
                self.stats.records_already_held += 1;
                continue;
            }
            if !self.admit_record(from, node, &record) {
                continue;
            }
            if node == self.config.node {
                self.merge_own_record(now, record);
                continue;
            }
            // Whole records: a copy under the same version may differ
            // anywhere (see `shoal_crdt_state::observed`).
            let before = self.state.observed.get(node).cloned();
            let held_before = self.held_ports_fingerprint(node);
            let mut one = ObservedDelta::default();
            one.nodes.insert(node, record.clone());
            self.state.merge_delta(one.into());
            let after = self.state.observed.get(node);
            if after != before.as_ref() {
                // Pod statuses change often; placement reads only the node
                // info and the host ports pods hold (see
                // `WantedPorts::held_fingerprint`).
                let info_changed = after.map(|a| &a.info) != before.as_ref().map(|b| &b.info);
                if info_changed || self.held_ports_fingerprint(node) != held_before {
                    self.placement_dirty = true;
                    // Node info changes rarely (health, labels, leaving) and
                    // every peer's placement needs it at once: forward it
                    // like desired state, once per version.
                    let mut one = ObservedDelta::default();
                    one.nodes.insert(node, record.clone());
                    self.queue_push(now, one.into());
                }
                changed.observed.nodes.insert(node, record);
            }
        }
        if !changed.is_empty() {
            self.state_changes += 1;
            self.stats.merges += 1;
            if !changed.observed.is_empty() {
                self.check_name(now);
            }
            if !changed.desired.is_empty() {
                // Services change neither placement nor what a node runs.
                if !changed.desired.rcs.is_empty() || !changed.desired.nodes.is_empty() {
                    self.rcs_dirty = true;
                    self.placement_dirty = true;
                }
                self.outputs
                    .push_back(Output::Persist(changed.desired.clone().into()));
            }
            if !changed.desired.nodes.is_empty() {
                self.node_decision_changes += 1;
                self.follow_node_decisions(now);
            }
            // Observed changes matter too: a handover waits for the
            // successor's report.
            self.request_reconcile(now);
        }
        changed
    }
}

impl Peer {
    /// Whether merging `record` as `node`'s would change nothing here: we
    /// hold that very record, signature included (checked when it was
    /// stored, or signed here), or a newer version of it. Such copies are
    /// most of what anti-entropy and gossip bring, and checking their
    /// signatures was most of a peer's CPU (ed25519 verification, ~140 µs
    /// each); skipping them stores and forwards nothing unchecked. A copy
    /// that differs in any byte, the signature too, is checked.
    fn holds_record(&self, node: NodeId, record: &NodeRecord) -> bool {
        self.state
            .observed
            .get(node)
            .is_some_and(|held| record.version < held.version || held == record)
    }

    /// Whether `record`, claimed to be `node`'s, is signed by the key bound
    /// to `node`; a rejection is counted and logged with the sender.
    fn admit_record(&mut self, from: Sender, node: NodeId, record: &NodeRecord) -> bool {
        let binding = self.state.desired.nodes().bound_key(node);
        if binding.is_some() {
            self.stats.records_verified += 1;
        }
        match identity::check_record(binding, node, record, &self.config.verifier) {
            Ok(()) => true,
            Err(e @ RecordRejection::Unbound { .. }) => {
                self.stats.records_unbound += 1;
                tracing::debug!(%from, error = %e, "node record not merged");
                false
            }
            Err(e @ RecordRejection::BadSignature { .. }) => {
                self.stats.records_forged += 1;
                tracing::warn!(%from, error = %e, "rejected a node record");
                false
            }
        }
    }

    /// Only we write our record, so a copy of it normally just echoes back.
    /// A newer one means we lost our state (a restart with an empty data
    /// dir): take its version and rewrite our content over it. Another
    /// content under our current version (a restored backup, a bug) is
    /// replaced everywhere by re-issuing ours under the next version.
    fn merge_own_record(&mut self, now: Duration, record: shoal_crdt_state::NodeRecord) {
        let me = self.config.node;
        let mine = self.state.observed.get(me);
        if mine.is_some_and(|m| m.version == record.version && *m != record) {
            let delta = self.state.observed.reissue(me);
            let delta = self.signed_own(delta);
            self.spread(now, delta.into());
            return;
        }
        if record.version <= mine.map_or(0, |r| r.version) {
            return;
        }
        let mut one = ObservedDelta::default();
        one.nodes.insert(self.config.node, record);
        self.state.merge_delta(one.into());
        let delta = self.publish_info();
        self.spread(now, delta.into());
        self.request_publish(now);
    }
}

/// Longest wait for the next piece of a split transfer before the peer
/// runs anti-entropy again as usual.
pub(super) const TRANSFER_IDLE: Duration = Duration::from_secs(10);

/// A split transfer being received.
#[derive(Debug, Clone, Copy)]
pub(super) struct Transfer {
    from: SocketAddr,
    /// Pieces received in order so far.
    next: u32,
    count: u32,
    /// Until when it counts as arriving.
    until: Duration,
}

/// Broadcast key of one record: a newer broadcast of the same record
/// supersedes the queued older one.
fn record_key(kind: &[u8], id: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(kind.len() + 1 + id.len());
    bytes.extend_from_slice(kind);
    bytes.push(0);
    bytes.extend_from_slice(id);
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Who handed us a delta: the SWIM member that relayed a broadcast, or the
/// address of a sync message's sender. Either may have relayed what
/// others wrote.
#[derive(Debug, Clone, Copy)]
pub(super) enum Sender {
    Node(NodeId),
    Addr(SocketAddr),
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sender::Node(node) => write!(f, "node {node}"),
            Sender::Addr(addr) => write!(f, "{addr}"),
        }
    }
}
