//! Where sync bytes go, for analysis: with `SHOAL_SIM_BREAKDOWN=1`, every
//! sync message a peer receives is decoded again and its bytes are added up
//! by kind and by part (digest sections, delta sections, and the node
//! records and decisions the receiver already held), then printed to stderr
//! when a peer scenario reports. Off, it costs one flag test per message.
//! Sizes of parts are the bincode encodings of those parts alone, so they
//! add up to a little less than the messages (envelope and framing).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use shoal::peer::sync_message::{SyncEnvelope, SyncMessage};
use shoal_crdt_state::register::encoding;
use shoal_crdt_state::{ClusterState, Delta, Digest, wire};

/// Part name → (items, bytes).
static PARTS: Mutex<BTreeMap<String, (u64, u64)>> = Mutex::new(BTreeMap::new());

pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SHOAL_SIM_BREAKDOWN").is_some())
}

/// Counts one sync message `bytes` arriving at a peer holding `receiver`.
pub fn record(bytes: &[u8], receiver: &ClusterState) {
    let Ok(envelope) = wire::decode::<SyncEnvelope>(bytes, wire::MAX_MESSAGE_BYTES) else {
        return;
    };
    let mut parts = PARTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut add = |part: &str, items: usize, len: usize| {
        let entry = parts.entry(part.to_owned()).or_default();
        entry.0 += items as u64;
        entry.1 += len as u64;
    };
    add(envelope.message.kind(), 1, bytes.len());
    match &envelope.message {
        SyncMessage::Hello { .. } => {}
        SyncMessage::Pull { digest } => digest_parts(&mut add, "pull", digest),
        SyncMessage::Push { delta, digest, .. } => {
            delta_parts(&mut add, delta, receiver);
            if let Some(digest) = digest {
                digest_parts(&mut add, "push", digest);
            }
        }
    }
}

fn digest_parts(add: &mut impl FnMut(&str, usize, usize), kind: &str, digest: &Digest) {
    let whole = encoding(digest).len();
    let mut rest = digest.clone();
    rest.observed.clear();
    let without_records = encoding(&rest).len();
    rest.nodes.clear();
    let without_decisions = encoding(&rest).len();
    let records = whole - without_records;
    let decisions = without_records - without_decisions;
    add(
        &format!("{kind}.digest.records"),
        digest.observed.len(),
        records,
    );
    add(
        &format!("{kind}.digest.decisions"),
        digest.nodes.len(),
        decisions,
    );
    add(&format!("{kind}.digest.rest"), 1, without_decisions);
}

fn delta_parts(add: &mut impl FnMut(&str, usize, usize), delta: &Delta, receiver: &ClusterState) {
    for (node, record) in &delta.observed.nodes {
        let held = receiver
            .observed
            .get(*node)
            .is_some_and(|h| record.version < h.version || h == record);
        let part = if held {
            "push.records.held"
        } else {
            "push.records.new"
        };
        add(part, 1, encoding(record).len());
    }
    for (node, decision) in &delta.desired.nodes {
        let held = receiver.desired.nodes().get(*node) == Some(decision);
        let part = if held {
            "push.decisions.held"
        } else {
            "push.decisions.new"
        };
        add(part, 1, encoding(decision).len());
    }
    let mut rest = delta.clone();
    rest.observed.nodes.clear();
    rest.desired.nodes.clear();
    add("push.delta.rest", 1, encoding(&rest).len());
}

/// Prints the parts counted so far, per node per simulated second too.
pub fn print(node_s: f64) {
    let parts = PARTS.lock().unwrap_or_else(|e| e.into_inner());
    eprintln!("sync breakdown (received): part, items, bytes, bytes per node per s");
    for (part, (items, bytes)) in parts.iter() {
        let rate = *bytes as f64 / node_s;
        eprintln!("{part:24} {items:>10} {bytes:>12} {rate:>9.0}");
    }
}
