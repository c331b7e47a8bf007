//! How the rest of the program talks to the task that owns the peer core.
//!
//! The peer core has exactly one owner (the driver task); the HTTP API and
//! anything else send it [`Request`]s over a bounded channel and wait for
//! the answer on a oneshot. Reads get a [`Snapshot`]: a consistent copy of
//! everything `get`/`describe` show, taken between two inputs.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use shoal_crdt_state::ClusterState;
use shoal_crdt_state::node::NodeId;
use shoal_gossip::MemberView;
use tokio::sync::{mpsc, oneshot};

use crate::peer::{Command, CommandError, CommandOutcome, Peer, PeerStats};

/// Capacity of the request channel: API calls beyond it wait.
pub const REQUEST_QUEUE: usize = 256;

/// When a write is acknowledged (see the README's "What an answer means").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ack {
    /// Once it is on this peer's disk (fsynced): it survives a crash of
    /// this peer, and spreads to the others from here.
    #[default]
    Durable,
    /// Once it is on this peer's disk and on the disk of at least one
    /// other live peer: it survives losing this peer for good.
    Replicated,
}

/// A request to the driver task.
#[derive(Debug)]
pub enum Request {
    Command {
        command: Command,
        ack: Ack,
        reply: oneshot::Sender<Result<CommandOutcome, HandleError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Snapshot>,
    },
}

/// Everything the read verbs show, as this peer sees it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub me: NodeId,
    /// Our advertised peer address.
    pub addr: SocketAddr,
    pub cluster: String,
    /// SWIM's view, ourselves included.
    pub members: MemberView,
    pub state: ClusterState,
    /// Who should run each replica, by `PodId` display name (`hello-0`).
    pub owners: BTreeMap<String, NodeId>,
    /// Replicas that fit nowhere, with the reason.
    pub unplaced: BTreeMap<String, String>,
    pub stats: PeerStats,
}

impl Snapshot {
    /// A copy of what `peer` knows now, between two inputs.
    pub fn of(peer: &Peer, cluster: &str) -> Snapshot {
        let assignment = peer.assignment();
        Snapshot {
            me: peer.node(),
            addr: peer.config().addr,
            cluster: cluster.to_owned(),
            members: peer.view(),
            state: peer.state().clone(),
            owners: assignment
                .iter()
                .map(|(pod, node)| (pod.to_string(), node))
                .collect(),
            unplaced: assignment
                .unplaced
                .iter()
                .map(|(pod, why)| (pod.to_string(), why.to_string()))
                .collect(),
            stats: peer.stats(),
        }
    }
}

/// Why the driver could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    #[error("the peer is shutting down")]
    Closed,
    #[error(transparent)]
    Command(#[from] CommandError),
    /// Applied in memory and spreading, but this peer's disk refused it.
    #[error(
        "the write is applied and spreading to the other peers, but this peer could not make it durable: {0}"
    )]
    NotDurable(String),
    /// Durable here, but no other peer confirmed it in time.
    #[error("the write is durable on this peer, but {0}")]
    NotReplicated(String),
}

/// Cheap to clone; every clone talks to the same driver task.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    tx: mpsc::Sender<Request>,
}

impl PeerHandle {
    pub fn new(tx: mpsc::Sender<Request>) -> PeerHandle {
        PeerHandle { tx }
    }

    /// Runs a user command at this peer; the change then spreads to all.
    /// Answers once the write is durable here.
    pub async fn command(&self, command: Command) -> Result<CommandOutcome, HandleError> {
        self.command_with(command, Ack::Durable).await
    }

    /// Runs a user command, answering when `ack` holds.
    pub async fn command_with(
        &self,
        command: Command,
        ack: Ack,
    ) -> Result<CommandOutcome, HandleError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command {
                command,
                ack,
                reply,
            })
            .await
            .map_err(|_| HandleError::Closed)?;
        rx.await.map_err(|_| HandleError::Closed)?
    }

    pub async fn snapshot(&self) -> Result<Snapshot, HandleError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Snapshot { reply })
            .await
            .map_err(|_| HandleError::Closed)?;
        rx.await.map_err(|_| HandleError::Closed)
    }
}
