//! Ground truth of what runs where, read from the fake engines' changes,
//! and the trackers that turn those changes into figures.
//!
//! A copy counts while its engine runs it, whether or not the peer that
//! owns the engine is up: after a crash that spares the engine (only the
//! peer process died), the containers keep running and serving.

use std::collections::{BTreeMap, BTreeSet};

use shoal_crdt_state::pod::PodId;

use crate::fake_runtime::RuntimeChange;
use crate::peer_node::PeerNodeEvent;
use crate::queue::Micros;
use crate::scenarios::cluster::MS;
use crate::world::Slot;

/// Waiting for every listed replica of one RC to run (after an apply or a
/// scale up).
#[derive(Debug, Clone)]
struct Wait {
    since: Micros,
    indices: BTreeSet<u32>,
    done: Option<Micros>,
}

/// A restarted peer's startup grace ended (`PeerEvent::Settled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceEnd {
    pub at: Micros,
    pub slot: Slot,
    pub after_ms: u64,
    /// Remembered members it had still not seen (treated as down).
    pub missing: usize,
}

/// Ground truth and trackers, fed by the nodes' events.
#[derive(Debug, Default)]
pub struct Truth {
    /// Slots whose engine runs each replica (live peers, and the surviving
    /// engines of crashed ones).
    running: BTreeMap<PodId, BTreeSet<Slot>>,
    /// Per RC: replicas still to see running since an apply or scale.
    waits: BTreeMap<String, Wait>,
    /// Applies (and scales) that completed: ms from the command to the
    /// last replica running.
    pub apply_ms: Vec<f64>,
    /// Replicas lost with a crashed node, since when.
    lost: BTreeMap<PodId, Micros>,
    /// Node crash to replacement running, ms.
    pub failover_ms: Vec<f64>,
    /// Stops of a replica during a handover (before the bound).
    pub handover_stops: u64,
    /// ... of which with no other copy running: make-before-break broken.
    pub handover_breaks: u64,
    pub handover_examples: Vec<String>,
    pub unplaced_events: u64,
    /// Startup graces that ended, in order.
    pub grace_ends: Vec<GraceEnd>,
    /// Copy counts over time, once a scenario asks for them.
    pub copies: Option<CopyTracker>,
}

impl Truth {
    pub(super) fn on_event(&mut self, now: Micros, slot: Slot, event: PeerNodeEvent) {
        if let Some(t) = &mut self.copies {
            t.clock = now;
        }
        match event {
            PeerNodeEvent::Runtime(RuntimeChange::Running(pod)) => {
                if let Some(since) = self.lost.remove(&pod) {
                    self.failover_ms.push((now - since) as f64 / 1000.0);
                }
                if let Some(w) = self.waits.get_mut(&pod.rc)
                    && w.indices.remove(&pod.index)
                    && w.indices.is_empty()
                    && w.done.is_none()
                {
                    w.done = Some(now);
                    self.apply_ms.push((now - w.since) as f64 / 1000.0);
                }
                if let Some(t) = &mut self.copies {
                    t.started(now, slot, &pod, self.running.get(&pod));
                }
                self.set_copy(&pod, slot, true);
            }
            PeerNodeEvent::Runtime(RuntimeChange::Stopped(pod)) => {
                self.set_copy(&pod, slot, false);
            }
            PeerNodeEvent::HandoverStop { pod, owner } => {
                self.handover_stops += 1;
                let others = self
                    .running
                    .get(&pod)
                    .is_some_and(|s| s.iter().any(|&o| o != slot));
                if !others {
                    self.handover_breaks += 1;
                    if self.handover_examples.len() < 5 {
                        self.handover_examples.push(format!(
                            "t={} ms slot {slot} stopped {}-{} before its owner {owner} ran it",
                            now / MS,
                            pod.rc,
                            pod.index
                        ));
                    }
                }
            }
            PeerNodeEvent::Unplaced { .. } => self.unplaced_events += 1,
            PeerNodeEvent::Settled { after_ms, missing } => self.grace_ends.push(GraceEnd {
                at: now,
                slot,
                after_ms,
                missing,
            }),
        }
    }

    /// True when some engine runs `pod`.
    pub fn is_running(&self, pod: &PodId) -> bool {
        self.running.contains_key(pod)
    }

    /// Waits for `indices` of `rc` to run, from `since`.
    pub(super) fn wait_for(&mut self, rc: String, indices: BTreeSet<u32>, since: Micros) {
        self.waits.insert(
            rc,
            Wait {
                since,
                indices,
                done: None,
            },
        );
    }

    /// Waits that never completed.
    pub fn waits_incomplete(&self) -> usize {
        self.waits.values().filter(|w| w.done.is_none()).count()
    }

    pub fn failovers_incomplete(&self) -> usize {
        self.lost.len()
    }

    /// The peer in `slot` crashed. `lost` are the pods its engine ran when
    /// the engine died with it (none when the engine survived); those of
    /// them in `declared` wait for a replacement.
    pub(super) fn crashed(
        &mut self,
        now: Micros,
        slot: Slot,
        lost: &[PodId],
        declared: &BTreeMap<String, u32>,
    ) {
        if let Some(t) = &mut self.copies {
            t.clock = now;
        }
        for pod in lost {
            self.set_copy(pod, slot, false);
            let still_runs = self.running.contains_key(pod);
            if !still_runs && declared.get(&pod.rc).is_some_and(|&r| pod.index < r) {
                self.lost.insert(pod.clone(), now);
            }
        }
        if let Some(t) = &mut self.copies {
            t.down.insert(slot);
            t.recount(&self.running);
        }
    }

    /// The peer in `slot` started again over an engine that runs exactly
    /// `running` (what survived, settled: pods caught stopping are gone).
    pub(super) fn restarted(&mut self, now: Micros, slot: Slot, running: &[PodId]) {
        if let Some(t) = &mut self.copies {
            t.clock = now;
        }
        let had: Vec<PodId> = self
            .running
            .iter()
            .filter(|(_, slots)| slots.contains(&slot))
            .map(|(pod, _)| pod.clone())
            .collect();
        for pod in had.iter().filter(|p| !running.contains(p)) {
            self.set_copy(pod, slot, false);
        }
        for pod in running {
            self.set_copy(pod, slot, true);
        }
        if let Some(t) = &mut self.copies {
            t.down.remove(&slot);
            t.recount(&self.running);
        }
    }

    /// Starts counting copies against `declared`; peaks start from the
    /// counts of now.
    pub fn track_copies(&mut self, now: Micros, declared: BTreeMap<String, u32>) {
        let mut t = CopyTracker {
            declared,
            clock: now,
            counted_until: now,
            ..CopyTracker::default()
        };
        t.recount(&self.running);
        self.copies = Some(t);
    }

    fn set_copy(&mut self, pod: &PodId, slot: Slot, runs: bool) {
        let before = self.copies.as_ref().map(|t| t.of(pod, &self.running));
        let slots = self.running.entry(pod.clone()).or_default();
        if runs {
            slots.insert(slot);
        } else {
            slots.remove(&slot);
        }
        if slots.is_empty() {
            self.running.remove(pod);
        }
        if let (Some(t), Some(before)) = (&mut self.copies, before) {
            let after = t.of(pod, &self.running);
            match (before.duplicates, after.duplicates) {
                (0, 1) => {
                    t.duplicated_since.insert(pod.clone(), t.clock);
                }
                (1, 0) => {
                    if let Some(since) = t.duplicated_since.remove(pod) {
                        t.longest_duplicate = t.longest_duplicate.max(t.clock - since);
                    }
                }
                _ => {}
            }
            let now = t.now.minus(before).plus(after);
            t.set(now);
        }
    }
}

/// Replicas running too often or not at all, at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Replicas with more than one copy (any engine).
    pub duplicates: usize,
    /// Replicas with more than one copy on engines of live peers.
    pub live_duplicates: usize,
    /// Declared replicas with no copy.
    pub missing: usize,
}

impl Counts {
    fn plus(self, o: Counts) -> Counts {
        Counts {
            duplicates: self.duplicates + o.duplicates,
            live_duplicates: self.live_duplicates + o.live_duplicates,
            missing: self.missing + o.missing,
        }
    }

    fn minus(self, o: Counts) -> Counts {
        Counts {
            duplicates: self.duplicates - o.duplicates,
            live_duplicates: self.live_duplicates - o.live_duplicates,
            missing: self.missing - o.missing,
        }
    }

    /// Field by field.
    fn max(self, o: Counts) -> Counts {
        Counts {
            duplicates: self.duplicates.max(o.duplicates),
            live_duplicates: self.live_duplicates.max(o.live_duplicates),
            missing: self.missing.max(o.missing),
        }
    }
}

/// Copies over time: the counts now, their peaks, and how each duplicate
/// arose (a few examples kept for the report).
#[derive(Debug, Clone, Default)]
pub struct CopyTracker {
    declared: BTreeMap<String, u32>,
    /// Slots whose peer is down (their engine may still run pods).
    down: BTreeSet<Slot>,
    pub now: Counts,
    pub peak: Counts,
    /// Peaks since the last [`CopyTracker::mark`].
    pub peak_since_mark: Counts,
    /// When the duplicates peaked.
    pub peak_duplicates_at: Micros,
    /// Time of the last change seen.
    clock: Micros,
    /// Replicas duplicated now, since when.
    duplicated_since: BTreeMap<PodId, Micros>,
    /// Longest time one replica stayed duplicated (ended spells only).
    pub longest_duplicate: Micros,
    /// Duplicated replicas integrated over time (replica x µs), up to
    /// `counted_until`.
    pub duplicate_micros: u128,
    counted_until: Micros,
    /// Copies that reached running while another copy of the replica ran.
    pub duplicate_starts: u64,
    /// ... of which every other copy was on the engine of a down peer.
    pub duplicate_starts_over_down: u64,
    /// Copies that reached running (adoptions are not starts).
    pub starts: u64,
    /// A few duplicate starts over a down peer's engine, and a few others.
    pub over_down_examples: Vec<String>,
    pub live_examples: Vec<String>,
}

impl CopyTracker {
    fn declares(&self, pod: &PodId) -> bool {
        self.declared.get(&pod.rc).is_some_and(|&r| pod.index < r)
    }

    /// What `pod` adds to the counts.
    fn of(&self, pod: &PodId, running: &BTreeMap<PodId, BTreeSet<Slot>>) -> Counts {
        let Some(slots) = running.get(pod) else {
            return Counts {
                missing: usize::from(self.declares(pod)),
                ..Counts::default()
            };
        };
        let live = slots.iter().filter(|s| !self.down.contains(s)).count();
        Counts {
            duplicates: usize::from(slots.len() > 1),
            live_duplicates: usize::from(live > 1),
            missing: 0,
        }
    }

    fn recount(&mut self, running: &BTreeMap<PodId, BTreeSet<Slot>>) {
        let mut n = Counts::default();
        for (rc, &replicas) in &self.declared {
            for index in 0..replicas {
                let pod = PodId {
                    rc: rc.clone(),
                    index,
                };
                n = n.plus(self.of(&pod, running));
            }
        }
        for pod in running.keys().filter(|p| !self.declares(p)) {
            n = n.plus(self.of(pod, running));
        }
        self.set(n);
    }

    fn set(&mut self, n: Counts) {
        let span = self.clock.saturating_sub(self.counted_until);
        self.duplicate_micros += self.now.duplicates as u128 * u128::from(span);
        self.counted_until = self.clock;
        if n.duplicates > self.peak.duplicates {
            self.peak_duplicates_at = self.clock;
        }
        self.now = n;
        self.peak = self.peak.max(n);
        self.peak_since_mark = self.peak_since_mark.max(n);
    }

    /// Longest time one replica has run more than once, counting the
    /// spells still under way at `now`.
    pub fn longest_duplicate_until(&self, now: Micros) -> Micros {
        let open = self.duplicated_since.values().map(|&since| now - since);
        open.fold(self.longest_duplicate, Micros::max)
    }

    /// Starts a second set of peaks from the counts of now.
    pub fn mark(&mut self) {
        self.peak_since_mark = self.now;
    }

    /// `slot` started a copy of `pod` while `others` ran it.
    fn started(&mut self, now: Micros, slot: Slot, pod: &PodId, others: Option<&BTreeSet<Slot>>) {
        self.starts += 1;
        let Some(others) = others.filter(|o| o.iter().any(|&s| s != slot)) else {
            return;
        };
        self.duplicate_starts += 1;
        let over_down = others.iter().all(|s| *s == slot || self.down.contains(s));
        if over_down {
            self.duplicate_starts_over_down += 1;
        }
        let room = if over_down {
            &mut self.over_down_examples
        } else {
            &mut self.live_examples
        };
        if room.len() < 3 {
            let down: Vec<Slot> = others
                .iter()
                .copied()
                .filter(|s| self.down.contains(s))
                .collect();
            room.push(format!(
                "t={} ms slot {slot} started {}-{} while slots {others:?} ran it (down: {down:?})",
                now / MS,
                pod.rc,
                pod.index
            ));
        }
    }
}
