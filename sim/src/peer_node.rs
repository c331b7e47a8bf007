//! A simulated node that is a whole peer core (`shoal::peer::Peer`: real
//! foca, real CRDT state, real placement and reconcile) plus its own fake
//! container runtime.
//!
//! The peer's clock is wall time: the world's microseconds are offset by
//! [`EPOCH`] so HLC stamps look like real ones. Peer timers and runtime
//! steps share the world's `u64` timer tokens through a table kept here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal::peer::{Output, Peer, PeerEvent, PeerTimer};
use shoal_crdt_state::node::NodeId;
use shoal_crdt_state::pod::PodId;
use shoal_runtime::vocabulary::{PodAction, PodObservation};

use crate::fake_runtime::{FakeRuntime, RuntimeChange, RuntimeStep};
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
    let since = at.saturating_sub(EPOCH);
    let whole = u64::try_from(since.as_micros()).unwrap_or(u64::MAX);
    if since.subsec_nanos().is_multiple_of(1000) {
        whole
    } else {
        whole.saturating_add(1)
    }
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

enum NodeTimer {
    Peer(PeerTimer),
    Runtime(RuntimeStep),
}

/// A peer core and its engine as a [`SimNode`].
pub struct PeerNode {
    pub peer: Peer,
    pub runtime: FakeRuntime,
    timers: BTreeMap<u64, NodeTimer>,
    next_token: u64,
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
            .field("timers", &self.timers.len())
            .finish()
    }
}

impl PeerNode {
    pub fn new(peer: Peer, runtime: FakeRuntime) -> Self {
        PeerNode {
            peer,
            runtime,
            timers: BTreeMap::new(),
            next_token: 0,
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

    /// Crash injection: kills one pod's process (exit 137).
    pub fn kill_pod(&mut self, now: Micros, pod: &PodId) {
        self.now = now;
        if let Some(obs) = self.runtime.kill(pod) {
            self.changes
                .push(PeerNodeEvent::Runtime(RuntimeChange::Stopped(pod.clone())));
            self.peer.handle_observation(wall(now), &obs);
        }
    }

    fn timer(&mut self, out: &mut Vec<NodeOutput<PeerNodeEvent>>, at: Micros, timer: NodeTimer) {
        let token = self.next_token;
        self.next_token += 1;
        self.timers.insert(token, timer);
        out.push(NodeOutput::Timer { at, token });
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
            self.timer(out, step.at, NodeTimer::Runtime(step));
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
        self.peer.handle_sync(wall(now), from, bytes);
    }

    fn handle_timer(&mut self, now: Micros, token: u64) {
        self.now = now;
        match self.timers.remove(&token) {
            Some(NodeTimer::Peer(timer)) => self.peer.handle_timer(wall(now), timer),
            Some(NodeTimer::Runtime(step)) => {
                let (observations, change) = self.runtime.handle_step(&step);
                if let Some(change) = change {
                    self.changes.push(PeerNodeEvent::Runtime(change));
                }
                for obs in observations {
                    self.peer.handle_observation(wall(now), &obs);
                }
            }
            None => {}
        }
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
                    Output::Timer { at, timer } => {
                        self.timer(out, micros(at), NodeTimer::Peer(timer));
                    }
                    Output::Pod(action) => self.run_action(now, &action, out),
                    // A simulated restart resumes from a `Peer::persisted`
                    // the scenario took: nothing to write here.
                    Output::Persist(_) => {}
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
