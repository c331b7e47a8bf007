//! Images without a registry: what the node holds, an image's export as a
//! byte stream (to serve a peer), a load from a byte stream (what a peer
//! sent), checked against the ID its holder announced, and a load of an
//! archive a person seeds (`shoal image load`), which names what it held.
//!
//! Where a missing image comes from is the shell's business: it gives the
//! executor an [`ImageSource`], asked when the registry cannot give it (see
//! `image_policy`).

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use bollard::query_parameters::{ImportImageOptions, RemoveImageOptions};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};

use super::{DockerRuntime, Inner, RuntimeError, engine_message, error_for, is_not_found};

/// A stream of image archive bytes (`docker save` format).
pub type ImageArchive = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Told what a fetch is doing (`ImageTransferring from node2 (40 MB)`),
/// for the status of the pods that wait for it.
pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

/// Where an image the engine lacks can come from besides a registry.
pub trait ImageSource: Send + Sync + fmt::Debug {
    /// Gets `reference` into the engine; `Ok(None)` when no source holds it,
    /// `Ok(Some(from))` once it is loaded and
    /// checked (`from` says where it came from, for logs), `Err` with why
    /// every source that holds it failed.
    fn fetch(
        &self,
        reference: String,
        progress: Progress,
    ) -> BoxFuture<'static, Result<Option<String>, String>>;
}

/// Why a loaded archive was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Engine(#[from] RuntimeError),
    #[error("the engine could not load the archive: {0}")]
    Refused(String),
    #[error(
        "the archive holds {reference} as {found}, not {expected} as its holder announced: refused and removed"
    )]
    WrongId {
        reference: String,
        expected: String,
        found: String,
    },
}

/// One image a seeding load put into the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// As the archive tags it; `None` for an untagged image.
    pub reference: Option<String>,
    pub id: String,
}

impl DockerRuntime {
    /// Sets where missing images are fetched from when the registry cannot
    /// give them. Only the first call counts.
    pub fn set_image_source(&self, source: Arc<dyn ImageSource>) {
        let _ = self.inner.image_source.set(source);
    }

    /// The ID of each of `references` the engine holds (the others are left out).
    pub async fn image_ids(
        &self,
        references: impl IntoIterator<Item = String>,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let docker = self
            .inner
            .docker()
            .map_err(|e| error_for(&self.inner.host, "inspect images", e))?;
        let mut held = BTreeMap::new();
        for reference in references {
            match docker.inspect_image(&reference).await {
                Ok(image) => {
                    if let Some(id) = image.id {
                        held.insert(reference, id);
                    }
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(error_for(&self.inner.host, "inspect images", e)),
            }
        }
        Ok(held)
    }

    /// The size of `reference` in the engine (its layers' content), if it
    /// holds it: about what its export weighs, a little less.
    pub async fn image_size(&self, reference: &str) -> Result<Option<u64>, RuntimeError> {
        let docker = self
            .inner
            .docker()
            .map_err(|e| error_for(&self.inner.host, "inspect images", e))?;
        match docker.inspect_image(reference).await {
            Ok(image) => Ok(image.size.and_then(|s| u64::try_from(s).ok())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(error_for(&self.inner.host, "inspect images", e)),
        }
    }

    /// The engine's export of `reference` (`docker save`), streamed as the
    /// engine produces it.
    pub fn export_image(&self, reference: &str) -> Result<ImageArchive, RuntimeError> {
        let docker = self
            .inner
            .docker()
            .map_err(|e| error_for(&self.inner.host, "export images", e))?;
        let stream = docker
            .export_image(reference)
            .map(|chunk| chunk.map_err(|e| std::io::Error::other(engine_message(&e))));
        Ok(Box::pin(stream))
    }

    /// Loads `archive` (`docker load`) and checks that it gave `reference`
    /// the ID `expected`; a wrong one is untagged again and refused.
    pub async fn load_image(
        &self,
        archive: ImageArchive,
        reference: &str,
        expected: &str,
    ) -> Result<(), LoadError> {
        self.inner.load_image(archive, reference, expected).await
    }

    /// Loads `archive` (`docker load`) whatever it holds: an image a person
    /// seeds. Returns each image the engine reports loaded, with its ID.
    pub async fn load_archive(&self, archive: ImageArchive) -> Result<Vec<LoadedImage>, LoadError> {
        self.inner.load_archive(archive).await
    }
}

impl Inner {
    pub(crate) async fn load_image(
        &self,
        archive: ImageArchive,
        reference: &str,
        expected: &str,
    ) -> Result<(), LoadError> {
        let docker = self
            .docker()
            .map_err(|e| error_for(&self.host, "load images", e))?;
        run_load(&docker, archive).await?;
        tracing::debug!(%reference, "the engine's load is done; checking the ID");
        let found = match docker.inspect_image(reference).await {
            Ok(image) => image.id.unwrap_or_default(),
            Err(e) if is_not_found(&e) => {
                return Err(LoadError::Refused(format!(
                    "the archive does not hold {reference}"
                )));
            }
            Err(e) => return Err(error_for(&self.host, "inspect images", e).into()),
        };
        if found != expected {
            let options = RemoveImageOptions {
                noprune: false,
                ..Default::default()
            };
            if let Err(e) = docker.remove_image(reference, Some(options), None).await {
                tracing::warn!(%reference, error = %engine_message(&e), "cannot untag a refused image");
            }
            return Err(LoadError::WrongId {
                reference: reference.to_owned(),
                expected: expected.to_owned(),
                found,
            });
        }
        Ok(())
    }

    async fn load_archive(&self, archive: ImageArchive) -> Result<Vec<LoadedImage>, LoadError> {
        let docker = self
            .docker()
            .map_err(|e| error_for(&self.host, "load images", e))?;
        let said = run_load(&docker, archive).await?;
        let mut loaded = Vec::new();
        for line in said.lines() {
            if let Some(id) = line.strip_prefix("Loaded image ID: ") {
                loaded.push(LoadedImage {
                    reference: None,
                    id: id.trim().to_owned(),
                });
            } else if let Some(reference) = line.strip_prefix("Loaded image: ") {
                let reference = reference.trim();
                let image = docker
                    .inspect_image(reference)
                    .await
                    .map_err(|e| error_for(&self.host, "inspect images", e))?;
                loaded.push(LoadedImage {
                    reference: Some(reference.to_owned()),
                    id: image.id.unwrap_or_default(),
                });
            }
        }
        Ok(loaded)
    }
}

/// Streams `archive` into the engine's load; what the engine said
/// (`Loaded image: ...` lines), or why it refused.
async fn run_load(docker: &bollard::Docker, archive: ImageArchive) -> Result<String, LoadError> {
    let options = ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut progress = docker.import_image_stream(options, archive, None);
    let mut said = String::new();
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    let message = detail.message.unwrap_or_else(|| "load failed".into());
                    return Err(LoadError::Refused(message));
                }
                if let Some(text) = info.stream {
                    said.push_str(&text);
                }
            }
            Err(e) => return Err(LoadError::Refused(engine_message(&e))),
        }
    }
    Ok(said)
}
