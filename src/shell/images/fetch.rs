//! The requester's side: get a missing image from a peer that holds it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use rand::seq::SliceRandom;
use shoal_gossip::quic::ReplyStream;
use shoal_runtime::docker::{ImageArchive, ImageSource, Progress};

use super::wire::{ARCHIVE, BUSY, FetchRequest, REFUSED};
use super::{PeerImages, holders};
use crate::shell::metrics::catalog::IMAGE_TRANSFER_BYTES;
use crate::shell::metrics::timing::transferred;
use metrics::counter;

/// Longest silence within a transfer before it counts as failed.
const TRANSFER_IDLE: Duration = Duration::from_secs(15);

/// Rounds over the holders while some are busy, and the pause between.
const BUSY_ROUNDS: u32 = 20;
const BUSY_PAUSE: Duration = Duration::from_millis(500);

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
        let mut errors: Vec<String> = Vec::new();
        for round in 0..BUSY_ROUNDS {
            let snapshot = self.handle.snapshot().await.map_err(|e| e.to_string())?;
            let mut holders = holders(&snapshot, reference);
            if holders.is_empty() {
                return if errors.is_empty() {
                    Ok(None)
                } else {
                    Err(errors.join("; "))
                };
            }
            // At random, so requesters spread over every holder.
            holders.shuffle(&mut rand::rng());
            let mut busy = false;
            for (name, addr, id) in holders {
                progress(format!("ImageTransferring from {name}"));
                let report = transfer_progress(progress.clone(), name.clone());
                let started = std::time::Instant::now();
                match self.fetch_from(addr, reference, &id, report).await {
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
                        errors.push(format!("{name}: {why}"));
                    }
                }
            }
            if !busy {
                break;
            }
            tokio::time::sleep(BUSY_PAUSE * (round + 1).min(4)).await;
        }
        if errors.is_empty() {
            errors.push("every holder stayed busy".into());
        }
        Err(errors.join("; "))
    }

    /// Streams `reference` from the holder at `addr` into the engine.
    async fn fetch_from(
        &self,
        addr: std::net::SocketAddr,
        reference: &str,
        id: &str,
        report: impl Fn(usize) + Send + 'static,
    ) -> Result<(), Failure> {
        let request = FetchRequest {
            reference: reference.to_owned(),
            id: id.to_owned(),
        };
        let failed = |e: &dyn std::fmt::Display| Failure::Failed(e.to_string());
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
        match first.first() {
            Some(&ARCHIVE) => {}
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
        }
        let archive = archive(first.slice(1..), reply, report);
        let runtime = self.runtime().map_err(|e| failed(&e))?;
        runtime
            .load_image(archive, reference, id)
            .await
            .map_err(|e| failed(&e))
    }
}

/// The rest of an answer as the byte stream the engine loads; a transfer
/// error ends it with an error, which aborts the load.
fn archive(
    head: Bytes,
    reply: ReplyStream,
    report: impl Fn(usize) + Send + 'static,
) -> ImageArchive {
    let mut received = 0usize;
    let start = (Some(head), Some(reply));
    let stream = futures_util::stream::unfold(start, |(head, reply)| async move {
        let mut reply = reply?;
        if let Some(head) = head.filter(|h| !h.is_empty()) {
            return Some((Ok(head), (None, Some(reply))));
        }
        match reply.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), (None, Some(reply)))),
            Ok(None) => None,
            // The error ends the stream: nothing is read after it.
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, None))),
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

/// Reports the bytes received from `holder` as a pod's progress.
fn transfer_progress(progress: Progress, holder: String) -> impl Fn(usize) + Send + 'static {
    move |received| {
        let mb = received as f64 / 1e6;
        progress(format!("ImageTransferring from {holder} ({mb:.1} MB)"));
    }
}
