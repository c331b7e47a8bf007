//! Watching the engine: its event stream, filtered to our labels, turns
//! container deaths and removals into observations. Whenever the stream is
//! (re)opened, every tracked pod is checked against a fresh listing, so a
//! death during an outage or a reconnect is never missed.

use std::sync::Arc;
use std::time::Duration;

use bollard::models::EventMessageTypeEnum;
use bollard::query_parameters::EventsOptions;
use futures_util::StreamExt;

use super::naming::{PodKey, placement};
use super::pod_ops::Phase;
use super::{Inner, is_not_found};
use crate::vocabulary::PodEvent;

/// Back-off between attempts to reopen the event stream.
const RECONNECT_MIN: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Delay between opening the stream and the catch-up listing, so the stream
/// is subscribed before the listing is taken.
const RELIST_AFTER: Duration = Duration::from_millis(100);

pub(crate) async fn events_loop(inner: Arc<Inner>) {
    let mut wait = RECONNECT_MIN;
    loop {
        let mut filters = inner.owner.filters();
        filters.insert("type".into(), vec!["container".into()]);
        let options = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let Ok(docker) = inner.docker() else {
            inner.check_health().await;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECONNECT_MAX);
            continue;
        };
        let mut stream = docker.events(Some(options));
        let relist = {
            let inner = inner.clone();
            tokio::spawn(async move {
                tokio::time::sleep(RELIST_AFTER).await;
                inner.relist().await
            })
        };
        let mut received = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    received = true;
                    if event.typ != Some(EventMessageTypeEnum::CONTAINER) {
                        continue;
                    }
                    let (Some(action), Some(actor)) = (event.action, event.actor) else {
                        continue;
                    };
                    let attributes = actor.attributes.unwrap_or_default();
                    let (Some(id), Some(p)) = (actor.id, placement(&attributes)) else {
                        continue;
                    };
                    inner.handle_event(&action, &id, &p.key).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "event stream ended");
                    break;
                }
            }
        }
        relist.abort();
        if received {
            wait = RECONNECT_MIN;
        }
        inner.check_health().await;
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

impl Inner {
    async fn handle_event(&self, action: &str, id: &str, key: &PodKey) {
        match action {
            "die" => self.on_death(key, Some(id)).await,
            "destroy" => {
                let phase = self.phase_of(key);
                if matches!(phase, Some(Phase::Up | Phase::Down)) {
                    self.forget(key);
                    self.observe(key, PodEvent::Removed).await;
                }
            }
            _ => {}
        }
    }

    fn phase_of(&self, key: &PodKey) -> Option<Phase> {
        let pods = self.pods.lock().expect("pods mutex poisoned");
        pods.get(key).map(|t| t.phase)
    }

    /// A container of the pod died (or may have): report `Exited` once, with
    /// the exit code and OOM flag read from the engine, unless it was our doing.
    async fn on_death(&self, key: &PodKey, id: Option<&str>) {
        {
            let mut pods = self.pods.lock().expect("pods mutex poisoned");
            match pods.get_mut(key) {
                Some(t) if matches!(t.phase, Phase::Starting | Phase::Stopping) => {
                    t.died_while_busy = true;
                    return;
                }
                Some(t) if t.phase == Phase::Down => return,
                // Up, or a pod not adopted yet: worth a look.
                _ => {}
            }
        }
        let ids: Vec<String> = match id {
            Some(id) => vec![id.to_string()],
            None => match self.list(self.owner.key_filters(key)).await {
                Ok(list) => list.into_iter().filter_map(|c| c.id).collect(),
                Err(_) => return,
            },
        };
        let Ok(docker) = self.docker() else {
            return;
        };
        let mut exit = None;
        for id in &ids {
            match docker.inspect_container(id, None).await {
                Ok(inspect) => {
                    let state = inspect.state.unwrap_or_default();
                    if state.running != Some(true) {
                        exit = Some((
                            state.exit_code.unwrap_or(-1),
                            state.oom_killed == Some(true),
                        ));
                        break;
                    }
                }
                Err(e) if is_not_found(&e) => {
                    exit = Some((-1, false));
                    break;
                }
                Err(_) => return,
            }
        }
        let Some((code, oom_killed)) = exit else {
            return;
        };
        // Only the first death of an up pod is news.
        {
            let mut pods = self.pods.lock().expect("pods mutex poisoned");
            if let Some(t) = pods.get_mut(key) {
                if t.phase != Phase::Up {
                    return;
                }
                t.phase = Phase::Down;
                if let Some(probe) = t.probe.take() {
                    probe.abort();
                }
            }
            self.publish_direct(&pods);
        }
        self.observe(key, PodEvent::Exited { code, oom_killed })
            .await;
    }

    /// After an action that raced with a death: look again.
    pub(crate) async fn recheck(&self, key: &PodKey) {
        self.on_death(key, None).await;
    }

    /// Compares every pod we believe up with the engine's listing.
    async fn relist(&self) {
        let Ok(containers) = self.list(self.owner.filters()).await else {
            return;
        };
        let mut present: std::collections::BTreeSet<PodKey> = std::collections::BTreeSet::new();
        for c in &containers {
            if let Some(p) = c.labels.as_ref().and_then(placement) {
                present.insert(p.key);
            }
        }
        let up: Vec<PodKey> = {
            let pods = self.pods.lock().expect("pods mutex poisoned");
            pods.iter()
                .filter(|(_, t)| matches!(t.phase, Phase::Up | Phase::Down))
                .map(|(k, _)| k.clone())
                .collect()
        };
        for key in up {
            if present.contains(&key) {
                self.on_death(&key, None).await;
            } else if matches!(self.phase_of(&key), Some(Phase::Up | Phase::Down)) {
                self.forget(&key);
                self.observe(&key, PodEvent::Removed).await;
            }
        }
    }
}
