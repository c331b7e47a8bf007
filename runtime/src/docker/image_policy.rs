//! Getting a container's image into the engine, as its `imagePullPolicy` says.
//!
//! - `IfNotPresent`: the engine's image; a missing one comes from the
//!   registry when it answers within [`REGISTRY_REACH`], else from a peer
//!   that holds it (the cluster as its own registry, for offline sites).
//!   An unreachable registry costs one quick failure, then is skipped while
//!   its back-off runs, so peers are asked at once.
//! - `Never`: the engine's image or nothing: no registry, no peers; the pod
//!   fails with `ErrImageNeverPull` (as in Kubernetes) until the image is
//!   loaded on this node.
//! - `Always`: the registry first, even when the engine holds the image (a
//!   moving tag may have moved). Unlike Kubernetes, a failed pull does not
//!   fail the pod when the image is at hand: the engine's copy runs, else a
//!   peer's, with a warning saying so. An offline site keeps running.
//!
//! A failed registry pull backs off per image (ImagePullBackOff): while it
//! runs, starts skip the registry and use the local image or the peers.

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

/// How long the registry has to start answering a pull (the engine's first
/// progress message) before it counts as unreachable. A registry whose name
/// does not resolve fails at once; this bounds one that drops packets, so
/// the peers are asked after seconds rather than after the engine's own
/// dial timeouts.
const REGISTRY_REACH: Duration = Duration::from_secs(4);

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

    /// `IfNotPresent` with the image missing: the registry (unless it
    /// failed recently and backs off), else a peer that holds it.
    async fn fetch_missing(&self, image: &str, progress: super::Progress) -> Result<(), String> {
        let (registry, countdown) = match self.registry_backoff(image) {
            Some((last_error, wait)) => (
                last_error,
                format!(
                    " (back-off: next pull of {image} in {:.1}s)",
                    wait.as_secs_f64()
                ),
            ),
            None => {
                progress(format!("ImagePulling {image}"));
                let asked = Instant::now();
                match self.pull(image).await {
                    Ok(()) => {
                        self.pull_succeeded(image);
                        return Ok(());
                    }
                    Err(why) => {
                        tracing::debug!(%image, error = %why, seconds = asked.elapsed().as_secs_f64(), "registry pull failed; asking the peers");
                        (
                            self.pull_failed(image, format!("pull {image}: {why}")),
                            String::new(),
                        )
                    }
                }
            }
        };
        let Some(source) = self.image_source.get() else {
            return Err(format!("{registry}{countdown}"));
        };
        match source.fetch(image.to_owned(), progress).await {
            Ok(Some(from)) => {
                tracing::info!(%image, %from, "image loaded from a peer");
                Ok(())
            }
            // The countdown last: events strip it to count repeats.
            Ok(None) => Err(format!(
                "no registry reachable ({registry}) and no peer holds {image}{countdown}"
            )),
            Err(peers) => Err(format!(
                "no registry reachable ({registry}) and no peer could send {image} ({peers}){countdown}"
            )),
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
        let mut bound = REGISTRY_REACH;
        loop {
            let item = match tokio::time::timeout(bound, pull.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    error = Some(format!(
                        "the registry sent nothing for {}s; gave up",
                        bound.as_secs()
                    ));
                    break;
                }
            };
            bound = PULL_IDLE;
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
        let (last_error, wait) = self.registry_backoff(image)?;
        Some(format!(
            "{last_error} (back-off: next pull of {image} in {:.1}s)",
            wait.as_secs_f64()
        ))
    }

    /// The last pull error of `image` and the wait left, while its back-off runs.
    fn registry_backoff(&self, image: &str) -> Option<(String, Duration)> {
        let now = Instant::now();
        let pulls = self.pulls.lock().expect("pulls mutex poisoned");
        let f = pulls.get(image).filter(|f| now < f.next_attempt)?;
        Some((f.last_error.clone(), f.next_attempt - now))
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
