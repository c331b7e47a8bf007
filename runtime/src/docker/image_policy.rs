//! Getting a container's image into the engine, as its `imagePullPolicy` says.
//!
//! - `IfNotPresent`: the engine's image; a missing one comes from a peer
//!   that holds it (a registry one hop away that works offline and gives
//!   every node the same image ID), else from the registry.
//! - `Never`: the engine's image or nothing: no registry, no peers; the pod
//!   fails with `ErrImageNeverPull` (as in Kubernetes) until the image is
//!   loaded on this node.
//! - `Always`: the registry first, even when the engine holds the image (a
//!   moving tag may have moved). Unlike Kubernetes, a failed pull does not
//!   fail the pod when the image is at hand: the engine's copy runs, else a
//!   peer's, with a warning saying so. An offline site keeps running.
//!
//! A failed registry pull backs off per image (ImagePullBackOff): later
//! starts under `Always` use the local image at once instead of waiting
//! for the registry again, and under `IfNotPresent` fail fast.

use std::time::{Duration, Instant};

use bollard::query_parameters::CreateImageOptions;
use futures_util::StreamExt;
use shoal_crdt_state::pod::ERR_IMAGE_NEVER_PULL;
use shoal_crdt_state::spec::PullPolicy;

use super::naming::image_pull_ref;
use super::{Inner, engine_message, is_not_found};
use crate::backoff::RestartBackoff;

/// Longest silence from the engine during a registry pull before it counts
/// as failed: an unreachable registry must not hold a start for minutes.
const PULL_IDLE: Duration = Duration::from_secs(30);

/// Failed pulls of one image: later starts wait out a back-off instead of
/// hammering the registry (ImagePullBackOff).
#[derive(Debug, Clone)]
pub(crate) struct PullFailures {
    count: u32,
    next_attempt: Instant,
    last_error: String,
}

impl Inner {
    /// Makes `image` available to the engine as `policy` allows.
    pub(crate) async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        progress: super::Progress,
    ) -> Result<(), String> {
        let present = self.image_present(image).await?;
        match policy {
            PullPolicy::Never if present => Ok(()),
            PullPolicy::Never => Err(format!(
                "{ERR_IMAGE_NEVER_PULL}: image {image} is not on this node and its \
                 imagePullPolicy is Never (no registry, no peers); load it on this node \
                 (`shoal image load`) or change the policy"
            )),
            PullPolicy::IfNotPresent if present => Ok(()),
            PullPolicy::IfNotPresent => self.fetch_missing(image, progress).await,
            PullPolicy::Always => self.pull_first(image, present, progress).await,
        }
    }

    async fn image_present(&self, image: &str) -> Result<bool, String> {
        let docker = self
            .docker()
            .map_err(|e| super::error_for(&self.host, "inspect images", e).to_string())?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(format!("inspect image {image}: {}", engine_message(&e))),
        }
    }

    /// `IfNotPresent` with the image missing: a peer that holds it, else
    /// the registry; failures back off.
    async fn fetch_missing(&self, image: &str, progress: super::Progress) -> Result<(), String> {
        if let Some(waiting) = self.pull_backoff(image) {
            return Err(waiting);
        }
        let mut peers_failed = None;
        if let Some(source) = self.image_source.get() {
            match source.fetch(image.to_owned(), progress.clone()).await {
                Ok(Some(from)) => {
                    tracing::info!(%image, %from, "image loaded from a peer");
                    self.pull_succeeded(image);
                    return Ok(());
                }
                Ok(None) => {}
                Err(why) => peers_failed = Some(why),
            }
        }
        progress(format!("ImagePulling {image}"));
        match self.pull(image).await {
            Ok(()) => {
                self.pull_succeeded(image);
                Ok(())
            }
            Err(message) => {
                let message = match peers_failed {
                    Some(why) => format!("no peer could send {image} ({why}), and pull: {message}"),
                    None if self.image_source.get().is_some() => {
                        format!("no peer holds {image}, and pull: {message}")
                    }
                    None => format!("pull {image}: {message}"),
                };
                Err(self.pull_failed(image, message))
            }
        }
    }

    /// `Always`: the registry first; when it fails, the engine's image or a
    /// peer's, said loudly (see the module doc for why this is not an error).
    async fn pull_first(
        &self,
        image: &str,
        present: bool,
        progress: super::Progress,
    ) -> Result<(), String> {
        let pulled = match self.pull_backoff(image) {
            Some(waiting) => Err(waiting),
            None => {
                progress(format!("ImagePulling {image}"));
                self.pull(image)
                    .await
                    .map_err(|why| self.pull_failed(image, format!("pull {image}: {why}")))
            }
        };
        let why = match pulled {
            Ok(()) => {
                self.pull_succeeded(image);
                return Ok(());
            }
            Err(why) => why,
        };
        if present {
            tracing::warn!(%image, error = %why, "imagePullPolicy Always: the registry failed; running the image this node holds");
            metrics::counter!("shoal_image_pulls_total", "outcome" => "fallback_local")
                .increment(1);
            return Ok(());
        }
        let Some(source) = self.image_source.get() else {
            return Err(why);
        };
        match source.fetch(image.to_owned(), progress).await {
            Ok(Some(from)) => {
                tracing::warn!(%image, %from, error = %why, "imagePullPolicy Always: the registry failed; image loaded from a peer instead");
                metrics::counter!("shoal_image_pulls_total", "outcome" => "fallback_peer")
                    .increment(1);
                Ok(())
            }
            Ok(None) => Err(format!("{why}; and no peer holds {image}")),
            Err(peers) => Err(format!("{why}; and no peer could send it ({peers})")),
        }
    }

    /// Pulls exactly the image's tag (or digest) from its registry.
    async fn pull(&self, image: &str) -> Result<(), String> {
        let docker = self
            .docker()
            .map_err(|e| super::error_for(&self.host, "pull images", e).to_string())?;
        let (repo, tag) = image_pull_ref(image);
        let options = CreateImageOptions {
            from_image: Some(repo),
            tag: Some(tag),
            ..Default::default()
        };
        let mut pull = docker.create_image(Some(options), None, None);
        let mut error = None;
        loop {
            let item = match tokio::time::timeout(PULL_IDLE, pull.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    error = Some(format!(
                        "the registry sent nothing for {}s; gave up",
                        PULL_IDLE.as_secs()
                    ));
                    break;
                }
            };
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        error = Some(detail.message.unwrap_or_else(|| "pull failed".into()));
                    }
                }
                Err(e) => {
                    error = Some(engine_message(&e));
                    break;
                }
            }
        }
        let outcome = if error.is_none() { "ok" } else { "failed" };
        metrics::counter!("shoal_image_pulls_total", "outcome" => outcome).increment(1);
        error.map_or(Ok(()), Err)
    }

    /// Why a pull of `image` must wait, while its back-off runs.
    fn pull_backoff(&self, image: &str) -> Option<String> {
        let now = Instant::now();
        let pulls = self.pulls.lock().expect("pulls mutex poisoned");
        let f = pulls.get(image).filter(|f| now < f.next_attempt)?;
        Some(format!(
            "{} (back-off: next pull of {image} in {:.1}s)",
            f.last_error,
            (f.next_attempt - now).as_secs_f64()
        ))
    }

    fn pull_succeeded(&self, image: &str) {
        self.pulls
            .lock()
            .expect("pulls mutex poisoned")
            .remove(image);
    }

    /// Counts a failed pull and starts its back-off; returns `message`.
    fn pull_failed(&self, image: &str, message: String) -> String {
        let mut pulls = self.pulls.lock().expect("pulls mutex poisoned");
        let count = pulls.get(image).map_or(0, |f| f.count) + 1;
        let wait = RestartBackoff::default().delay(count + 1);
        pulls.insert(
            image.to_string(),
            PullFailures {
                count,
                next_attempt: Instant::now() + wait,
                last_error: message.clone(),
            },
        );
        message
    }
}
