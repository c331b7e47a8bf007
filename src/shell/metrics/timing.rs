//! Durations the driver measures around the pure core, which has no clock,
//! and the image transfers of the shell.

use std::collections::BTreeMap;
use std::time::Instant;

use metrics::{counter, histogram};
use shoal_crdt_state::pod::PodId;
use shoal_runtime::vocabulary::{PodAction, PodEvent, PodObservation};

use super::catalog::{IMAGE_TRANSFERS, PLACEMENT_SECONDS, POD_START_FAILURES, POD_START_SECONDS};
use crate::peer::Peer;

/// Starts being timed at once; beyond this, new starts go untimed until
/// some finish (a start whose outcome never comes is dropped with its pod).
const MAX_TIMED_STARTS: usize = 100_000;

/// Times each pod from the driver handing its `Start` to the engine until
/// the engine reports it running (or failing).
#[derive(Debug, Default)]
pub struct PodStartTimer {
    started: BTreeMap<PodId, Instant>,
}

impl PodStartTimer {
    /// Call with every pod action the driver executes.
    pub fn note_action(&mut self, action: &PodAction) {
        match action {
            PodAction::Start { pod, .. } if self.started.len() < MAX_TIMED_STARTS => {
                self.started.insert(pod.clone(), Instant::now());
            }
            PodAction::Start { .. } => {}
            PodAction::Stop { pod, .. } | PodAction::StopOrphan { pod, .. } => {
                self.started.remove(pod);
            }
        }
    }

    /// Call with every observation from the engine.
    pub fn note_observation(&mut self, observation: &PodObservation) {
        let outcome = match &observation.event {
            PodEvent::Running { .. } => StartOutcome::Running,
            PodEvent::ImageError(_) => StartOutcome::Failed("image"),
            PodEvent::StartError(_) => StartOutcome::Failed("start"),
            PodEvent::Exited { .. } | PodEvent::Removed => StartOutcome::Gone,
            PodEvent::Preparing(_) | PodEvent::Created | PodEvent::Ready(_) => return,
        };
        let Some(started) = self.started.remove(&observation.pod) else {
            return;
        };
        match outcome {
            StartOutcome::Running => histogram!(POD_START_SECONDS).record(started.elapsed()),
            StartOutcome::Failed(reason) => {
                counter!(POD_START_FAILURES, "reason" => reason).increment(1);
            }
            // Stopped or removed before it ran: no start to time.
            StartOutcome::Gone => {}
        }
    }
}

/// How a timed start ended.
enum StartOutcome {
    Running,
    Failed(&'static str),
    Gone,
}

/// Times one core input, and records it if the core placed during it.
#[derive(Debug)]
pub struct PlacementTimer {
    placements: u64,
    started: Instant,
}

impl PlacementTimer {
    pub fn start(peer: &Peer) -> PlacementTimer {
        PlacementTimer {
            placements: peer.stats().placements,
            started: Instant::now(),
        }
    }

    pub fn finish(self, peer: &Peer) {
        if peer.stats().placements != self.placements {
            histogram!(PLACEMENT_SECONDS).record(self.started.elapsed());
        }
    }
}

/// Counts one image transfer between peers: `direction` is `received` or
/// `sent`; `outcome` is `ok`, `failed`, `busy` or `refused`.
pub fn transferred(direction: &'static str, outcome: &'static str) {
    counter!(IMAGE_TRANSFERS, "direction" => direction, "outcome" => outcome).increment(1);
}
