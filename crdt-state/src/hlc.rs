//! Hybrid logical clock: the stamp every desired-state write carries.
//!
//! A stamp is `(physical_ms, counter, node)`, compared in that order. The
//! physical part keeps stamps close to wall time, so "last writer wins" means
//! roughly what a user expects; the counter orders writes within one
//! millisecond and after a remote stamp from the future; the node id breaks
//! the remaining ties, so every peer orders any two stamps the same way.
//!
//! The [`Clock`] never reads the system clock: the caller passes `now_ms`.
//! Call [`Clock::tick`] for each local write and [`Clock::observe`] for every
//! remote stamp merged into the state, so that a later local write is stamped
//! after everything this node has seen (a `scale` issued after a remote
//! `apply` was received overrides it, even if our wall clock is behind).

use serde::{Deserialize, Serialize};

use crate::node::NodeId;

/// How far ahead of our own wall clock a remote stamp may pull our clock, by default.
pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

/// A hybrid-logical-clock stamp. Field order is the comparison order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch, as the writer's clock saw them (or later).
    pub physical_ms: u64,
    /// Orders writes stamped in the same millisecond.
    pub counter: u32,
    /// The writer: breaks ties between different nodes deterministically.
    pub node: NodeId,
}

impl Hlc {
    /// The smallest stamp: below every stamp a clock produces.
    pub const ZERO: Hlc = Hlc {
        physical_ms: 0,
        counter: 0,
        node: NodeId(0),
    };

    /// A stamp from its parts (mostly for tests and tools).
    pub fn new(physical_ms: u64, counter: u32, node: NodeId) -> Hlc {
        Hlc {
            physical_ms,
            counter,
            node,
        }
    }
}

impl std::fmt::Display for Hlc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}@{}", self.physical_ms, self.counter, self.node)
    }
}

/// What [`Clock::observe`] did with a remote stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The clock now orders later local writes after the remote stamp.
    Absorbed,
    /// The remote stamp was more than `max_drift_ms` ahead of `now_ms`: the
    /// clock advanced only to `now_ms + max_drift_ms`. The write it stamps is
    /// still merged (and wins its register until real time catches up); this
    /// only stops one bad clock from dragging every peer's clock into the future.
    Clamped { ahead_by_ms: u64 },
}

/// One node's hybrid logical clock.
///
/// Invariant: every stamp returned by [`tick`](Clock::tick) is strictly
/// greater than every stamp it returned before and than every stamp passed to
/// [`observe`](Clock::observe) that was not clamped.
#[derive(Debug, Clone)]
pub struct Clock {
    /// Whose stamps these are.
    node: NodeId,
    /// Largest `(physical_ms, counter)` issued or observed so far.
    last_ms: u64,
    last_counter: u32,
    /// Bound on how far a remote stamp may pull us ahead of our own time.
    max_drift_ms: u64,
    /// How many remote stamps were clamped: a sign of a peer with a bad clock.
    clamped: u64,
}

impl Clock {
    /// A clock for `node` that lets remote stamps pull it at most `max_drift_ms` ahead.
    pub fn new(node: NodeId, max_drift_ms: u64) -> Clock {
        Clock {
            node,
            last_ms: 0,
            last_counter: 0,
            max_drift_ms,
            clamped: 0,
        }
    }

    /// The node this clock stamps for.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// How many observed stamps were clamped since the clock was created.
    pub fn clamped_count(&self) -> u64 {
        self.clamped
    }

    /// The largest stamp issued or observed so far (as this node's stamp).
    pub fn last(&self) -> Hlc {
        Hlc::new(self.last_ms, self.last_counter, self.node)
    }

    /// A fresh stamp for a local write at wall time `now_ms`.
    ///
    /// If the wall clock went backwards or stood still, the counter advances
    /// instead, so stamps stay strictly increasing.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.last_counter = 0;
        } else if self.last_counter == u32::MAX {
            // Four billion writes in one millisecond: borrow the next millisecond.
            self.last_ms = self.last_ms.saturating_add(1);
            self.last_counter = 0;
        } else {
            self.last_counter += 1;
        }
        self.last()
    }

    /// Take a remote stamp into account, so later local writes order after it.
    ///
    /// A stamp more than `max_drift_ms` ahead of `now_ms` only advances the
    /// clock to `now_ms + max_drift_ms` (see [`Observation::Clamped`]).
    pub fn observe(&mut self, remote: &Hlc, now_ms: u64) -> Observation {
        let ceiling = now_ms.saturating_add(self.max_drift_ms);
        let (ms, counter, outcome) = if remote.physical_ms > ceiling {
            self.clamped += 1;
            (
                ceiling,
                0,
                Observation::Clamped {
                    ahead_by_ms: remote.physical_ms - now_ms,
                },
            )
        } else {
            (remote.physical_ms, remote.counter, Observation::Absorbed)
        };
        if (ms, counter) > (self.last_ms, self.last_counter) {
            self.last_ms = ms;
            self.last_counter = counter;
        }
        outcome
    }
}
