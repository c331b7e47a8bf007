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
use std::time::{Duration, Instant};

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

/// How often the engine's images are checked when nothing was loaded and
/// the cluster's images did not change.
const HOLDINGS_EVERY: Duration = Duration::from_secs(3);

/// After the state changed, the holdings loop waits this long before it
/// reads it (a burst of changes is read once), and reads it at most every
/// [`HOLDINGS_SPACING`] while changes keep coming. The spacing bounds what
/// this loop costs the driver under constant change (each read after a
/// change builds a snapshot), but it does not apply after a placement:
/// an RC that starts using an image is placed first, and a requester
/// elsewhere waits for this node's announcement (measured: up to 0.5 s of
/// a 1 s transfer of a 2 MB image went to the spacing). Placements come
/// with desired-state and membership changes only, and each costs the
/// driver far more than the read that follows it.
const HOLDINGS_GATHER: Duration = Duration::from_millis(10);
const HOLDINGS_SPACING: Duration = Duration::from_millis(500);

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
    /// When a wait for a first holder of an image ended with none: the
    /// next caller within `fetch::HOLDER_WAIT` does not wait again (callers
    /// for one image queue on its gate, each holding a start slot).
    waited_in_vain: Mutex<HashMap<String, std::time::Instant>>,
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
            waited_in_vain: Mutex::new(HashMap::new()),
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

/// Keeps the node's published holdings current: as soon as the images the
/// cluster's RCs use change (a new RC's image is announced by its holders
/// before its replicas elsewhere look for one), at once after a load, and
/// every [`HOLDINGS_EVERY`] (an image loaded or removed by hand). Ends when
/// the driver is gone.
pub async fn holdings_loop(images: Arc<PeerImages>, tx: mpsc::Sender<ImageHoldings>) {
    let mut changes = images.handle.snapshot_changes();
    let mut placements = images.handle.placement_changes();
    let mut last: Option<ImageHoldings> = None;
    let mut in_use: Option<BTreeSet<String>> = None;
    let mut check_at = Instant::now();
    loop {
        let read_at = Instant::now();
        let Ok(snapshot) = images.handle.snapshot().await else {
            return;
        };
        let now_in_use = images_in_use(&snapshot);
        if in_use.as_ref() != Some(&now_in_use) {
            check_at = read_at;
        }
        if read_at >= check_at {
            check_at = read_at + HOLDINGS_EVERY;
            let held = match images.runtime() {
                Ok(runtime) => runtime.image_ids(now_in_use.iter().cloned()).await,
                Err(_) => return,
            };
            match held {
                Ok(held) if last.as_ref() != Some(&held) => {
                    tracing::debug!(
                        images = held.len(),
                        "announcing the images the engine holds"
                    );
                    if tx.send(held.clone()).await.is_err() {
                        return;
                    }
                    last = Some(held);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "cannot list the engine's images"),
            }
        }
        in_use = Some(now_in_use);
        // The next read: at `check_at`, or after a change once the spacing
        // allows. A placement cuts any wait short, the spacing's included.
        let mut read_after_change: Option<Instant> = None;
        loop {
            let wake = read_after_change.map_or(check_at, |at| at.min(check_at));
            tokio::select! {
                _ = tokio::time::sleep_until(wake.into()) => break,
                _ = images.loaded.notified() => {
                    check_at = Instant::now();
                    break;
                }
                placed = placements.changed() => {
                    if placed.is_err() {
                        return;
                    }
                    // The same change moved the snapshot: one read covers both.
                    changes.borrow_and_update();
                    tokio::time::sleep(HOLDINGS_GATHER).await;
                    break;
                }
                changed = changes.changed(), if read_after_change.is_none() => {
                    if changed.is_err() {
                        return;
                    }
                    read_after_change = Some(Instant::now() + read_delay(read_at.elapsed()));
                }
            }
        }
    }
}

/// How long to wait after a change of the state before reading it, when
/// the last read was `since_last_read` ago.
fn read_delay(since_last_read: Duration) -> Duration {
    HOLDINGS_GATHER.max(HOLDINGS_SPACING.saturating_sub(since_last_read))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_read_after_a_short_gather_and_reads_are_spaced_while_changes_keep_coming() {
        assert_eq!(read_delay(Duration::from_secs(5)), HOLDINGS_GATHER);
        assert_eq!(read_delay(HOLDINGS_SPACING), HOLDINGS_GATHER);
        assert_eq!(
            read_delay(Duration::from_millis(30)),
            HOLDINGS_SPACING - Duration::from_millis(30)
        );
        assert_eq!(read_delay(Duration::ZERO), HOLDINGS_SPACING);
    }
}
