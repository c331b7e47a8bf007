//! The peer core's vocabulary with its driver: outputs, commands, events.

use std::net::SocketAddr;

use shoal_crdt_state::image_ref::ImageRefError;
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::service::ServiceSpec;
use shoal_crdt_state::spec::RcSpec;
use shoal_runtime::vocabulary::PodAction;

use super::sync_message::SyncMessage;

/// What the driver must do. Drain with `Peer::poll_output` after every input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// One unreliable datagram (SWIM), at most `shoal_gossip::MAX_PACKET_SIZE` bytes.
    Datagram {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// One reliable sync message (a QUIC stream in the shell); deliver it
    /// with `handle_sync` at the receiver.
    Sync {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    /// Run this against the container runtime; results come back as observations.
    Pod(PodAction),
    /// Desired-state records that changed here (a user's write, or one
    /// learned from a peer): make them durable before acknowledging the
    /// write that caused them. Everything else is covered by the periodic
    /// snapshot of [`Peer::persisted`](super::Peer::persisted).
    Persist(shoal_crdt_state::Delta),
    /// The state or the members to remember changed since the last
    /// checkpoint: write [`Peer::persisted`](super::Peer::persisted) now
    /// (at most every `PeerConfig::checkpoint_every`).
    Checkpoint,
    Event(PeerEvent),
}

/// Things worth logging or showing to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    MemberUp(NodeId),
    MemberDown(NodeId),
    /// We were declared down and rejoined under a new incarnation.
    Rejoined,
    /// Declared down and unable to rejoin: restart the process.
    Defunct,
    /// This new peer's name is already used by a live member: the shell
    /// refuses to run it (names are how users tell nodes apart).
    NameTaken {
        name: String,
        by: NodeId,
        addr: String,
    },
    /// The startup grace of a restarted peer ended after `after_ms`;
    /// `missing` are remembered members still not seen (treated as down).
    Settled {
        after_ms: u64,
        missing: Vec<NodeId>,
    },
    /// A pod of this node stopped its RC's rollout (not ready within the
    /// progress deadline); with `rolled_back` this node also wrote the
    /// previous template back (`shoal.io/auto-rollback`).
    RolloutStopped {
        rc: String,
        reason: String,
        rolled_back: bool,
    },
    /// A replica fits on no node; the reason says why (placement wording).
    Unplaced {
        pod: String,
        reason: String,
    },
    /// A node down longer than `forget_down_after` was forgotten, or a
    /// previous identity of this machine (same address) was.
    NodeForgotten {
        node: NodeId,
        name: String,
        why: &'static str,
    },
    /// This node found itself deleted while running, and registered again.
    Reregistered,
    /// Tombstones, removed-node decisions or records of forgotten nodes
    /// were garbage collected; the horizon moved to `horizon_ms`.
    Collected {
        rcs: usize,
        services: usize,
        nodes: usize,
        horizon_ms: u64,
    },
    /// A message from the network was rejected (and counted).
    BadMessage {
        from: SocketAddr,
        error: String,
    },
    /// Something to show in `shoal get events` (see [`super::events`]).
    Recorded(super::events::EventRecord),
}

/// A user's request, from the HTTP API of any peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create or update (like `kubectl apply`); keeps the last-applied text.
    Apply(RcSpec),
    /// [`Command::Apply`] through the Kubernetes API: the object's
    /// last-applied text (or none) is stored with the spec.
    KubeApply {
        spec: RcSpec,
        last_applied: Option<String>,
    },
    Scale {
        name: String,
        replicas: u32,
    },
    /// Change one container's image (the first when `container` is None);
    /// replicas then move to it one at a time within the RC's budget. An
    /// image that is not a valid reference is refused before anything else.
    RollingUpdate {
        name: String,
        image: String,
        container: Option<String>,
    },
    Delete {
        name: String,
    },
    /// `rollout undo`: write the template of revision `to_revision` (the
    /// one before the current one when None) as the new template.
    Undo {
        name: String,
        to_revision: Option<u64>,
    },
    /// `rollout restart`: new pods with the same images; `at` becomes the
    /// template's restarted-at label (a label value).
    Restart {
        name: String,
        at: String,
    },
    /// `rollout pause` (`paused`) or `rollout resume`.
    Pause {
        name: String,
        paused: bool,
    },
    /// Cordon (`on`) or uncordon a node: whether placement may use it.
    Cordon {
        node: NodeId,
        on: bool,
    },
    /// Forget a node that will not come back (it must not be alive).
    RemoveNode {
        node: NodeId,
    },
    /// Create or update a service; node ports left out are allocated.
    /// Keeps the last-applied text.
    ApplyService(ServiceSpec),
    /// [`Command::ApplyService`] through the Kubernetes API, storing the
    /// object's last-applied text (or none).
    KubeApplyService {
        spec: ServiceSpec,
        last_applied: Option<String>,
    },
    DeleteService {
        name: String,
    },
    /// Create an API token (`shoal token create`); the shell made the
    /// secret and gives only its hash.
    CreateToken {
        name: String,
        grant: shoal_crdt_state::api_tokens::TokenGrant,
    },
    /// Revoke an API token for good (`shoal token revoke`).
    RevokeToken {
        name: String,
    },
    /// Make `new` the join token; the one current until now is still
    /// admitted for `grace_ms` (`shoal token rotate`; the shell made it).
    RotateJoinToken {
        new: String,
        grace_ms: u64,
    },
}

/// What a command did, for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandOutcome {
    Created,
    Configured,
    Unchanged,
    Scaled,
    RollingUpdate,
    Deleted,
    Cordoned,
    Uncordoned,
    RolledBack,
    Restarted,
    Paused,
    Resumed,
    Revoked,
}

impl CommandOutcome {
    /// kubectl's past-tense word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandOutcome::Created => "created",
            CommandOutcome::Configured => "configured",
            CommandOutcome::Unchanged => "unchanged",
            CommandOutcome::Scaled => "scaled",
            CommandOutcome::RollingUpdate => "rolling update started",
            CommandOutcome::Deleted => "deleted",
            CommandOutcome::Cordoned => "cordoned",
            CommandOutcome::Uncordoned => "uncordoned",
            CommandOutcome::RolledBack => "rolled back",
            CommandOutcome::Restarted => "restarted",
            CommandOutcome::Paused => "paused",
            CommandOutcome::Resumed => "resumed",
            CommandOutcome::Revoked => "revoked",
        }
    }
}

/// Why a command was refused. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("replicationcontroller \"{0}\" not found")]
    NotFound(String),
    #[error("replicationcontroller \"{rc}\" has no container named \"{container}\"")]
    NoSuchContainer { rc: String, container: String },
    #[error("image {image:?} is not a valid image reference: {reason}")]
    InvalidImage {
        image: String,
        reason: ImageRefError,
    },
    #[error("node {0} not found")]
    NoSuchNode(NodeId),
    #[error(
        "node {node} is alive; drain it (`shoal drain {name}`) and stop its peer before deleting it"
    )]
    NodeAlive { node: NodeId, name: String },
    #[error("service \"{0}\" not found")]
    ServiceNotFound(String),
    /// A service clashes with another or with an RC's ports: one line each.
    #[error("{}", .0.join("; "))]
    ServiceRejected(Vec<String>),
    /// An RC binds a host port a service listens on: one line each.
    #[error("{}", .0.join("; "))]
    RcRejected(Vec<String>),
    /// A rollout verb that does not apply now: unknown revision, already
    /// paused, nothing to undo.
    #[error("{0}")]
    Rollout(shoal_crdt_state::StateError),
    #[error("invalid command: {0}")]
    Invalid(String),
    /// An API token command refused: unknown name, name taken, bad name.
    #[error("{0}")]
    Token(shoal_crdt_state::StateError),
}

/// Counters for observability; monotonic. Plain numbers the shell reads
/// and exports (`/metrics`): the core counts, it never calls a recorder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub sync_in: u64,
    pub sync_out: u64,
    pub sync_bytes_out: u64,
    /// Sync messages sent, and their encoded bytes, by kind.
    pub sync_sent: SyncCounts,
    /// Sync messages received and decoded, and their bytes, by kind.
    pub sync_received: SyncCounts,
    /// Anti-entropy rounds this peer started (a `Hello` to a random member).
    pub anti_entropy_rounds: u64,
    /// Members asked for their digest while a pod drained (see
    /// `record_acks.rs`).
    pub holder_asks: u64,
    /// Pulls answered without our digest: theirs showed we lacked nothing.
    pub digests_not_sent: u64,
    /// Sync messages not sent: larger than the network limit.
    pub sync_too_large: u64,
    /// Split transfers whose last piece never came (anti-entropy resends).
    pub transfers_incomplete: u64,
    /// Every message rejected, whatever its kind (the three below).
    pub bad_messages: u64,
    /// SWIM datagrams rejected (malformed, too big, unknown kind).
    pub rejected_datagrams: u64,
    /// Sync messages that did not decode.
    pub rejected_sync: u64,
    /// Piggybacked broadcasts that did not decode.
    pub rejected_broadcasts: u64,
    /// Node records not merged: not signed by their node's bound key (a
    /// forgery, or a body changed on the way). Never forwarded either.
    pub records_forged: u64,
    /// Node records not merged because their node's key binding had not
    /// arrived yet (anti-entropy brings them again).
    pub records_unbound: u64,
    /// Key bindings refused: another key claiming a node id live here, or
    /// an established one (see `shoal_crdt_state::identity::admits_binding`).
    pub bindings_refused: u64,
    /// A peer's collection horizon ahead of ours not taken yet because we
    /// did not hold all it held (see `garbage.rs`, `catch_up_horizon`).
    pub horizon_catch_ups_deferred: u64,
    /// Removals of a node live here, and forgettings of its current
    /// record, refused (see `admission.rs`).
    pub removals_refused: u64,
    /// SWIM datagrams and sync messages dropped because they name a sender
    /// other than the node their connection authenticated (also counted as
    /// rejected datagrams or sync messages).
    pub impersonations: u64,
    /// Node record signatures checked (ed25519), whatever the outcome.
    pub records_verified: u64,
    /// Node records received that merging would not change: the very
    /// record held here, or an older version. Dropped unchecked.
    pub records_already_held: u64,
    pub merges: u64,
    /// Records garbage collected (tombstones, decisions, node records).
    pub collected: u64,
    pub placements: u64,
    pub pod_starts: u64,
    pub pod_stops: u64,
}

/// Messages and bytes of one sync message kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub messages: u64,
    pub bytes: u64,
}

/// [`KindCount`]s of the sync protocol's three message kinds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    pub hello: KindCount,
    pub pull: KindCount,
    pub push: KindCount,
}

impl SyncCounts {
    /// Counts one message of `kind`, `bytes` long.
    pub fn add(&mut self, kind: &SyncMessage, bytes: usize) {
        let count = match kind {
            SyncMessage::Hello { .. } => &mut self.hello,
            SyncMessage::Pull { .. } => &mut self.pull,
            SyncMessage::Push { .. } => &mut self.push,
        };
        count.messages += 1;
        count.bytes += bytes as u64;
    }

    /// Each kind's name (as a metric label) with its count.
    pub fn by_kind(&self) -> [(&'static str, KindCount); 3] {
        [
            ("hello", self.hello),
            ("pull", self.pull),
            ("push", self.push),
        ]
    }
}
