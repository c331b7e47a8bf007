//! Shoal's data model and replicated cluster state.
//!
//! - [`spec`]: the ReplicationController spec, one type for every input format.
//! - [`image_ref`]: image references checked against Docker's grammar.
//! - [`node`], [`pod`]: node identity and info, pod identity and status.
//! - [`identity`]: node ids bound to signing keys, signed node records.
//! - [`hlc`]: hybrid logical clock stamps and the per-node [`hlc::Clock`].
//! - [`desired`]: desired state, RC name → record of LWW registers + history;
//!   [`revisions`]: rollout revision numbers, undo, restart, pause.
//! - [`node_decisions`]: cordoned and removed nodes, LWW registers beside the RCs.
//! - [`service`]: Service objects (name, selector, ports), replicated like RCs;
//!   [`service_checks`]: their rules against other services and RCs.
//! - [`join_secrets`]: the join tokens the cluster admits (rotation).
//! - [`api_tokens`]: scoped API tokens (role, hash of the secret, expiry,
//!   revocation that wins), replicated beside the RCs.
//! - [`observed`]: observed state, node → single-writer versioned record.
//! - [`digest`]: per-record stamps/versions and content hashes a peer holds,
//!   and their compact wire form; `summarized` caches them next to each
//!   record, both behind an `Arc` shared by copies of the state.
//! - [`sync`]: `missing_for`, deltas, and [`sync::ClusterState`] (both halves).
//! - [`gc`]: collecting tombstones and removed-node decisions once every
//!   known node acknowledges them, and keeping them collected.
//! - [`wire`]: the versioned bincode envelope every message travels in.
//! - [`register`]: the HLC-stamped LWW register and its tie-break; [`error`]: refusals.
//!
//! # Why these structures
//!
//! - **Per-field LWW registers, not one register per RC.** The spec body
//!   (selector, template, strategy, partition policy), the replica count,
//!   the deleted flag and the rollout's paused flag are separate registers,
//!   so a `scale` and an image change made concurrently on two peers both
//!   survive; one register per RC would drop one of them. Registers are `crdts::LWWReg<V, Hlc>`, joined through
//!   [`register::join`], which adds a deterministic tie-break for equal stamps
//!   (LWWReg alone keeps "whatever was there", which is not commutative then).
//! - **A `BTreeMap<String, RcRecord>` merged by hand, not `crdts::Map`.**
//!   `crdts::Map` needs values implementing its `Val` trait (LWWReg does not)
//!   and carries a causal context (dots, vector clocks) per key, which costs
//!   wire bytes and buys add/remove semantics we do not want: our removal is a
//!   register (the tombstone) with a documented rule, and deltas stay a plain
//!   partial record that can be inspected and digested per register.
//! - **Hybrid logical clocks, not wall time or vector clocks.** Stamps stay
//!   near wall time (last writer wins means what users expect), never go
//!   backwards, order after everything seen, and stay 3 small integers.
//!   Absurd remote times are clamped (see [`hlc::Observation::Clamped`]).
//! - **Rollout history as top-10 of a union.** Keeping the newest N entries
//!   of a set union is still a join (commutative, associative, idempotent),
//!   so history replicates with the record and stays bounded.
//! - **Observed state: a version counter per node record.** Each record has
//!   one writer, its node; the highest version wins. Whole records are
//!   shipped: they are small, and no per-field metadata is needed.
//! - **Records shared between copies, copy-on-write.** A peer hands copies
//!   of its whole state to readers and to its disk writer; each record (and
//!   its cached digest entry) is behind an `Arc`, so a copy of 10,000 RCs
//!   costs 0.4 ms instead of 30–35 ms (`bench_state`), and a record is
//!   copied only when it changes while a copy still holds it. Encodings are
//!   those of the records alone.
//! - **Digests with per-register stamps and contents.** Exact `missing_for`
//!   in one round trip, including two different values under one stamp or
//!   version, which stamps alone cannot see (and which would then never
//!   reconcile); on the wire, stamps are offsets from the oldest one and
//!   writer ids an index into a list, so a digest costs a few dozen bytes
//!   per RC (measured by `examples/bench_state.rs`).
#![forbid(unsafe_code)]

pub mod image_ref;
pub mod manifest;
pub mod node;
pub mod pod;
pub mod spec;

pub mod api_tokens;
pub mod desired;
pub mod digest;
pub mod error;
pub mod gc;
pub mod hlc;
pub mod identity;
pub mod join_secrets;
pub mod node_decisions;
pub mod observed;
pub mod register;
pub mod revisions;
pub mod service;
pub mod service_checks;
pub mod sync;
pub mod wire;

mod summarized;

pub use desired::{DesiredDelta, DesiredState, LastApplied, RcBody, RcRecord, RcView, Revision};
pub use error::StateError;
pub use hlc::{Clock, Hlc};
pub use identity::{
    KeyBinding, PublicKey, RecordRejection, RecordSigner, RecordVerifier, Signature,
};
pub use node_decisions::{NodeDecision, NodeDecisions};
pub use observed::{NodeRecord, ObservedDelta, ObservedState};
pub use service::{ServiceRecord, ServiceSpec, ServiceView};
pub use sync::{ClusterState, Delta, Digest, NodeVersion, RcStamps, ServiceStamps};
pub use wire::WireError;
