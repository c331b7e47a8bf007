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

/// A request to the driver task.
#[derive(Debug)]
pub enum Request {
    Command {
        command: Command,
        reply: oneshot::Sender<Result<CommandOutcome, CommandError>>,
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
    pub async fn command(&self, command: Command) -> Result<CommandOutcome, HandleError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Command { command, reply })
            .await
            .map_err(|_| HandleError::Closed)?;
        Ok(rx.await.map_err(|_| HandleError::Closed)??)
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
