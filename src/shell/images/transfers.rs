//! The image transfers this peer has in flight, for `shoal get images`.
//!
//! Kept by the fetching peer only, not replicated: progress changes many
//! times a second and matters while someone looks. The waiting pods'
//! `preparing` text (replicated with their status) carries a summary to
//! the other peers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One transfer as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferJson {
    pub image: String,
    /// The node receiving it (this peer).
    pub node: String,
    /// The holder sending it.
    pub from: String,
    pub received_bytes: u64,
    /// The image's size in the holder's engine, when it said: the archive
    /// is a little larger (tar headers, config), so this is an estimate.
    #[serde(default)]
    pub total_bytes: Option<u64>,
    /// Of `total_bytes`, at most 99 until the load is done.
    #[serde(default)]
    pub percent: Option<u8>,
    /// Average since the transfer started.
    pub bytes_per_second: u64,
    pub elapsed_ms: u64,
}

#[derive(Debug)]
struct Transfer {
    /// Tells this transfer from a later one of the same image, so that a
    /// guard outliving its transfer never touches the next.
    serial: u64,
    from: String,
    received: u64,
    total: Option<u64>,
    started: Instant,
}

/// The in-flight transfers of one peer, by image reference (one fetch per
/// reference at a time). Cheap to clone: shared.
#[derive(Debug, Clone, Default)]
pub struct Transfers {
    node: Arc<String>,
    by_image: Arc<Mutex<BTreeMap<String, Transfer>>>,
    serials: Arc<AtomicU64>,
}

impl Transfers {
    pub fn new(node: &str) -> Transfers {
        Transfers {
            node: Arc::new(node.to_owned()),
            ..Default::default()
        }
    }

    /// Registers a transfer of `image` from `from`; it is listed until the
    /// returned guard is dropped (done, failed or abandoned alike).
    pub fn start(&self, image: &str, from: &str, total: Option<u64>) -> TransferGuard {
        let serial = self.serials.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            image.to_owned(),
            Transfer {
                serial,
                from: from.to_owned(),
                received: 0,
                total,
                started: Instant::now(),
            },
        );
        TransferGuard {
            transfers: self.clone(),
            image: image.to_owned(),
            serial,
        }
    }

    pub fn list(&self) -> Vec<TransferJson> {
        self.lock()
            .iter()
            .map(|(image, t)| view(image, &self.node, t))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Transfer>> {
        self.by_image.lock().expect("transfers mutex poisoned")
    }
}

fn view(image: &str, node: &str, t: &Transfer) -> TransferJson {
    let elapsed = t.started.elapsed();
    let rate = if elapsed.as_secs_f64() > 0.0 {
        (t.received as f64 / elapsed.as_secs_f64()) as u64
    } else {
        0
    };
    TransferJson {
        image: image.to_owned(),
        node: node.to_owned(),
        from: t.from.clone(),
        received_bytes: t.received,
        total_bytes: t.total,
        percent: t.total.map(|total| percent(t.received, total)),
        bytes_per_second: rate,
        elapsed_ms: elapsed.as_millis() as u64,
    }
}

/// Capped at 99: the total is an estimate and the load is not done yet.
fn percent(received: u64, total: u64) -> u8 {
    if total == 0 {
        return 99;
    }
    (received.saturating_mul(100) / total).min(99) as u8
}

/// Keeps one transfer listed; updates its bytes; unlists it when dropped.
#[derive(Debug)]
pub struct TransferGuard {
    transfers: Transfers,
    image: String,
    serial: u64,
}

impl TransferGuard {
    /// Records `received` bytes so far; returns the row as it stands now.
    pub fn received(&self, received: u64) -> Option<TransferJson> {
        let mut all = self.transfers.lock();
        let t = all
            .get_mut(&self.image)
            .filter(|t| t.serial == self.serial)?;
        t.received = received;
        Some(view(&self.image, &self.transfers.node, t))
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        let mut all = self.transfers.lock();
        if all
            .get(&self.image)
            .is_some_and(|t| t.serial == self.serial)
        {
            all.remove(&self.image);
        }
    }
}

/// `40.1 of 90.2 MB, 44%, 12.3 MB/s` (without the total when unknown).
pub fn summary(t: &TransferJson) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let rate = mb(t.bytes_per_second);
    match (t.total_bytes, t.percent) {
        (Some(total), Some(pct)) => format!(
            "{:.1} of {:.1} MB, {pct}%, {rate:.1} MB/s",
            mb(t.received_bytes),
            mb(total)
        ),
        _ => format!("{:.1} MB, {rate:.1} MB/s", mb(t.received_bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_listed_with_its_progress_until_its_guard_drops() {
        let transfers = Transfers::new("node1");
        let guard = transfers.start("big:1", "node0", Some(200));
        let row = guard.received(50).unwrap();
        assert_eq!((row.received_bytes, row.percent), (50, Some(25)));
        let listed = transfers.list();
        assert_eq!(listed.len(), 1);
        let listed = &listed[0];
        assert_eq!(
            (
                listed.image.as_str(),
                listed.node.as_str(),
                listed.from.as_str()
            ),
            ("big:1", "node1", "node0")
        );
        assert_eq!((listed.received_bytes, listed.total_bytes), (50, Some(200)));
        drop(guard);
        assert!(transfers.list().is_empty());
    }

    #[test]
    fn a_guard_that_outlives_its_transfer_leaves_the_next_alone() {
        let transfers = Transfers::new("node1");
        let old = transfers.start("big:1", "node0", None);
        let new = transfers.start("big:1", "node2", None);
        assert_eq!(old.received(7), None);
        drop(old);
        assert_eq!(transfers.list()[0].from, "node2");
        assert_eq!(new.received(9).unwrap().received_bytes, 9);
    }

    #[test]
    fn percent_stays_below_100_until_done_and_is_absent_without_a_total() {
        assert_eq!(percent(250, 200), 99);
        assert_eq!(percent(0, 0), 99);
        let transfers = Transfers::new("n");
        let guard = transfers.start("x", "y", None);
        let row = guard.received(3_000_000).unwrap();
        assert_eq!(row.percent, None);
        assert!(summary(&row).starts_with("3.0 MB, "), "{}", summary(&row));
    }
}
