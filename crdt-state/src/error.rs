//! Why a command on the replicated state was refused.
//!
//! Every variant leaves the state unchanged: a refused command writes nothing
//! and produces no delta.

use crate::node::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error(
        "replication controller {name:?} not found: create it with `shoal apply -f <manifest>`"
    )]
    UnknownRc { name: String },
    #[error("replication controller {name:?} was deleted: apply its manifest again to recreate it")]
    DeletedRc { name: String },
    #[error(
        "the new template's labels do not carry the selector of {name:?} ({selector}): \
         keep the selector's labels on the template, or apply a new manifest"
    )]
    SelectorMismatch { name: String, selector: String },
    #[error(
        "replication controller {name:?} has no revision {revision}; its revisions are {}: \
         `shoal rollout history {name}` lists them",
        known.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    )]
    UnknownRevision {
        name: String,
        revision: u64,
        known: Vec<u64>,
    },
    #[error(
        "replication controller {name:?} has no earlier revision to return to: \
         `shoal rollout history {name}` lists what it has run"
    )]
    NoEarlierRevision { name: String },
    #[error(
        "replication controller {name:?} already runs the template of revision {revision} \
         (its current revision is {current}); nothing to undo"
    )]
    AlreadyAtRevision {
        name: String,
        revision: u64,
        current: u64,
    },
    #[error(
        "the rollout of replication controller {name:?} is already paused: \
         `shoal rollout resume {name}` lets it continue"
    )]
    AlreadyPaused { name: String },
    #[error("the rollout of replication controller {name:?} is not paused")]
    NotPaused { name: String },
    #[error("service {name:?} not found: create it with `shoal apply -f <manifest>`")]
    UnknownService { name: String },
    #[error(
        "node {node} has no observed record yet: publish its node info before its pod statuses"
    )]
    UnknownNode { node: NodeId },
    #[error(
        "a token named {name:?} {}: pick another --name",
        if *revoked { "was revoked, and the name of a revoked token is never reused" } else { "exists" }
    )]
    TokenExists { name: String, revoked: bool },
    #[error("no API token named {name:?}: `shoal token list` shows them")]
    UnknownToken { name: String },
    #[error(
        "{name:?} is not a valid token name: use 1 to 63 lowercase letters, digits and '-', \
         starting and ending with a letter or digit"
    )]
    InvalidTokenName { name: String },
}
