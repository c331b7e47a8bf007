//! How the rest of the program talks to the task that owns the peer core.
//!
//! The peer core has exactly one owner (the driver task); the HTTP API and
//! anything else send it [`Request`]s over a bounded channel and wait for
//! the answer on a oneshot. Reads get a [`Snapshot`]: an immutable copy of
//! everything `get`/`describe` show, taken between two inputs, served
//! without a round trip to the driver when the published one is current
//! (see [`snapshots`](super::snapshots)).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::metrics::CoreStats;
pub use super::snapshots::Snapshot;
use super::snapshots::SnapshotReader;
use crate::peer::{Command, CommandError, CommandOutcome};

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
    /// The published snapshot is not current: build one (see
    /// [`SnapshotSource::current`](super::snapshots::SnapshotSource::current)).
    Snapshot {
        reply: oneshot::Sender<Arc<Snapshot>>,
    },
    /// This peer's events; with `cluster`, merged with every live peer's.
    Events {
        cluster: bool,
        reply: oneshot::Sender<super::events::ClusterEvents>,
    },
    /// The core's and the transport's counters, for `/metrics`.
    Stats { reply: oneshot::Sender<CoreStats> },
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
    /// What the driver published, read without asking it when current.
    snapshots: SnapshotReader,
    /// The one fan-in every event watch of this peer reads.
    event_hub: Arc<super::events::EventHub>,
}

impl PeerHandle {
    pub fn new(tx: mpsc::Sender<Request>, snapshots: SnapshotReader) -> PeerHandle {
        PeerHandle {
            tx,
            snapshots,
            event_hub: Arc::default(),
        }
    }

    /// Changes when what a snapshot of this peer shows changes; errs once
    /// the driver is gone. For readers that follow the state (the service
    /// feed) instead of polling it.
    pub fn snapshot_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshots.changes()
    }

    /// Changes when the peer places again: after a change of the desired
    /// state (an RC applied, scaled, deleted) or of the member view.
    pub fn placement_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshots.placement_changes()
    }

    /// The events known so far and every later change, from this peer's
    /// one fan-in (see [`super::events::hub`]).
    pub async fn watch_events(
        &self,
    ) -> (
        Vec<super::events::EventJson>,
        tokio::sync::broadcast::Receiver<super::events::hub::Batch>,
    ) {
        self.event_hub.subscribe(self).await
    }

    /// The event fan-in's last gathered list (see
    /// [`super::events::EventHub::latest`]).
    pub fn watched_events(&self) -> Vec<super::events::EventJson> {
        self.event_hub.latest()
    }

    /// Event fan-in tasks this peer has started.
    pub fn event_fan_ins_started(&self) -> u64 {
        self.event_hub.fan_ins_started()
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

    /// The events of this peer, or (`cluster`) of every live peer merged.
    pub async fn events(&self, cluster: bool) -> Result<super::events::ClusterEvents, HandleError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Events { cluster, reply })
            .await
            .map_err(|_| HandleError::Closed)?;
        rx.await.map_err(|_| HandleError::Closed)
    }

    /// The driver's counters now (a round trip to it: for scrapes).
    pub async fn stats(&self) -> Result<CoreStats, HandleError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Stats { reply })
            .await
            .map_err(|_| HandleError::Closed)?;
        rx.await.map_err(|_| HandleError::Closed)
    }

    /// What this peer knows, as of this call or later: never older than
    /// a write whose answer the caller has received.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>, HandleError> {
        if let Some(snapshot) = self.snapshots.current() {
            return Ok(snapshot);
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Snapshot { reply })
            .await
            .map_err(|_| HandleError::Closed)?;
        rx.await.map_err(|_| HandleError::Closed)
    }
}
