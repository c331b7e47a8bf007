//! The holder's side: answer a fetch with the engine's export, or say why not.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use shoal_crdt_state::wire::WireError;
use shoal_gossip::quic::Responder;

use super::wire::{ARCHIVE, BUSY, FetchRequest, REFUSED, refusal, sized_head};
use super::{MAX_UPLOADS, PeerImages, images_in_use};
use crate::shell::metrics::catalog::IMAGE_TRANSFER_BYTES;
use crate::shell::metrics::timing::transferred;
use metrics::counter;

impl PeerImages {
    /// Answers one fetch request, on a task of its own.
    pub fn serve(self: &Arc<Self>, request: Result<FetchRequest, WireError>, responder: Responder) {
        let images = self.clone();
        tokio::spawn(async move { images.answer(request, responder).await });
    }

    async fn answer(&self, request: Result<FetchRequest, WireError>, mut responder: Responder) {
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                let why = format!("malformed image fetch request: {e}");
                let _ = responder.respond(refusal(REFUSED, &why)).await;
                return;
            }
        };
        let reference = &request.reference;
        tracing::debug!(%reference, "image fetch asked");
        let permit = match self.check(&request).await {
            Ok(permit) => permit,
            Err((status, why)) => {
                tracing::debug!(%reference, %why, "image fetch refused");
                transferred("sent", if status == BUSY { "busy" } else { "refused" });
                let _ = responder.respond(refusal(status, &why)).await;
                return;
            }
        };
        let archive = match self
            .runtime()
            .and_then(|r| r.export_image(reference).map_err(|e| e.to_string()))
        {
            Ok(archive) => archive,
            Err(why) => {
                let _ = responder.respond(refusal(REFUSED, &why)).await;
                return;
            }
        };
        // The size lets the requester show a percentage; without it the
        // archive still goes.
        let head = match self.runtime() {
            Ok(runtime) => match runtime.image_size(reference).await {
                Ok(Some(size)) => sized_head(size),
                _ => Bytes::from_static(&[ARCHIVE]),
            },
            Err(_) => Bytes::from_static(&[ARCHIVE]),
        };
        tracing::debug!(%reference, "image fetch admitted; exporting");
        let sent = async {
            responder.send_chunk(head).await?;
            let mut archive = archive;
            let mut total = 0usize;
            while let Some(chunk) = archive.next().await {
                // On an export error the responder is dropped unfinished:
                // the requester sees a reset, not a short archive.
                let chunk = chunk.map_err(|e| e.to_string())?;
                if total == 0 {
                    tracing::debug!(%reference, bytes = chunk.len(), "the export's first bytes");
                }
                total += chunk.len();
                counter!(IMAGE_TRANSFER_BYTES, "direction" => "sent").increment(chunk.len() as u64);
                #[cfg(feature = "test-hooks")]
                let chunk = super::tamper::on_the_wire(chunk);
                responder.send_chunk(chunk).await?;
            }
            responder.finish()?;
            Ok::<usize, Box<dyn std::error::Error + Send + Sync>>(total)
        };
        match sent.await {
            Ok(total) => {
                tracing::info!(%reference, bytes = total, "image sent to a peer");
                transferred("sent", "ok");
            }
            Err(e) => {
                tracing::warn!(%reference, error = %e, "image upload failed");
                transferred("sent", "failed");
            }
        }
        drop(permit);
    }

    /// Whether to serve `request`: an image the cluster's RCs use, held
    /// here under the ID asked for, with an upload slot free.
    async fn check(
        &self,
        request: &FetchRequest,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, (u8, String)> {
        let reference = &request.reference;
        let snapshot = self
            .handle
            .snapshot()
            .await
            .map_err(|e| (REFUSED, e.to_string()))?;
        if !images_in_use(&snapshot).contains(reference) {
            return Err((
                REFUSED,
                format!(
                    "{reference} is not an image of any RC of this cluster; peers serve only those"
                ),
            ));
        }
        let runtime = self.runtime().map_err(|e| (REFUSED, e))?;
        let held = runtime
            .image_ids([reference.clone()])
            .await
            .map_err(|e| (REFUSED, e.to_string()))?;
        match held.get(reference) {
            Some(id) if *id == request.id => {}
            Some(id) => {
                return Err((
                    REFUSED,
                    format!("this node holds {reference} as {id}, not {}", request.id),
                ));
            }
            None => return Err((REFUSED, format!("this node does not hold {reference}"))),
        }
        self.uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| (BUSY, format!("busy: {MAX_UPLOADS} uploads in flight")))
    }
}
