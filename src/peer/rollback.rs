//! What this node does when one of its pods stops a rollout: say so, and,
//! when the RC asks for `shoal.io/auto-rollback`, write the previous
//! template back. Only a node whose own pod stalled writes it, so a stall
//! seen by a hundred peers is one write, not a hundred; a second node with
//! a stalled pod writes the same template, and the registers converge.

use std::collections::BTreeSet;
use std::time::Duration;

use shoal_crdt_state::pod::PodId;

use super::io::{Output, PeerEvent};
use super::{Peer, ms};
use crate::reconcile::rollout::rollback_template;

impl Peer {
    /// This node's pods that are stalled now.
    pub(super) fn local_stalls(&self) -> BTreeSet<PodId> {
        self.local
            .iter()
            .filter(|(_, l)| l.stalled.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Reports pods that stalled since `before`, and rolls their RC back
    /// when it asks for it.
    pub(super) fn follow_stalls(&mut self, now: Duration, before: &BTreeSet<PodId>) {
        let fresh: Vec<(PodId, String)> = self
            .local
            .iter()
            .filter(|(id, _)| !before.contains(*id))
            .filter_map(|(id, l)| Some((id.clone(), l.stalled.clone()?)))
            .collect();
        for (id, reason) in fresh {
            let target = self.state.desired.get(&id.rc).and_then(|view| {
                let spec = self.rcs.get(&id.rc)?;
                rollback_template(spec, view.history()).cloned()
            });
            let mut rolled_back = false;
            if let Some(template) = target {
                let stamp = self.clock.tick(ms(now));
                if let Ok(delta) = self.state.desired.set_template(&id.rc, template, stamp)
                    && !delta.is_empty()
                {
                    rolled_back = true;
                    self.rcs_dirty = true;
                    self.placement_dirty = true;
                    self.outputs
                        .push_back(Output::Persist(delta.clone().into()));
                    self.spread(now, delta.into());
                    self.request_reconcile(now);
                }
            }
            self.outputs
                .push_back(Output::Event(PeerEvent::RolloutStopped {
                    rc: id.rc,
                    reason,
                    rolled_back,
                }));
        }
    }
}
