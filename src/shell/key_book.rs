//! The key bindings the QUIC transport checks peers' certificates against
//! (see `shoal_gossip::quic::node_cert`): a copy of the replicated state's
//! bindings, filled from the persisted state before the transport binds,
//! refreshed by the driver whenever node decisions change, read by
//! handshakes on the transport's tasks.

use std::sync::{Arc, PoisonError, RwLock};

use shoal_crdt_state::ClusterState;
use shoal_crdt_state::identity::PublicKey;
use shoal_crdt_state::node::NodeId;
use shoal_gossip::quic::KeyBindings;

/// The bound key of each node id, sorted by id.
#[derive(Debug, Clone, Default)]
pub struct KeyBook {
    bound: Arc<RwLock<Vec<(NodeId, PublicKey)>>>,
    /// The peer's count of node decision changes last copied at.
    seen: Option<u64>,
}

impl KeyBook {
    /// What the transport asks at each handshake.
    pub fn bindings(&self) -> KeyBindings {
        let bound = self.bound.clone();
        KeyBindings(Arc::new(move |node| {
            let bound = bound.read().unwrap_or_else(PoisonError::into_inner);
            bound
                .binary_search_by_key(&node, |(id, _)| *id)
                .ok()
                .map(|at| bound[at].1)
        }))
    }

    /// Copies the bindings `state` holds, if `version` (the peer's count
    /// of node decision changes) moved since the last call. Returns
    /// whether a binding changed (open connections are then rechecked).
    pub fn refresh(&mut self, state: &ClusterState, version: u64) -> bool {
        if self.seen == Some(version) {
            return false;
        }
        self.seen = Some(version);
        self.copy(state)
    }

    /// Copies the bindings `state` holds; whether they differed. One pass
    /// over the node decisions, no write when nothing changed.
    pub fn copy(&self, state: &ClusterState) -> bool {
        let nodes = state.desired.nodes();
        let now = || {
            nodes
                .iter()
                .filter_map(|(node, decision)| Some((node, decision.bound_key()?.key)))
        };
        let same = {
            let held = self.bound.read().unwrap_or_else(PoisonError::into_inner);
            held.iter().copied().eq(now())
        };
        if !same {
            *self.bound.write().unwrap_or_else(PoisonError::into_inner) = now().collect();
        }
        !same
    }
}

#[cfg(test)]
mod tests {
    use shoal_crdt_state::hlc::Hlc;

    use super::*;

    #[test]
    fn bindings_follow_the_state() {
        let mut book = KeyBook::default();
        let lookup = book.bindings();
        let mut state = ClusterState::default();
        assert!(!book.refresh(&state, 0));
        assert_eq!((lookup.0)(NodeId(7)), None);

        let key = PublicKey([7; 32]);
        let stamp = Hlc {
            physical_ms: 1_000,
            counter: 0,
            node: NodeId(7),
        };
        state.desired.bind_key(NodeId(7), key, stamp);
        assert!(!book.refresh(&state, 0));
        assert_eq!((lookup.0)(NodeId(7)), None, "same version: not reread");
        assert!(book.refresh(&state, 1));
        assert_eq!((lookup.0)(NodeId(7)), Some(key));
        assert_eq!((lookup.0)(NodeId(8)), None);
        assert!(!book.refresh(&state, 2), "moved, but no binding changed");

        // Before the transport binds: a copy, whatever the version.
        let early = KeyBook::default();
        assert!(early.copy(&state));
        assert_eq!((early.bindings().0)(NodeId(7)), Some(key));
    }
}
