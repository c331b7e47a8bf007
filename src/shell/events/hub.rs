//! One fan-in of the cluster's events per peer, shared by every watcher
//! (`GET /api/v1/events?watch=1`, `shoal get events -w`, kubectl's
//! `get events -w`).
//!
//! A watch that gathered for itself would cost each live peer one request
//! per watcher per look: N watchers, N fan-outs. Instead the first watcher
//! starts one task ([`EventHub::subscribe`]) that gathers every
//! [`GATHER_EVERY`], compares the answer with the previous one, and sends
//! what changed (a new event `ADDED`, a repeat `MODIFIED`) once, on a
//! bounded broadcast that every watcher reads. The task ends at the first
//! round that finds no watcher left; the next watcher starts a new one.
//!
//! Calling order: [`EventHub::subscribe`] gives the events known so far
//! and a receiver of what changes after them (taken under one lock, so no
//! change falls between the two nor is told twice; the lock is never held
//! across a gather). A receiver that falls [`BACKLOG`]
//! batches behind gets `Lagged`: its watch ends and the client lists again.
//!
//! Events that leave a store (evicted, or their peer went down) are not
//! reported as deleted: an event is a record of the past, not an object
//! that stops existing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::store::EventJson;
use crate::shell::handle::PeerHandle;
use crate::shell::metrics::catalog::{EVENT_FANINS, EVENT_GATHERS, EVENT_WATCHERS};

/// How often the fan-in gathers the cluster's events while watched.
pub const GATHER_EVERY: Duration = Duration::from_secs(1);

/// Batches a watcher may fall behind before its watch is ended.
pub const BACKLOG: usize = 64;

/// What one gather changed, in the order of the gathered list (oldest
/// last-seen first). Shared by every watcher, never copied per watcher.
pub type Batch = Arc<Vec<Change>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `ADDED` or `MODIFIED`, as in a Kubernetes watch.
    pub kind: &'static str,
    pub event: EventJson,
}

/// What tells two rows of the gathered list apart, and what a change of
/// the same row is judged by.
pub type Key = (String, String, String, String, String);

pub fn key(e: &EventJson) -> Key {
    (
        e.object(),
        e.kind.clone(),
        e.reason.clone(),
        e.message.clone(),
        e.source.host.clone(),
    )
}

/// What changed from `before` to `now` (new rows `ADDED`, rows whose count
/// or last-seen time moved `MODIFIED`), in `now`'s order.
pub fn changes(before: &BTreeMap<Key, EventJson>, now: &[EventJson]) -> Vec<Change> {
    now.iter()
        .filter_map(|e| {
            let kind = match before.get(&key(e)) {
                None => "ADDED",
                Some(old) if (old.count, old.last_ms) != (e.count, e.last_ms) => "MODIFIED",
                Some(_) => return None,
            };
            Some(Change {
                kind,
                event: e.clone(),
            })
        })
        .collect()
}

/// The peer's one fan-in; cheap to share (it lives in the [`PeerHandle`]).
///
/// Its state sits behind a plain mutex held only for quick, await-free
/// steps: the first cluster-wide gather (up to the fan-out's 3 s bound)
/// runs in the fan-in task, never under the lock, so other watchers, the
/// fan-in's rounds and `latest` never queue behind network I/O.
#[derive(Debug, Default)]
pub struct EventHub {
    state: std::sync::Mutex<State>,
    /// Fan-in tasks started since this peer started.
    started: AtomicU64,
}

#[derive(Debug, Default)]
enum State {
    /// No fan-in runs.
    #[default]
    Idle,
    /// A fan-in makes its first gather; its end (the sender dropped)
    /// wakes the watchers that wait for it.
    Starting(watch::Receiver<()>),
    Running(Running),
}

#[derive(Debug)]
struct Running {
    sender: broadcast::Sender<Batch>,
    /// The last gathered list, by key: what a new watcher starts from.
    latest: BTreeMap<Key, EventJson>,
}

impl Running {
    /// The list so far and a receiver of every later batch: taken under
    /// the state's lock, which every batch is sent under too.
    fn join(&self) -> (Vec<EventJson>, broadcast::Receiver<Batch>) {
        let mut known: Vec<EventJson> = self.latest.values().cloned().collect();
        known.sort_by_key(|e| e.last_ms);
        let receiver = self.sender.subscribe();
        metrics::gauge!(EVENT_WATCHERS).set(self.sender.receiver_count() as f64);
        (known, receiver)
    }
}

impl EventHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every step under the lock leaves a whole state: a panic in one
        // (none expected) does not make it unreadable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The events gathered so far and a receiver of every later batch.
    /// The first watcher starts the fan-in, whose first gather every
    /// watcher waits for (without a lock), so every watcher starts from a
    /// full list.
    pub async fn subscribe(
        self: &Arc<Self>,
        handle: &PeerHandle,
    ) -> (Vec<EventJson>, broadcast::Receiver<Batch>) {
        loop {
            let mut started = {
                let mut state = self.lock();
                match &*state {
                    State::Running(r) => return r.join(),
                    // Closed with no Running state: its task died (a panic)
                    // in its first gather; start another.
                    State::Starting(started) if started.has_changed().is_ok() => started.clone(),
                    State::Starting(_) | State::Idle => {
                        let (tell, started) = watch::channel(());
                        *state = State::Starting(started.clone());
                        self.started.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(EVENT_FANINS).increment(1);
                        tokio::spawn(fan_in_loop(Arc::clone(self), handle.clone(), tell));
                        started
                    }
                }
            };
            // Nothing is ever sent: this returns when the first gather
            // is in (the sender dropped); then join what runs.
            let _ = started.changed().await;
        }
    }

    /// The fan-in's last gathered list, oldest last-seen first (empty when
    /// no fan-in runs). For a watcher that keeps the whole list rather than
    /// the changes: the kube watch, whose DELETED needs what left it.
    pub fn latest(&self) -> Vec<EventJson> {
        let mut list: Vec<EventJson> = match &*self.lock() {
            State::Running(r) => r.latest.values().cloned().collect(),
            State::Idle | State::Starting(_) => Vec::new(),
        };
        list.sort_by_key(|e| e.last_ms);
        list
    }

    /// Fan-in tasks started so far on this peer.
    pub fn fan_ins_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The fan-in's first gathered list: what watchers start from.
    fn start(&self, gathered: Vec<EventJson>) {
        let (sender, _) = broadcast::channel(BACKLOG);
        *self.lock() = State::Running(Running {
            sender,
            latest: gathered.into_iter().map(|e| (key(&e), e)).collect(),
        });
    }

    /// Takes one gathered list in: sends its changes to the watchers.
    /// False when no watcher is left: the fan-in then stops (the lock makes
    /// a concurrent [`subscribe`](Self::subscribe) start a new one).
    fn handle_gathered(&self, now: Vec<EventJson>) -> bool {
        let mut state = self.lock();
        let State::Running(r) = &mut *state else {
            return false;
        };
        let watchers = r.sender.receiver_count();
        metrics::gauge!(EVENT_WATCHERS).set(watchers as f64);
        if watchers == 0 {
            *state = State::Idle;
            return false;
        }
        let batch = changes(&r.latest, &now);
        r.latest = now.into_iter().map(|e| (key(&e), e)).collect();
        if !batch.is_empty() {
            // Fails only without receivers, which the next round sees.
            let _ = r.sender.send(Arc::new(batch));
        }
        true
    }

    fn stop(&self) {
        *self.lock() = State::Idle;
        metrics::gauge!(EVENT_WATCHERS).set(0.0);
    }
}

/// The fan-in task: gathers once for the watchers that wait (`tell` is
/// dropped once they can join), then every [`GATHER_EVERY`] hands the
/// list to the hub, until unwatched.
async fn fan_in_loop(hub: Arc<EventHub>, handle: PeerHandle, tell: watch::Sender<()>) {
    // A peer shutting down answers nothing: start empty, stop next round.
    hub.start(gather(&handle).await.unwrap_or_default());
    drop(tell);
    loop {
        tokio::time::sleep(GATHER_EVERY).await;
        let Some(gathered) = gather(&handle).await else {
            tracing::debug!("event fan-in stops: the peer is shutting down");
            hub.stop();
            return;
        };
        if !hub.handle_gathered(gathered) {
            return;
        }
    }
}

/// The cluster's events now, or `None` when the peer is shutting down.
async fn gather(handle: &PeerHandle) -> Option<Vec<EventJson>> {
    let gathered = handle.events(true).await.ok()?;
    metrics::counter!(EVENT_GATHERS).increment(1);
    Some(gathered.events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::events::store::{ObjectRef, Source};

    fn event(name: &str, count: u32, last_ms: u64) -> EventJson {
        EventJson {
            kind: "Normal".into(),
            reason: "Scaled".into(),
            message: format!("scaled {name}"),
            involved_object: ObjectRef {
                kind: "ReplicationController".into(),
                name: name.into(),
            },
            count,
            first_timestamp: String::new(),
            last_timestamp: String::new(),
            first_ms: 1,
            last_ms,
            source: Source {
                host: "node0".into(),
            },
            cluster_wide: false,
        }
    }

    fn join(hub: &EventHub) -> (Vec<EventJson>, broadcast::Receiver<Batch>) {
        match &*hub.lock() {
            State::Running(r) => r.join(),
            other => panic!("no fan-in runs: {other:?}"),
        }
    }

    #[test]
    fn a_watcher_starts_from_the_list_gets_its_changes_and_the_last_one_gone_stops_it() {
        let hub = EventHub::default();
        hub.start(vec![event("a", 1, 10)]);
        let (known, mut rx) = join(&hub);
        assert_eq!(known, [event("a", 1, 10)]);
        assert!(hub.handle_gathered(vec![event("a", 2, 20), event("b", 1, 15)]));
        let batch = rx.try_recv().expect("the round's changes");
        let got: Vec<(&str, &str)> = batch
            .iter()
            .map(|c| (c.kind, c.event.involved_object.name.as_str()))
            .collect();
        assert_eq!(got, [("MODIFIED", "a"), ("ADDED", "b")]);
        assert_eq!(hub.latest(), [event("b", 1, 15), event("a", 2, 20)]);
        drop(rx);
        assert!(!hub.handle_gathered(vec![event("a", 2, 20)]), "unwatched");
        assert!(matches!(*hub.lock(), State::Idle));
        assert!(hub.latest().is_empty());
    }

    #[test]
    fn a_new_row_is_added_a_repeat_modified_an_unchanged_row_silent() {
        let before: BTreeMap<_, _> = [event("a", 1, 10), event("b", 1, 10)]
            .into_iter()
            .map(|e| (key(&e), e))
            .collect();
        let now = [event("a", 1, 10), event("b", 2, 20), event("c", 1, 30)];
        let got: Vec<(&str, String)> = changes(&before, &now)
            .into_iter()
            .map(|c| (c.kind, c.event.involved_object.name))
            .collect();
        assert_eq!(got, [("MODIFIED", "b".into()), ("ADDED", "c".into())]);
    }
}
