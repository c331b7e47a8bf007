//! The cluster as its own registry: peers hand images to each other.
//!
//! Every peer publishes which images of the cluster's RCs its engine holds,
//! by ID ([`holdings_loop`], into its node record). A peer whose engine
//! lacks an image it must run asks a live holder for it over QUIC (mutual
//! TLS, so only members can ask) and streams the holder's export straight
//! into its own engine's load, then checks the loaded ID against the one
//! the holder announced (`fetch`). Holders serve only images the
//! cluster's RCs use and at most [`MAX_UPLOADS`] at once (`serve`);
//! requesters pick holders at random and a node that has finished a load
//! announces itself as a holder at once, so an image spreads to N nodes in
//! about log(N) transfer times. A requester lists its transfers under way,
//! with their progress, for `get images` ([`transfers`]); holders send the
//! image's size first so that the progress has a total.

mod fetch;
mod serve;
#[cfg(feature = "test-hooks")]
mod tamper;
pub mod transfers;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use shoal_crdt_state::node::ImageHoldings;
use shoal_gossip::quic::QuicTransport;
use shoal_runtime::docker::DockerRuntime;
use tokio::sync::{Notify, Semaphore, mpsc};

use super::handle::PeerHandle;
use super::snapshots::Snapshot;
use transfers::Transfers;

/// Uploads one peer serves at once; more requesters are told to ask
/// another holder (or come back), which is what spreads an image out.
pub const MAX_UPLOADS: usize = 2;

/// How often the engine's images are checked when nothing was loaded.
const HOLDINGS_EVERY: Duration = Duration::from_secs(3);

/// The image side of one peer: serves holders' exports, fetches what the
/// engine lacks. Shared by the driver (serving), the executor (fetching)
/// and the holdings loop.
#[derive(Debug)]
pub struct PeerImages {
    /// Ourselves, for the tasks [`ImageSource::fetch`] starts.
    this: Weak<PeerImages>,
    transport: QuicTransport,
    handle: PeerHandle,
    /// Weak: the executor holds this as its image source.
    runtime: Weak<DockerRuntime>,
    uploads: Arc<Semaphore>,
    /// Told after every load, so the node announces a new holding at once.
    loaded: Notify,
    /// One fetch per reference at a time; later callers find it loaded.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The transfers under way, with their progress, for the API.
    transfers: Transfers,
}

impl PeerImages {
    /// `node`: this node's name, as transfers are listed.
    pub fn new(
        transport: QuicTransport,
        handle: PeerHandle,
        runtime: &Arc<DockerRuntime>,
        node: &str,
    ) -> Arc<PeerImages> {
        Arc::new_cyclic(|this| PeerImages {
            this: this.clone(),
            transport,
            handle,
            runtime: Arc::downgrade(runtime),
            uploads: Arc::new(Semaphore::new(MAX_UPLOADS)),
            loaded: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            transfers: Transfers::new(node),
        })
    }

    /// The transfers this peer has under way (shared, live).
    pub fn transfers(&self) -> Transfers {
        self.transfers.clone()
    }

    fn runtime(&self) -> Result<Arc<DockerRuntime>, String> {
        self.runtime
            .upgrade()
            .ok_or_else(|| "the peer is stopping".to_owned())
    }
}

/// The images the cluster's live RCs run, as their templates spell them.
pub fn images_in_use(snapshot: &Snapshot) -> BTreeSet<String> {
    snapshot
        .state
        .desired
        .live_rcs()
        .flat_map(|rc| {
            rc.template()
                .containers
                .iter()
                .map(|c| c.image.clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Keeps the node's published holdings current: every few seconds, and at
/// once after a load. Ends when the driver is gone.
pub async fn holdings_loop(images: Arc<PeerImages>, tx: mpsc::Sender<ImageHoldings>) {
    let mut last: Option<ImageHoldings> = None;
    loop {
        if let (Ok(snapshot), Ok(runtime)) = (images.handle.snapshot().await, images.runtime()) {
            match runtime.image_ids(images_in_use(&snapshot)).await {
                Ok(held) if last.as_ref() != Some(&held) => {
                    if tx.send(held.clone()).await.is_err() {
                        return;
                    }
                    last = Some(held);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot list the engine's images"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HOLDINGS_EVERY) => {}
            _ = images.loaded.notified() => {}
        }
    }
}

/// The live members other than us that announce `reference`, with the ID
/// they hold it as: (name, address, id).
fn holders(snapshot: &Snapshot, reference: &str) -> Vec<(String, std::net::SocketAddr, String)> {
    let active: BTreeSet<_> = snapshot.members.active_nodes().into_iter().collect();
    let addrs: BTreeMap<_, _> = snapshot
        .members
        .members
        .iter()
        .filter(|m| m.state.is_active())
        .map(|m| (m.identity.node, m.identity.addr))
        .collect();
    snapshot
        .state
        .observed
        .nodes()
        .filter(|(id, _)| *id != snapshot.me && active.contains(id))
        .filter_map(|(id, record)| {
            let image_id = record.info.images.get(reference)?;
            Some((record.info.name.clone(), *addrs.get(&id)?, image_id.clone()))
        })
        .collect()
}
