//! Digests: what a peer holds, per record, in as few bytes as exactness allows.
//!
//! In memory a [`Digest`] is plain maps of full [`Hlc`] stamps. On the wire
//! a stamp would cost 19 bytes (a 9-byte millisecond varint, the counter, a
//! 9-byte random node id), three per RC. The wire form ([`CompactDigest`])
//! instead lists the writer node ids once and sends each stamp as
//! (milliseconds since the digest's oldest stamp, counter, writer index):
//! about 6 bytes. That halves a 10,000-RC digest (see `bench_state`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::RcRecord;
use crate::hlc::Hlc;
use crate::node::NodeId;
use crate::register::{encoding, stamp};

/// Per-register stamps of one RC, as a peer holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcStamps {
    pub body: Option<Hlc>,
    pub replicas: Option<Hlc>,
    pub deleted: Option<Hlc>,
    /// xxh3 of the encoded history; 0 for an empty history.
    pub history: u64,
}

impl RcStamps {
    pub fn of(record: &RcRecord) -> RcStamps {
        RcStamps {
            body: stamp(&record.body),
            replicas: stamp(&record.replicas),
            deleted: stamp(&record.deleted),
            history: history_hash(record),
        }
    }

    fn stamps(&self) -> [Option<Hlc>; 3] {
        [self.body, self.replicas, self.deleted]
    }
}

pub(crate) fn history_hash(record: &RcRecord) -> u64 {
    if record.history.is_empty() {
        0
    } else {
        xxhash_rust::xxh3::xxh3_64(&encoding(&record.history))
    }
}

/// What a peer holds: enough for another peer to compute what it lacks.
/// Travels as a [`CompactDigest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CompactDigest", try_from = "CompactDigest")]
pub struct Digest {
    pub desired: BTreeMap<String, RcStamps>,
    pub observed: BTreeMap<NodeId, u64>,
}

/// The wire form of a [`Digest`]. Decoding checks every writer index and
/// every offset, so a hostile digest is rejected, not misread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactDigest {
    /// Every node id that wrote a stamp below, sorted.
    writers: Vec<NodeId>,
    /// The oldest physical time of any stamp below.
    base_ms: u64,
    /// Per RC, sorted by name: body, replicas, deleted stamps; history hash.
    rcs: Vec<(String, [Option<CompactStamp>; 3], u64)>,
    observed: Vec<(NodeId, u64)>,
}

/// `(physical_ms - base_ms, counter, index into writers)`.
type CompactStamp = (u64, u32, u32);

impl From<Digest> for CompactDigest {
    fn from(digest: Digest) -> CompactDigest {
        let all = || digest.desired.values().flat_map(|s| s.stamps()).flatten();
        let base_ms = all().map(|s| s.physical_ms).min().unwrap_or(0);
        let mut writers: Vec<NodeId> = all().map(|s| s.node).collect();
        writers.sort_unstable();
        writers.dedup();
        let compact = |s: Hlc| {
            let index = writers.binary_search(&s.node).unwrap_or_default() as u32;
            (s.physical_ms - base_ms, s.counter, index)
        };
        let rcs = digest
            .desired
            .iter()
            .map(|(name, s)| (name.clone(), s.stamps().map(|o| o.map(compact)), s.history))
            .collect();
        CompactDigest {
            base_ms,
            rcs,
            observed: digest.observed.into_iter().collect(),
            writers,
        }
    }
}

impl TryFrom<CompactDigest> for Digest {
    type Error = String;

    fn try_from(compact: CompactDigest) -> Result<Digest, String> {
        let expand = |(offset, counter, index): CompactStamp| -> Result<Hlc, String> {
            let node = *compact.writers.get(index as usize).ok_or_else(|| {
                format!(
                    "digest names writer #{index} but lists only {}",
                    compact.writers.len()
                )
            })?;
            let physical_ms = compact
                .base_ms
                .checked_add(offset)
                .ok_or("digest stamp overflows the millisecond range")?;
            Ok(Hlc {
                physical_ms,
                counter,
                node,
            })
        };
        let mut desired = BTreeMap::new();
        for (name, [body, replicas, deleted], history) in &compact.rcs {
            let stamps = RcStamps {
                body: body.map(expand).transpose()?,
                replicas: replicas.map(expand).transpose()?,
                deleted: deleted.map(expand).transpose()?,
                history: *history,
            };
            desired.insert(name.clone(), stamps);
        }
        Ok(Digest {
            desired,
            observed: compact.observed.into_iter().collect(),
        })
    }
}
