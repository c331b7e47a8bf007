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
    #[error("service {name:?} not found: create it with `shoal apply -f <manifest>`")]
    UnknownService { name: String },
    #[error(
        "node {node} has no observed record yet: publish its node info before its pod statuses"
    )]
    UnknownNode { node: NodeId },
}
