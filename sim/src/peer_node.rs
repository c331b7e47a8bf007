//! A simulated node that is a whole peer core (`shoal::peer::Peer`: real
//! foca, real CRDT state, real placement and reconcile) plus its own fake
//! container runtime.
//!
//! The peer's clock is wall time: the world's microseconds are offset by
//! [`EPOCH`] so HLC stamps look like real ones. The peer keeps its own
//! timers (`Peer::poll_timeout`); the node's one deadline is the earlier of
//! the peer's and the engine's next step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal::peer::{Output, Peer, PeerEvent};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use shoal_runtime::vocabulary::{PodAction, PodObservation};

use crate::fake_runtime::{FakeRuntime, RuntimeChange, RuntimeStep};
use crate::membership_node::micros_at_or_after;
use crate::node::{NodeOutput, SimNode};
use crate::queue::Micros;

/// Simulated time 0 as wall time: 2023-11-14, so stamps look real.
pub const EPOCH: Duration = Duration::from_secs(1_700_000_000);

/// The peer's wall clock at simulated time `now`.
pub fn wall(now: Micros) -> Duration {
    EPOCH + Duration::from_micros(now)
}

/// Simulated time of a wall-clock deadline (never before the run began),
/// rounded up to the next whole microsecond: a timer is delivered at or
/// after its deadline, never before (a deadline with nanoseconds, such as
/// the startup grace's, would otherwise come due a few ns early and be
/// ignored as stale).
pub fn micros(at: Duration) -> Micros {
    micros_at_or_after(at.saturating_sub(EPOCH))
}

/// What a peer node tells the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerNodeEvent {
    /// The node's engine changed what it runs (ground truth).
    Runtime(RuntimeChange),
    /// The peer stopped a replica placement gave to `owner`, before the
    /// handover bound expired: make-before-break requires the successor to
    /// run it already.
    HandoverStop { pod: PodId, owner: NodeId },
    /// The peer reported a replica that fits nowhere.
    Unplaced { pod: String },
    /// A restarted peer's startup grace ended after `after_ms`, with
    /// `missing` remembered members still not seen.
    Settled { after_ms: u64, missing: usize },
}

/// A peer core and its engine as a [`SimNode`].
pub struct PeerNode {
    pub peer: Peer,
    pub runtime: FakeRuntime,
    /// The engine's pending steps (a start finishing, a removal), by time
    /// and then in the order they were asked for.
    steps: BTreeMap<(Micros, u64), RuntimeStep>,
    next_step: u64,
    /// Observations produced while handling an input, fed back before the
    /// next drain completes (the engine answers at once).
    observations: Vec<PodObservation>,
    /// Runtime changes to report with the next drain.
    changes: Vec<PeerNodeEvent>,
    /// Messages the peer rejected (bad or stale input).
    pub bad_messages: u64,
    /// Time of the last input: pod actions drained after it run then.
    now: Micros,
}

impl std::fmt::Debug for PeerNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerNode")
            .field("node", &self.peer.node())
            .field("pods", &self.runtime.len())
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl PeerNode {
    pub fn new(peer: Peer, runtime: FakeRuntime) -> Self {
        PeerNode {
            peer,
            runtime,
            steps: BTreeMap::new(),
            next_step: 0,
            observations: Vec::new(),
            changes: Vec::new(),
            bad_messages: 0,
            now: 0,
        }
    }

    /// The peer, for an input given at `now` from outside the world (a
    /// scenario step through `World::with_node`).
    pub fn at(&mut self, now: Micros) -> &mut Peer {
        self.now = now;
        &mut self.peer
    }

    fn run_action(
        &mut self,
        now: Micros,
        action: &PodAction,
        out: &mut Vec<NodeOutput<PeerNodeEvent>>,
    ) {
        if let PodAction::Stop { pod, .. } = action {
            self.check_handover(now, pod, out);
        }
        let (observations, step) = self.runtime.handle_action(now, action);
        self.observations.extend(observations);
        if let Some(step) = step {
            self.steps.insert((step.at, self.next_step), step);
            self.next_step += 1;
        }
    }

    /// Reports a stop that is a handover under way (the replica is still
    /// declared, another node owns it, the bound has not expired).
    fn check_handover(&self, now: Micros, pod: &PodId, out: &mut Vec<NodeOutput<PeerNodeEvent>>) {
        let declared = self
            .peer
            .rcs()
            .get(&pod.rc)
            .is_some_and(|rc| pod.index < rc.replicas);
        let Some(owner) = self.peer.assignment().owner(pod) else {
            return;
        };
        if !declared || owner == self.peer.node() {
            return;
        }
        let Some(local) = self.peer.local_pods().get(pod) else {
            return;
        };
        let now_ms = u64::try_from(wall(now).as_millis()).unwrap_or(u64::MAX);
        let bound = self.peer.config().reconcile.handover_bound_ms;
        let within_bound = local
            .moved_away_at
            .is_some_and(|since| now_ms < since.saturating_add(bound));
        if within_bound {
            out.push(NodeOutput::Event(PeerNodeEvent::HandoverStop {
                pod: pod.clone(),
                owner,
            }));
        }
    }
}

impl SimNode for PeerNode {
    type Event = PeerNodeEvent;

    fn handle_datagram(&mut self, now: Micros, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        self.peer.handle_datagram(wall(now), from, bytes);
    }

    fn handle_message(&mut self, now: Micros, from: SocketAddr, bytes: &[u8]) {
        self.now = now;
        if crate::sync_breakdown::enabled() {
            crate::sync_breakdown::record(bytes, self.peer.state());
        }
        self.peer.handle_sync(wall(now), from, bytes);
    }

    /// The engine's steps due first, then the peer's timers.
    fn handle_timeout(&mut self, now: Micros) {
        self.now = now;
        while let Some(entry) = self.steps.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let step = entry.remove();
            let (observations, change) = self.runtime.handle_step(&step);
            if let Some(change) = change {
                self.changes.push(PeerNodeEvent::Runtime(change));
            }
            for obs in observations {
                self.peer.handle_observation(wall(now), &obs);
            }
        }
        self.peer.handle_timeout(wall(now));
    }

    fn poll_timeout(&self) -> Option<Micros> {
        let peer = self.peer.poll_timeout().map(micros);
        let engine = self.steps.first_key_value().map(|((at, _), _)| *at);
        peer.into_iter().chain(engine).min()
    }

    /// Drains the peer until it is quiet: pod actions run against the
    /// engine at once, and what the engine answers is fed back in.
    fn drain(&mut self, out: &mut Vec<NodeOutput<PeerNodeEvent>>) {
        out.extend(self.changes.drain(..).map(NodeOutput::Event));
        let now = self.now;
        loop {
            while let Some(output) = self.peer.poll_output() {
                match output {
                    Output::Datagram { to, bytes } => out.push(NodeOutput::Send { to, bytes }),
                    Output::Sync { to, bytes } => out.push(NodeOutput::Message { to, bytes }),
                    Output::Pod(action) => self.run_action(now, &action, out),
                    // A simulated restart resumes from a `Peer::persisted`
                    // the scenario took: nothing to write here.
                    Output::Persist(_) | Output::Checkpoint => {}
                    Output::Event(PeerEvent::BadMessage { .. }) => self.bad_messages += 1,
                    Output::Event(PeerEvent::Unplaced { pod, .. }) => {
                        out.push(NodeOutput::Event(PeerNodeEvent::Unplaced { pod }));
                    }
                    Output::Event(PeerEvent::Settled { after_ms, missing }) => {
                        out.push(NodeOutput::Event(PeerNodeEvent::Settled {
                            after_ms,
                            missing: missing.len(),
                        }));
                    }
                    Output::Event(_) => {}
                }
            }
            if self.observations.is_empty() {
                break;
            }
            for obs in std::mem::take(&mut self.observations) {
                self.peer.handle_observation(wall(now), &obs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_with_nanoseconds_comes_due_at_or_after_it() {
        let at = wall(5) + Duration::from_nanos(1);
        assert_eq!(micros(at), 6);
        assert!(wall(micros(at)) >= at);
        assert_eq!(micros(wall(5)), 5);
        assert_eq!(micros(Duration::ZERO), 0);
    }
}
