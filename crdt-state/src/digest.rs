//! Digests: what a peer holds, per record, in as few bytes as exactness allows.
//!
//! **Stamps and content.** Per RC a digest holds the stamp of each
//! register, what each register holds ([`RcContent`]: the body as a 64-bit
//! xxh3 of its encoding, the replica count, deleted and paused flags as
//! themselves)
//! and a hash of the history; per node record, its version and a 64-bit
//! xxh3 of its encoding ([`NodeVersion`]). Stamps alone cannot tell two
//! different values written under one stamp (or one version) apart, and
//! such copies never reconcile: a bug, a broken or hostile peer, a restored
//! backup would leave one peer running another image than the rest of the
//! cluster, forever. The content makes that visible to `missing_for`, which
//! then sends the register or record both ways, and the merge's tie-breaks
//! (larger encoding wins) settle every peer on the same value. Hashes are
//! of the same bytes the tie-breaks compare, with a fixed function, so two
//! peers agree on them whatever their build or platform.
//!
//! **Wire form.** In memory a [`Digest`] is plain maps of full [`Hlc`]
//! stamps. On the wire a stamp would cost 19 bytes (a 9-byte millisecond
//! varint, the counter, a 9-byte random node id), three per RC. The wire
//! form ([`CompactDigest`]) instead lists the writer node ids once and sends
//! each stamp as (milliseconds since the digest's oldest stamp, counter,
//! writer index): about 6 bytes. That halves a 10,000-RC digest (see
//! `bench_state`). Content costs 10 more bytes per RC (the body hash as 8
//! fixed bytes, the replica count and the flag 1 each) and 8 per node record:
//! the price of exactness, about a third more than stamps alone.
//!
//! **Cost.** Entries are cached next to their records and recomputed only
//! when a record changes (see `summarized.rs`), so building a digest
//! does not encode the state again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api_tokens::TokenStamps;
use crate::desired::RcRecord;
use crate::hlc::Hlc;
use crate::node::NodeId;
use crate::node_decisions::DecisionStamps;
use crate::observed::NodeRecord;
use crate::register::{encoding, stamp};
use crate::service::ServiceRecord;
use crate::summarized::Summarize;

/// One RC as a peer holds it: per-register stamps and contents, history hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcStamps {
    pub body: Option<Hlc>,
    pub replicas: Option<Hlc>,
    pub deleted: Option<Hlc>,
    pub paused: Option<Hlc>,
    /// xxh3 of the encoded history; 0 for an empty history.
    pub history: u64,
    /// What the registers hold: tells apart two writes under one stamp.
    pub content: RcContent,
}

/// What an RC's registers hold, beside their stamps. A register that was
/// never written counts as 0 / false (its stamp, `None`, says it is absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcContent {
    /// xxh3 of the body's encoding (the bytes its tie-break compares).
    pub body: u64,
    /// The replica count itself: smaller than any hash of it, and exact.
    pub replicas: u32,
    /// The deleted flag itself.
    pub deleted: bool,
    /// The paused flag itself.
    pub paused: bool,
}

impl RcStamps {
    pub fn of(record: &RcRecord) -> RcStamps {
        RcStamps {
            body: stamp(&record.body),
            replicas: stamp(&record.replicas),
            deleted: stamp(&record.deleted),
            paused: stamp(&record.paused),
            history: history_hash(record),
            content: RcContent {
                body: record.body.as_ref().map_or(0, |r| content_hash(&r.val)),
                replicas: record.replicas.as_ref().map_or(0, |r| r.val),
                deleted: record.deleted.as_ref().is_some_and(|r| r.val),
                paused: record.is_paused(),
            },
        }
    }

    fn stamps(&self) -> [Option<Hlc>; 4] {
        [self.body, self.replicas, self.deleted, self.paused]
    }
}

impl Summarize for RcRecord {
    type Summary = RcStamps;

    fn summarize(&self) -> RcStamps {
        RcStamps::of(self)
    }
}

/// One service as a peer holds it: per-register stamps and contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStamps {
    pub body: Option<Hlc>,
    pub deleted: Option<Hlc>,
    /// xxh3 of the body's encoding; 0 when never written.
    pub body_hash: u64,
    /// The deleted flag itself.
    pub deleted_flag: bool,
}

impl ServiceStamps {
    pub fn of(record: &ServiceRecord) -> ServiceStamps {
        ServiceStamps {
            body: stamp(&record.body),
            deleted: stamp(&record.deleted),
            body_hash: record.body.as_ref().map_or(0, |r| content_hash(&r.val)),
            deleted_flag: record.is_deleted(),
        }
    }

    fn stamps(&self) -> [Option<Hlc>; 2] {
        [self.body, self.deleted]
    }
}

impl Summarize for ServiceRecord {
    type Summary = ServiceStamps;

    fn summarize(&self) -> ServiceStamps {
        ServiceStamps::of(self)
    }
}

/// One node record as a peer holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVersion {
    pub version: u64,
    /// xxh3 of the record's encoding: tells apart two records under one version.
    pub content: u64,
}

impl NodeVersion {
    pub fn of(record: &NodeRecord) -> NodeVersion {
        NodeVersion {
            version: record.version,
            content: content_hash(record),
        }
    }
}

impl Summarize for NodeRecord {
    type Summary = NodeVersion;

    fn summarize(&self) -> NodeVersion {
        NodeVersion::of(self)
    }
}

fn content_hash<V: Serialize>(value: &V) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&encoding(value))
}

fn history_hash(record: &RcRecord) -> u64 {
    if record.history.is_empty() {
        0
    } else {
        content_hash(&record.history)
    }
}

/// What a peer holds: enough for another peer to compute what it lacks.
/// Travels as a [`CompactDigest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CompactDigest", try_from = "CompactDigest")]
pub struct Digest {
    pub desired: BTreeMap<String, RcStamps>,
    /// Decisions about nodes (cordoned, removed), stamps and values.
    pub nodes: BTreeMap<NodeId, DecisionStamps>,
    pub observed: BTreeMap<NodeId, NodeVersion>,
    pub services: BTreeMap<String, ServiceStamps>,
    /// API tokens: grant stamp and hash, revocation stamp.
    pub tokens: BTreeMap<String, TokenStamps>,
    /// The stamp of the join-secret register, if ever written.
    pub join: Option<Hlc>,
    /// The holder's garbage-collection horizon (see [`crate::gc`]).
    pub collected_below_ms: u64,
}

impl Digest {
    /// Whether the holder of `self` lacks nothing the holder of `theirs`
    /// holds, as far as the two digests tell: then `theirs`'s owner would
    /// answer `self`'s with an empty delta, and anti-entropy need not ask
    /// it (the digest that asks is most of an answer's bytes). Exact for
    /// node records (ours newer, or the same entry); every other entry of
    /// `theirs` must be ours exactly, which may ask when it need not,
    /// never the reverse. Their join-secret stamp must be no newer, and
    /// our collection horizon no later (a later one is what they would
    /// catch up with).
    pub fn holds_all_of(&self, theirs: &Digest) -> bool {
        fn same<K: Ord, V: PartialEq>(ours: &BTreeMap<K, V>, theirs: &BTreeMap<K, V>) -> bool {
            theirs.iter().all(|(k, t)| ours.get(k) == Some(t))
        }
        let records = theirs.observed.iter().all(|(node, t)| {
            self.observed
                .get(node)
                .is_some_and(|o| t.version < o.version || t == o)
        });
        records
            && same(&self.desired, &theirs.desired)
            && same(&self.nodes, &theirs.nodes)
            && same(&self.services, &theirs.services)
            && same(&self.tokens, &theirs.tokens)
            && theirs.join <= self.join
            && self.collected_below_ms <= theirs.collected_below_ms
    }
}

/// The wire form of a [`Digest`]. Decoding checks every writer index and
/// every offset, so a hostile digest is rejected, not misread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactDigest {
    /// Every node id that wrote a stamp below, sorted.
    writers: Vec<NodeId>,
    /// The oldest physical time of any stamp below.
    base_ms: u64,
    /// Per RC, sorted by name: body, replicas, deleted, paused stamps;
    /// history hash; content.
    rcs: Vec<(String, [Option<CompactStamp>; 4], u64, CompactContent)>,
    /// Per node decision: cordoned and removed stamps, their values, the
    /// version its removals forgot through, and
    /// the key binding's hash.
    nodes: Vec<CompactDecision>,
    /// Per node record: version, content hash.
    observed: Vec<(NodeId, u64, [u8; 8])>,
    /// Per service, sorted by name.
    services: Vec<CompactService>,
    /// Per API token, whole: there are a handful.
    tokens: Vec<(String, TokenStamps)>,
    join: Option<Hlc>,
    collected_below_ms: u64,
}

/// `(node, [cordoned, removed] stamps, their values, key binding hash,
/// version the removals forgot through)`.
type CompactDecision = (
    NodeId,
    [Option<CompactStamp>; 2],
    [bool; 2],
    Option<[u8; 8]>,
    Option<u64>,
);

/// `(name, [body, deleted] stamps, body hash, deleted flag)`.
type CompactService = (String, [Option<CompactStamp>; 2], [u8; 8], bool);

/// `(physical_ms - base_ms, counter, index into writers)`.
type CompactStamp = (u64, u32, u32);

/// `(body hash, replicas, deleted, paused)`. Hashes travel as 8
/// little-endian bytes: as a varint, a random 64-bit number takes 9.
type CompactContent = ([u8; 8], u32, bool, bool);

impl From<Digest> for CompactDigest {
    fn from(digest: Digest) -> CompactDigest {
        let decision_stamps = |d: &DecisionStamps| [d.cordoned, d.removed].map(|e| e.map(|e| e.0));
        let all = || {
            let rcs = digest.desired.values().flat_map(|s| s.stamps()).flatten();
            let nodes = digest.nodes.values().flat_map(decision_stamps).flatten();
            let services = digest.services.values().flat_map(|s| s.stamps()).flatten();
            rcs.chain(nodes).chain(services)
        };
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
            .map(|(name, s)| {
                let content = (
                    s.content.body.to_le_bytes(),
                    s.content.replicas,
                    s.content.deleted,
                    s.content.paused,
                );
                let stamps = s.stamps().map(|o| o.map(compact));
                (name.clone(), stamps, s.history, content)
            })
            .collect();
        let nodes = digest
            .nodes
            .iter()
            .map(|(node, d)| {
                let values = [d.cordoned, d.removed].map(|e| e.is_some_and(|e| e.1));
                let key = d.key.map(u64::to_le_bytes);
                (
                    *node,
                    decision_stamps(d).map(|o| o.map(compact)),
                    values,
                    key,
                    d.forgets_through,
                )
            })
            .collect();
        let observed = digest
            .observed
            .into_iter()
            .map(|(node, v)| (node, v.version, v.content.to_le_bytes()))
            .collect();
        let services = digest
            .services
            .iter()
            .map(|(name, s)| {
                let stamps = s.stamps().map(|o| o.map(compact));
                (
                    name.clone(),
                    stamps,
                    s.body_hash.to_le_bytes(),
                    s.deleted_flag,
                )
            })
            .collect();
        CompactDigest {
            collected_below_ms: digest.collected_below_ms,
            tokens: digest.tokens.into_iter().collect(),
            join: digest.join,
            services,
            base_ms,
            rcs,
            nodes,
            observed,
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
        for (name, [body, replicas, deleted, paused], history, content) in &compact.rcs {
            let (body_hash, replica_count, deleted_flag, paused_flag) = *content;
            let stamps = RcStamps {
                body: body.map(expand).transpose()?,
                replicas: replicas.map(expand).transpose()?,
                deleted: deleted.map(expand).transpose()?,
                paused: paused.map(expand).transpose()?,
                history: *history,
                content: RcContent {
                    body: u64::from_le_bytes(body_hash),
                    replicas: replica_count,
                    deleted: deleted_flag,
                    paused: paused_flag,
                },
            };
            desired.insert(name.clone(), stamps);
        }
        let mut nodes = BTreeMap::new();
        for (node, [cordoned, removed], [cordoned_val, removed_val], key, forgets_through) in
            &compact.nodes
        {
            let entry = |stamp: &Option<CompactStamp>, val: bool| {
                stamp.map(|s| expand(s).map(|h| (h, val))).transpose()
            };
            let stamps = DecisionStamps {
                cordoned: entry(cordoned, *cordoned_val)?,
                removed: entry(removed, *removed_val)?,
                key: key.map(u64::from_le_bytes),
                forgets_through: *forgets_through,
            };
            nodes.insert(*node, stamps);
        }
        let mut services = BTreeMap::new();
        for (name, [body, deleted], hash, flag) in &compact.services {
            let stamps = ServiceStamps {
                body: body.map(expand).transpose()?,
                deleted: deleted.map(expand).transpose()?,
                body_hash: u64::from_le_bytes(*hash),
                deleted_flag: *flag,
            };
            services.insert(name.clone(), stamps);
        }
        let observed = compact
            .observed
            .into_iter()
            .map(|(node, version, content)| {
                let content = u64::from_le_bytes(content);
                (node, NodeVersion { version, content })
            })
            .collect();
        Ok(Digest {
            desired,
            nodes,
            observed,
            services,
            tokens: compact.tokens.into_iter().collect(),
            join: compact.join,
            collected_below_ms: compact.collected_below_ms,
        })
    }
}
