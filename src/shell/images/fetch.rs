//! The requester's side: get a missing image from a peer that holds it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use rand::seq::SliceRandom;
use shoal_gossip::quic::ReplyStream;
use shoal_runtime::docker::{ImageArchive, ImageSource, Progress};

use super::transfers::{TransferGuard, summary};
use super::wire::{ARCHIVE, BUSY, FetchRequest, REFUSED, SIZED, size_of_sized};
use super::{PeerImages, holders};
use crate::shell::metrics::catalog::IMAGE_TRANSFER_BYTES;
use crate::shell::metrics::timing::transferred;
use metrics::counter;

/// Longest silence within a transfer before it counts as failed.
const TRANSFER_IDLE: Duration = Duration::from_secs(15);

/// Rounds over the holders while some are busy, and the pause between
/// (growing to 4 × `BUSY_PAUSE`): short, since a holder that frees a slot
/// should not stay idle while requesters sleep; a busy answer is cheap.
const BUSY_ROUNDS: u32 = 40;
const BUSY_PAUSE: Duration = Duration::from_millis(250);

/// How long a requester waits for a first holder to announce the image
/// before it says that no peer holds it: a holder announces an image once
/// an RC uses it, which the requester may learn of first (both learn of the
/// RC at about the same time). Longer than a holder's periodic check
/// ([`super::HOLDINGS_EVERY`]), so a missed change costs one wait, not a
/// failed start and its back-off.
const HOLDER_WAIT: Duration = Duration::from_secs(5);

/// Why one holder did not deliver.
enum Failure {
    Busy,
    Failed(String),
}

impl ImageSource for PeerImages {
    fn fetch(
        &self,
        reference: String,
        progress: Progress,
    ) -> BoxFuture<'static, Result<Option<String>, String>> {
        // The executor holds us by `Arc`; take a strong handle for the task.
        let images = self.me();
        Box::pin(async move {
            match images {
                Some(images) => images.fetch_once(reference, progress).await,
                None => Ok(None),
            }
        })
    }
}

impl PeerImages {
    fn me(&self) -> Option<Arc<PeerImages>> {
        self.this.upgrade()
    }

    /// One fetch of `reference` at a time on this node: a caller that
    /// waited finds it loaded by the first.
    async fn fetch_once(
        self: Arc<Self>,
        reference: String,
        progress: Progress,
    ) -> Result<Option<String>, String> {
        let gate = self
            .in_flight
            .lock()
            .expect("in-flight mutex poisoned")
            .entry(reference.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        let runtime = self.runtime()?;
        if runtime
            .image_ids([reference.clone()])
            .await
            .map_err(|e| e.to_string())?
            .contains_key(&reference)
        {
            return Ok(Some("this node (loaded meanwhile)".into()));
        }
        self.fetch_from_holders(&reference, &progress).await
    }

    async fn fetch_from_holders(
        &self,
        reference: &str,
        progress: &Progress,
    ) -> Result<Option<String>, String> {
        // Subscribed before the first read, so no announcement is missed.
        let mut changes = self.handle.snapshot_changes();
        let mut errors: Vec<String> = Vec::new();
        let mut waited_for_holders = false;
        for round in 0..BUSY_ROUNDS {
            let snapshot = self.handle.snapshot().await.map_err(|e| e.to_string())?;
            let mut holders = holders(&snapshot, reference);
            if holders.is_empty()
                && errors.is_empty()
                && !waited_for_holders
                && self.worth_waiting(reference)
            {
                waited_for_holders = true;
                progress(format!("ImageWaiting for a peer to announce {reference}"));
                holders = self
                    .announced(reference, &mut changes, HOLDER_WAIT, &[])
                    .await?;
                tracing::debug!(%reference, holders = holders.len(), "waited for holders");
                if holders.is_empty() {
                    self.waited_in_vain
                        .lock()
                        .expect("waited-in-vain mutex poisoned")
                        .insert(reference.to_owned(), std::time::Instant::now());
                }
            }
            if holders.is_empty() {
                return if errors.is_empty() {
                    Ok(None)
                } else {
                    Err(errors.join("; "))
                };
            }
            let known = names(&holders);
            // At random, so requesters spread over every holder.
            holders.shuffle(&mut rand::rng());
            let mut busy = false;
            for (name, addr, id) in holders {
                progress(format!("ImageTransferring from {name}"));
                let started = std::time::Instant::now();
                match self
                    .fetch_from(addr, reference, &id, &name, progress.clone())
                    .await
                {
                    Ok(()) => {
                        tracing::info!(
                            %reference,
                            holder = %name,
                            seconds = started.elapsed().as_secs_f64(),
                            "image transferred and loaded"
                        );
                        self.loaded.notify_one();
                        transferred("received", "ok");
                        return Ok(Some(name));
                    }
                    Err(Failure::Busy) => {
                        busy = true;
                        transferred("received", "busy");
                    }
                    Err(Failure::Failed(why)) => {
                        transferred("received", "failed");
                        tracing::warn!(%reference, holder = %name, error = %why, "image fetch failed");
                        // A step of its own, so the pod's events keep it.
                        progress(format!("ImageTransferFailed from {name}: {why}"));
                        errors.push(format!("{name}: {why}"));
                    }
                }
            }
            if !busy {
                break;
            }
            // A node that has just loaded the image is a free holder: ask
            // it at once rather than after the pause.
            self.announced(
                reference,
                &mut changes,
                BUSY_PAUSE * (round + 1).min(4),
                &known,
            )
            .await?;
        }
        if errors.is_empty() {
            errors.push("every holder stayed busy".into());
        }
        Err(errors.join("; "))
    }

    /// Whether to wait for a first holder of `reference`: not when a wait
    /// for it ended with none within [`HOLDER_WAIT`] (an image nobody has
    /// would hold every queued start that long, one after another).
    fn worth_waiting(&self, reference: &str) -> bool {
        let now = std::time::Instant::now();
        let mut vain = self
            .waited_in_vain
            .lock()
            .expect("waited-in-vain mutex poisoned");
        vain.retain(|_, at| !wait_is_recent(*at, now));
        !vain.contains_key(reference)
    }

    /// Waits at most `within` for a holder of `reference` other than the
    /// `known` ones to be announced, following the state's changes; returns
    /// the holders announced then (none, or only known ones, on time-out).
    async fn announced(
        &self,
        reference: &str,
        changes: &mut tokio::sync::watch::Receiver<u64>,
        within: Duration,
        known: &[String],
    ) -> Result<Vec<(String, std::net::SocketAddr, String)>, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let snapshot = self.handle.snapshot().await.map_err(|e| e.to_string())?;
            let holders = holders(&snapshot, reference);
            if has_new(known, &names(&holders)) {
                return Ok(holders);
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(holders);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Ok(holders),
            }
        }
    }

    /// Streams `reference` from the holder `name` at `addr` into the
    /// engine, listed in this peer's transfers meanwhile.
    async fn fetch_from(
        &self,
        addr: std::net::SocketAddr,
        reference: &str,
        id: &str,
        name: &str,
        progress: Progress,
    ) -> Result<(), Failure> {
        let request = FetchRequest {
            reference: reference.to_owned(),
            id: id.to_owned(),
        };
        let failed = |e: &dyn std::fmt::Display| Failure::Failed(e.to_string());
        tracing::debug!(%reference, holder = %name, "asking a holder");
        let mut reply = self
            .transport
            .request_stream(addr, request.encode(), TRANSFER_IDLE)
            .await
            .map_err(|e| failed(&e))?;
        let first = reply
            .next_chunk()
            .await
            .map_err(|e| failed(&e))?
            .ok_or_else(|| Failure::Failed("empty answer".into()))?;
        tracing::debug!(%reference, holder = %name, status = first.first().copied(), "the holder answered");
        let (head, total) = match first.first() {
            Some(&ARCHIVE) => (first.slice(1..), None),
            Some(&SIZED) => {
                let (head, size) = sized_answer(first, &mut reply).await?;
                (head, Some(size))
            }
            Some(&BUSY) => return Err(Failure::Busy),
            Some(&REFUSED) => {
                let why = String::from_utf8_lossy(&first[1..]).into_owned();
                return Err(Failure::Failed(format!("refused: {why}")));
            }
            _ => {
                return Err(Failure::Failed(
                    "an answer this version does not know".into(),
                ));
            }
        };
        // Listed until the load is checked, whichever way it ends.
        let transfer = Arc::new(self.transfers.start(reference, name, total));
        let report = transfer_progress(progress, name.to_owned(), transfer.clone());
        let archive = archive(head, reply, report);
        let runtime = self.runtime().map_err(|e| failed(&e))?;
        let loaded = runtime
            .load_image(archive, reference, id)
            .await
            .map_err(|e| failed(&e));
        drop(transfer);
        loaded
    }
}

/// A wait for holders that ended with none at `at` still stands at `now`.
fn wait_is_recent(at: std::time::Instant, now: std::time::Instant) -> bool {
    now.saturating_duration_since(at) < HOLDER_WAIT
}

fn names(holders: &[(String, std::net::SocketAddr, String)]) -> Vec<String> {
    holders.iter().map(|(name, _, _)| name.clone()).collect()
}

/// Whether `now` names a holder that `known` does not.
fn has_new(known: &[String], now: &[String]) -> bool {
    now.iter().any(|name| !known.contains(name))
}

/// The rest of a [`SIZED`] answer's head, which QUIC may split: the size,
/// and the archive bytes that came with it.
async fn sized_answer(first: Bytes, reply: &mut ReplyStream) -> Result<(Bytes, u64), Failure> {
    let mut head = BytesMut::from(&first[..]);
    while head.len() < 9 {
        match reply.next_chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            Ok(None) => return Err(Failure::Failed("the answer ended in its head".into())),
            Err(e) => return Err(Failure::Failed(e.to_string())),
        }
    }
    let size = size_of_sized(&head).expect("nine bytes of a sized head");
    Ok((head.split_off(9).freeze(), size))
}

/// What the engine's load is handed at a time. QUIC delivers a packet's
/// worth per read (1-9 KB); passed on one by one, each would be a write to
/// the engine's socket and a read in the engine: 10⁵ of each for 200 MB.
const LOAD_PIECE: usize = 256 * 1024;

/// The rest of an answer as the byte stream the engine loads, in pieces of
/// about [`LOAD_PIECE`]; a transfer error ends it with an error, which
/// aborts the load.
fn archive(
    head: Bytes,
    reply: ReplyStream,
    report: impl Fn(usize) + Send + 'static,
) -> ImageArchive {
    let mut received = 0usize;
    let stream = futures_util::stream::unfold(Some((head, reply)), |state| async move {
        let (head, mut reply) = state?;
        let mut piece = BytesMut::with_capacity(LOAD_PIECE + 64 * 1024);
        piece.extend_from_slice(&head);
        loop {
            match reply.next_chunk().await {
                Ok(Some(chunk)) => {
                    piece.extend_from_slice(&chunk);
                    if piece.len() >= LOAD_PIECE {
                        return Some((Ok(piece.freeze()), Some((Bytes::new(), reply))));
                    }
                }
                Ok(None) if piece.is_empty() => {
                    tracing::debug!("the archive's last byte arrived");
                    return None;
                }
                Ok(None) => {
                    tracing::debug!("the archive's last byte arrived");
                    return Some((Ok(piece.freeze()), None));
                }
                // The error ends the stream: nothing is read after it.
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    })
    .inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            received += chunk.len();
            counter!(IMAGE_TRANSFER_BYTES, "direction" => "received").increment(chunk.len() as u64);
            report(received);
        }
    });
    Box::pin(stream)
}

/// Reports the bytes received from `holder`: in this peer's transfers,
/// and as the waiting pods' progress.
fn transfer_progress(
    progress: Progress,
    holder: String,
    transfer: Arc<TransferGuard>,
) -> impl Fn(usize) + Send + 'static {
    move |received| {
        if let Some(row) = transfer.received(received as u64) {
            progress(format!(
                "ImageTransferring from {holder} ({})",
                summary(&row)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_vain_wait_stands_for_the_wait_s_length() {
        let at = std::time::Instant::now();
        assert!(wait_is_recent(at, at));
        assert!(wait_is_recent(
            at,
            at + HOLDER_WAIT - Duration::from_millis(1)
        ));
        assert!(!wait_is_recent(at, at + HOLDER_WAIT));
    }

    #[test]
    fn only_a_holder_not_asked_yet_ends_a_wait() {
        // Waiting for a first holder: any announcement ends it.
        assert!(!has_new(&[], &[]));
        assert!(has_new(&[], &names(&["node0"])));
        // Waiting out busy holders: the same ones again do not...
        let known = names(&["node0", "node3"]);
        assert!(!has_new(&known, &names(&["node3", "node0"])));
        assert!(!has_new(&known, &names(&["node0"])));
        // ...a node that has just loaded the image does.
        assert!(has_new(&known, &names(&["node0", "node5"])));
    }
}
