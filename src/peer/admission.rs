//! What a peer takes of the decisions about node ids that arrive from
//! others, before merging them: key bindings, removals and the forgetting
//! that rides with a removal. Stamps and removal registers come from their
//! writer, and any member can write them; what nobody can forge from afar
//! is whether the node is live in this peer's own member view (the
//! transport takes connections for an id only with the key bound here).
//! The rules are `shoal_crdt_state::identity::{admits_binding,
//! admits_removal, admits_forgetting}`; this applies them with what the
//! peer sees, and counts and logs what it refuses.
//!
//! A refused write is not merged, so not forwarded; the sender, or anyone
//! holding it, offers it again with anti-entropy (one exchange per round
//! with such a peer, no more) and it is taken once the node is no longer
//! live here. A refusal repeats that way, so it is logged once per node and
//! kind, then at most once a minute with the count since. A refused
//! removal is also sent to the node it names, which takes it back.
//!
//! What the garbage collector's catch-up may drop is bounded elsewhere
//! (`src/peer/garbage.rs`, `shoal_crdt_state::gc`): removals, and the
//! decisions of nodes the sender omits whole that this peer does not see
//! live ([`Peer::is_seen_live`]), so a horizon in a member's digest cannot
//! clear a live node's binding ahead of a claim. The other way round, the
//! decisions of a node not held here, older than our horizon and not live
//! here are refused: a node the cluster deleted and collected, handed back
//! by a peer that was away.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_crdt_state::gc;
use shoal_crdt_state::identity::{self, BindingRefusal};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::node_decisions::NodeDecision;
use shoal_crdt_state::observed::ObservedDelta;
use shoal_crdt_state::register::Reg;
use shoal_crdt_state::{Delta, DesiredDelta};

use super::Peer;
use super::spread::Sender;

/// How long a member declared down still counts as live here. A member
/// can spread a false "down" about a live node to open a window for a
/// removal and binding of its id; SWIM tells a node declared down, which
/// renews its identity and is back up within a second or two. A `node
/// delete` refused meanwhile is taken on a later anti-entropy round.
pub(super) const DOWN_STILL_LIVE_FOR: Duration = Duration::from_secs(5);

/// Least time between two sends of a refused removal to the node it names.
pub(super) const TELL_EVERY: Duration = Duration::from_secs(10);

/// Least time between two warnings about refusals of one kind for one node.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Nodes and kinds remembered by [`RefusalLog`]; beyond it the log starts
/// over (the next refusal of each warns again, which is harmless).
const MAX_REMEMBERED: usize = 256;

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refused {
    Binding(BindingRefusal),
    Removal,
    Forgetting,
    Collected,
}

/// When each kind of refusal for a node was last warned about, and how
/// many came since.
#[derive(Debug, Default)]
pub(super) struct RefusalLog {
    warned: BTreeMap<(NodeId, Refused), (Duration, u64)>,
    /// When a refused removal was last sent to each node.
    told: BTreeMap<NodeId, Duration>,
}

impl RefusalLog {
    /// Whether a refused removal may be sent to `node` now; if so, notes it.
    fn may_tell(&mut self, now: Duration, node: NodeId) -> bool {
        if self
            .told
            .get(&node)
            .is_some_and(|at| now.saturating_sub(*at) < TELL_EVERY)
        {
            return false;
        }
        if self.told.len() >= MAX_REMEMBERED {
            self.told
                .retain(|_, at| now.saturating_sub(*at) < TELL_EVERY);
        }
        self.told.insert(node, now);
        true
    }

    /// Notes one refusal; the count a warning now covers, or `None`.
    fn note(&mut self, now: Duration, node: NodeId, what: Refused) -> Option<u64> {
        if let Some((at, since)) = self.warned.get_mut(&(node, what)) {
            *since += 1;
            if now.saturating_sub(*at) < WARN_EVERY {
                return None;
            }
            let count = *since;
            *at = now;
            *since = 0;
            return Some(count);
        }
        if self.warned.len() >= MAX_REMEMBERED {
            self.warned.clear();
        }
        self.warned.insert((node, what), (now, 0));
        Some(1)
    }
}

impl Peer {
    /// Whether `node` counts as live here for the admission rules: us, a
    /// member SWIM counts in, one a restart's grace still waits for, or
    /// one declared down less than [`DOWN_STILL_LIVE_FOR`] ago unless its
    /// own (signed) record said it was leaving.
    ///
    /// A member that left gracefully is not live: it said so itself, so
    /// `node delete` right after a graceful stop is taken at once (placement
    /// still holds its replicas for the grace, see `held_for_grace`). A
    /// member a restarted peer's grace waits for stays live: this peer has
    /// not met it yet since the restart, and dropping it would let a
    /// member's removal and binding of its id in at every peer that
    /// restarts; what it costs is a `node delete` taken a grace later there.
    pub(super) fn is_live_here(&self, node: NodeId, now: Duration) -> bool {
        self.is_seen_live(node, now) || self.awaited_after_restart(node)
    }

    /// [`Peer::is_live_here`] without the restart's grace: what this peer's
    /// SWIM shows (us, a member, or one declared down less than
    /// [`DOWN_STILL_LIVE_FOR`] ago that did not say it was leaving). What
    /// garbage collection's catch-up keeps: a grace awaits every member the
    /// peer remembers, a node deleted while it was away included, and the 5
    /// s after a false "down" must not let a member's digest drop a live
    /// node's binding.
    pub(super) fn is_seen_live(&self, node: NodeId, now: Duration) -> bool {
        node == self.config.node
            || self.members.contains_key(&node)
            || (!self.departing.contains_key(&node)
                && self
                    .departed
                    .get(&node)
                    .is_some_and(|(_, at)| now.saturating_sub(*at) < DOWN_STILL_LIVE_FOR))
    }

    /// Drops from `delta` the node decisions this peer does not take: a
    /// removal of a node live here, or a forgetting of its current record,
    /// unless the node is us (we take our removal in, and back); a key
    /// binding refused by `identity::admits_binding`. A refused removal is
    /// sent to the node itself (see [`Peer::tell_removed`]).
    pub(super) fn admit_node_decisions(&mut self, now: Duration, from: Sender, delta: &mut Delta) {
        let me = self.config.node;
        let mut to_tell = Vec::new();
        let horizon = self.state.desired.collected_below_ms();
        let mut collected = Vec::new();
        for (node, decision) in &mut delta.desired.nodes {
            let live = self.is_live_here(*node, now);
            let live_other = live && *node != me;
            let mut refused = Vec::new();
            // A node this peer does not hold, all of whose decision is older
            // than our horizon, not live here and not being removed: one
            // the cluster deleted and collected, handed back by a peer that
            // was away (the fence lets bindings through for live nodes).
            if !live
                && !decision.is_removed()
                && self.state.desired.nodes().get(*node).is_none()
                && gc::settled(decision.max_stamp(), horizon)
            {
                collected.push(*node);
                self.stats.bindings_refused += 1;
                self.log_refusal(now, from, *node, Refused::Collected);
                continue;
            }
            if let Some(removal) = &decision.removed
                && !identity::admits_removal(removal, live_other)
            {
                to_tell.push((*node, removal.clone()));
                decision.removed = None;
                self.stats.removals_refused += 1;
                refused.push(Refused::Removal);
            }
            if let Some(incoming) = decision.key {
                let held_decision = self.state.desired.nodes().get(*node);
                let held = held_decision.and_then(|d| d.key);
                let held_removal = held_decision.and_then(|d| d.removed.as_ref());
                let admitted = identity::admits_binding(
                    held.as_ref(),
                    held_removal,
                    decision.removed.as_ref(),
                    &incoming,
                    live,
                );
                if let Err(why) = admitted {
                    decision.key = None;
                    self.stats.bindings_refused += 1;
                    refused.push(Refused::Binding(why));
                }
            }
            if let Some(through) = decision.forgets_through
                && !self.admits_forgetting(*node, decision, &delta.observed, through, live_other)
            {
                decision.forgets_through = None;
                self.stats.removals_refused += 1;
                refused.push(Refused::Forgetting);
            }
            for what in refused {
                self.log_refusal(now, from, *node, what);
            }
        }
        for node in collected {
            delta.desired.nodes.remove(&node);
        }
        for (node, removal) in to_tell {
            self.tell_removed(now, node, removal);
        }
    }

    /// `identity::admits_forgetting` against the newest record of `node`
    /// held here or arriving in the same delta (a join transfer brings the
    /// removal and the record above it together). An arriving record
    /// counts only if it is signed by the key the node will be bound to
    /// here after this delta (the one held, else the one arriving, already
    /// admitted): a forged record with a high version would otherwise
    /// raise the bar's reference and let a live node's current record be
    /// forgotten, before the record itself is rejected.
    fn admits_forgetting(
        &self,
        node: NodeId,
        decision: &NodeDecision,
        arriving: &ObservedDelta,
        through: u64,
        live: bool,
    ) -> bool {
        let held_version = self.state.observed.get(node).map(|r| r.version);
        if identity::admits_forgetting(through, live, held_version) {
            return true;
        }
        let Some(record) = arriving.nodes.get(&node) else {
            return false;
        };
        if held_version.is_some_and(|held| held >= record.version) {
            return false;
        }
        let binding = self.state.desired.nodes().bound_key(node).copied();
        let Some(binding) = binding.or(decision.key) else {
            return false;
        };
        identity::check_record(Some(&binding), node, record, &self.config.verifier).is_ok()
            && identity::admits_forgetting(through, live, Some(record.version))
    }

    /// Sends a removal of `node` this peer refused (it counts the node
    /// live) to the node itself, at most once per node every
    /// [`TELL_EVERY`]: a node that cannot reach the peers that took the
    /// removal (an asymmetric partition) would otherwise never learn it,
    /// never take it back, and the two sides would disagree for good
    /// (collection stalls on the differing hashes). The node's take-back
    /// then replaces the removal everywhere. Only the register travels:
    /// the node takes its own removal in whatever the sender.
    fn tell_removed(&mut self, now: Duration, node: NodeId, removal: Reg<bool>) {
        let Some(&to) = self.members.get(&node) else {
            return;
        };
        if !self.refusals.may_tell(now, node) {
            return;
        }
        let decision = NodeDecision {
            removed: Some(removal),
            ..NodeDecision::default()
        };
        let delta = Delta::from(DesiredDelta {
            nodes: [(node, decision)].into(),
            ..DesiredDelta::default()
        });
        tracing::debug!(%node, %to, "sending a refused removal to the node it names");
        self.send_push(to, delta, None);
    }

    fn log_refusal(&mut self, now: Duration, from: Sender, node: NodeId, what: Refused) {
        let bound = self
            .state
            .desired
            .nodes()
            .get(node)
            .and_then(|d| d.key)
            .map(|b| b.key.to_string())
            .unwrap_or_default();
        let Some(count) = self.refusals.note(now, node, what) else {
            tracing::debug!(%from, %node, ?what, "refused again (see the warning before)");
            return;
        };
        match what {
            Refused::Binding(why) => tracing::warn!(
                %from,
                %node,
                %bound,
                count,
                "refused a key binding for node {node}: {why}"
            ),
            Refused::Removal => tracing::warn!(
                %from,
                %node,
                count,
                "refused a removal of node {node}: it is live here (only a node that is down \
                 can be deleted; a live node takes its own removal back)"
            ),
            Refused::Forgetting => tracing::warn!(
                %from,
                %node,
                count,
                "refused to forget node {node}'s current record: it is live here"
            ),
            Refused::Collected => tracing::warn!(
                %from,
                %node,
                count,
                "refused the decisions of node {node}: older than this peer's collection \
                 horizon, not held and not live here (a node deleted and collected, handed \
                 back by a peer that was away; or one not seen up here yet: taken once it is)"
            ),
        }
    }
}
