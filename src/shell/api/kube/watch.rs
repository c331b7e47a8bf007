//! `?watch=true`: a chunked stream of `{"type": ADDED|MODIFIED|DELETED,
//! "object": ...}` lines, one per change (`kubectl get -w`, `delete`'s and
//! `wait`'s waits).
//!
//! There is no event log to replay: the stream compares successive
//! snapshots of this peer and reports what differs (an object's
//! resourceVersion aside). A watch that names a resourceVersion (kubectl's
//! after a list) starts from the current state without replaying it; one
//! without (or `0`) first gets every object as ADDED, as from Kubernetes.
//! Changes that come and go between two looks are not seen; the state each
//! look finds is.
//!
//! Events are not in the snapshot: a watch of events reads the peer's one
//! event fan-in ([`crate::shell::events::hub`]), which gathers them from
//! every live peer once for all watchers, and looks when it says something
//! changed.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::super::ApiState;
use super::kinds::{Item, Kind, Local};
use super::reads::{ListQuery, table_of};
use super::selectors::Selector;
use super::status::KubeError;

/// How often a watch looks at this peer's state.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// Longest watch without `timeoutSeconds`; kubectl reconnects after it.
pub const MAX_WATCH: Duration = Duration::from_secs(30 * 60);
/// Events buffered for a slow client before the watch waits for it.
const BUFFERED: usize = 64;
/// Watches one peer serves at once; more are refused (kubectl retries).
pub const MAX_WATCHES: usize = 256;

static WATCHES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_WATCHES);

/// One of the peer's [`MAX_WATCHES`] watch slots (kube watches and
/// `/api/v1/events?watch=1` alike), held for as long as the watch runs.
pub fn watch_slot() -> Result<tokio::sync::SemaphorePermit<'static>, tokio::sync::TryAcquireError> {
    WATCHES.try_acquire()
}

pub(super) async fn watch(
    state: ApiState,
    kind: Kind,
    selector: Selector,
    params: ListQuery,
    as_table: bool,
) -> Result<Response, KubeError> {
    let Ok(slot) = watch_slot() else {
        return Err(KubeError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this peer already serves {MAX_WATCHES} watches; retry later or watch through another peer"
            ),
        ));
    };
    // Events: the fan-in's list, read again whenever it says it changed.
    let mut events = Vec::new();
    let mut changes = None;
    if kind.gathers_events() {
        let (known, rx) = state.handle.watch_events().await;
        events = known;
        changes = Some(rx);
    }
    let first = state.handle.snapshot().await?;
    let mut known = look(kind, &selector, &first, &state.service_dns, &events);
    let replay = matches!(params.resource_version.as_deref(), None | Some("" | "0"));
    let limit = params
        .timeout_seconds
        .map_or(MAX_WATCH, Duration::from_secs)
        .min(MAX_WATCH);
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(BUFFERED);
    tokio::spawn(async move {
        let _slot = slot;
        let deadline = tokio::time::Instant::now() + limit;
        if replay {
            for (item, _) in known.values() {
                if send(&tx, "ADDED", kind, item, as_table).await.is_err() {
                    return;
                }
            }
        }
        let mut generation = first.generation;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                () = tx.closed() => return,
                batch = next_batch(&mut changes) => match batch {
                    // Fell behind or the peer stops: the client lists again.
                    Err(_) => return,
                    Ok(Some(_)) => events = state.handle.watched_events(),
                    Ok(None) => {}
                },
            }
            let Ok(snapshot) = state.handle.snapshot().await else {
                return;
            };
            // Events change without the state changing.
            if snapshot.generation == generation && !kind.gathers_events() {
                continue;
            }
            generation = snapshot.generation;
            let now = tokio::task::spawn_blocking({
                let selector = selector.clone();
                let dns = state.service_dns.clone();
                let events = events.clone();
                move || look(kind, &selector, &snapshot, &dns, &events)
            })
            .await;
            let Ok(now) = now else { return };
            for (name, (item, print)) in &now {
                let change = match known.get(name) {
                    None => "ADDED",
                    Some((_, before)) if before != print => "MODIFIED",
                    Some(_) => continue,
                };
                if send(&tx, change, kind, item, as_table).await.is_err() {
                    return;
                }
            }
            for (name, (item, _)) in &known {
                if !now.contains_key(name)
                    && send(&tx, "DELETED", kind, item, as_table).await.is_err()
                {
                    return;
                }
            }
            known = now;
        }
    });
    let stream = tokio_stream_of(rx);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// The fan-in's next batch for a watch of events; for any other kind,
/// `None` after [`LOOK_EVERY`] (time to look at the state again).
async fn next_batch(
    changes: &mut Option<tokio::sync::broadcast::Receiver<crate::shell::events::hub::Batch>>,
) -> Result<Option<crate::shell::events::hub::Batch>, tokio::sync::broadcast::error::RecvError> {
    match changes {
        Some(rx) => rx.recv().await.map(Some),
        None => {
            tokio::time::sleep(LOOK_EVERY).await;
            Ok(None)
        }
    }
}

/// The selected objects by name, each with what a change is judged by:
/// its JSON without resourceVersion (pods carry the snapshot's).
fn look(
    kind: Kind,
    selector: &Selector,
    snapshot: &crate::shell::handle::Snapshot,
    service_dns: &Result<std::net::IpAddr, String>,
    events: &[crate::shell::events::EventJson],
) -> BTreeMap<String, (Item, String)> {
    kind.list(snapshot, Local { service_dns }, events, false)
        .into_iter()
        .filter(|i| selector.matches(&i.meta, &i.fields))
        .map(|item| {
            let mut print = item.json.clone();
            if let Some(meta) = print.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            (item.name().to_owned(), (item, print.to_string()))
        })
        .collect()
}

async fn send(
    tx: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    change: &str,
    kind: Kind,
    item: &Item,
    as_table: bool,
) -> Result<(), ()> {
    let version = item.meta.resource_version.clone().unwrap_or_default();
    let object = if as_table {
        table_of(kind, vec![item.clone()], &version)
    } else {
        item.json.clone()
    };
    let mut line =
        serde_json::to_vec(&json!({ "type": change, "object": object })).map_err(|_| ())?;
    line.push(b'\n');
    tx.send(Ok(line)).await.map_err(|_| ())
}

fn tokio_stream_of(
    mut rx: mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
