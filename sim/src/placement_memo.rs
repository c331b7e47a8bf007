//! A placer shared by every simulated peer: it keeps the last few
//! assignments with their exact inputs, and answers a peer whose inputs
//! equal one of them with a copy instead of placing again. `assign` is a
//! pure function of those inputs, so the answer is the one the peer would
//! compute; a cluster of n peers in agreement places once, not n times.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use shoal::peer::{Placer, PlacerRef};
use shoal::placement::{Assignment, NodeCandidate, assign};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::spec::RcSpec;

/// Recent inputs kept: peers a few changes apart (a desired state still
/// spreading) each find theirs.
const KEEP: usize = 8;

struct Placed {
    rcs: BTreeMap<String, RcSpec>,
    nodes: BTreeMap<NodeId, NodeCandidate>,
    assignment: Assignment,
}

#[derive(Default)]
pub struct PlacementMemo {
    recent: Mutex<VecDeque<Placed>>,
    hits: Mutex<u64>,
}

impl std::fmt::Debug for PlacementMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementMemo")
            .field("hits", &self.hits())
            .finish()
    }
}

impl PlacementMemo {
    /// A placer for a peer's config, backed by this memo.
    pub fn placer(self: &Arc<Self>) -> PlacerRef {
        PlacerRef(self.clone())
    }

    /// Placements answered from the memo so far.
    pub fn hits(&self) -> u64 {
        self.hits.lock().map_or(0, |h| *h)
    }
}

impl Placer for PlacementMemo {
    fn assign(
        &self,
        rcs: &BTreeMap<String, RcSpec>,
        nodes: &BTreeMap<NodeId, NodeCandidate>,
    ) -> Assignment {
        // The simulator is single-threaded: a poisoned lock cannot happen,
        // and placing afresh is always right.
        let Ok(mut recent) = self.recent.lock() else {
            return assign(rcs, nodes);
        };
        if let Some(i) = recent
            .iter()
            .position(|p| p.rcs == *rcs && p.nodes == *nodes)
        {
            let placed = recent.remove(i).expect("position is in range");
            let answer = placed.assignment.clone();
            recent.push_front(placed);
            if let Ok(mut hits) = self.hits.lock() {
                *hits += 1;
            }
            return answer;
        }
        let assignment = assign(rcs, nodes);
        recent.push_front(Placed {
            rcs: rcs.clone(),
            nodes: nodes.clone(),
            assignment: assignment.clone(),
        });
        recent.truncate(KEEP);
        assignment
    }
}
