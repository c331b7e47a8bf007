//! Desired state: what the users asked for, one record per ReplicationController.
//!
//! Each [`RcRecord`] holds four independent last-writer-wins registers —
//! the spec without its replica count ([`RcBody`]), the replica count, the
//! deleted flag and the rollout's paused flag — plus the rollout history
//! (numbered as [`crate::revisions`] describes). Because the registers merge
//! independently, a `scale` at one peer and an image change at another, made
//! during a partition, both survive the heal.
//!
//! **Delete vs. update.** A delete writes `deleted = true`; `scale` and
//! `set_template` never touch the flag, so they never undelete: after a merge
//! the RC is deleted whatever the stamps of concurrent updates. Only `apply`
//! writes `deleted = false` (when it finds the RC deleted or absent), with its
//! own stamp, so an apply made after the delete was seen recreates the RC,
//! and of a concurrent apply and delete the later stamp wins, on every peer.
//!
//! **Stamps.** Local commands take a stamp from the node's
//! [`Clock`](crate::hlc::Clock), which must have observed every stamp merged
//! here ([`DesiredDelta::max_stamp`]); a stale stamp would silently lose.
//!
//! **Tombstones** stay until every known node acknowledges holding them;
//! then [`crate::gc`] collects them and fences off older copies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api_tokens::{ApiTokens, TokenGrant, TokenRecord};
use crate::error::StateError;
use crate::hlc::Hlc;
use crate::identity::PublicKey;
use crate::join_secrets::{JoinRegister, JoinSecrets};
use crate::node::NodeId;
use crate::node_decisions::{NodeDecision, NodeDecisions};
use crate::register::{self, Reg};
use crate::revisions;
use crate::service::ServiceRecord;
use crate::spec::{Labels, PartitionPolicy, PodTemplate, RcSpec, UpdateStrategy};
use crate::summarized::Summarized;

/// How many previous templates a record keeps.
pub const HISTORY_LIMIT: usize = 10;

/// An RC's spec without its name and replica count: what `apply` and
/// `rolling-update` change together, as one register.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RcBody {
    pub selector: Labels,
    pub template: PodTemplate,
    pub update_strategy: UpdateStrategy,
    pub partition_policy: PartitionPolicy,
    /// Rollout revision of `template`, assigned by the write (see
    /// [`crate::revisions`]); a write that keeps the template keeps it.
    pub revision: u64,
    /// The manifest text `kubectl apply` last sent (its
    /// `last-applied-configuration` annotation): kubectl's three-way merge
    /// needs the text itself, not the spec Shoal made of it. In the body
    /// register so that the text and the spec it describes are one write.
    pub last_applied: Option<String>,
}

/// What an apply does with the body's last-applied text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastApplied {
    /// Shoal's own `apply`: the text stays as it is.
    Keep,
    /// A write through the Kubernetes API: the object's annotation (or none).
    Set(Option<String>),
}

impl LastApplied {
    /// The text to store, given the one stored now.
    pub fn resolve(&self, current: Option<&String>) -> Option<String> {
        match self {
            LastApplied::Keep => current.cloned(),
            LastApplied::Set(text) => text.clone(),
        }
    }
}

impl RcBody {
    /// The body of `spec`, revision not yet assigned (0).
    pub fn of(spec: &RcSpec) -> RcBody {
        RcBody {
            selector: spec.selector.clone(),
            template: spec.template.clone(),
            update_strategy: spec.update_strategy,
            partition_policy: spec.partition_policy,
            revision: 0,
            last_applied: None,
        }
    }

    /// The same spec, whatever the revisions: what `apply` compares.
    pub fn same_spec(&self, other: &RcBody) -> bool {
        self.selector == other.selector
            && self.template == other.template
            && self.update_strategy == other.update_strategy
            && self.partition_policy == other.partition_policy
    }

    /// The spec, not paused (the paused flag is a register of its own).
    pub fn to_spec(&self, name: &str, replicas: u32) -> RcSpec {
        RcSpec {
            name: name.to_owned(),
            replicas,
            selector: self.selector.clone(),
            template: self.template.clone(),
            update_strategy: self.update_strategy,
            partition_policy: self.partition_policy,
            paused: false,
        }
    }
}

/// A template the RC ran before, stamped with the write that installed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Revision {
    pub stamp: Hlc,
    pub template: PodTemplate,
    /// The revision number its write gave it (see [`crate::revisions`]).
    pub revision: u64,
}

impl Revision {
    /// The history entry of an overwritten body write.
    pub fn of(reg: &Reg<RcBody>) -> Revision {
        Revision {
            stamp: reg.marker,
            template: reg.val.template.clone(),
            revision: reg.val.revision,
        }
    }
}

/// One RC's replicated record. A register that was never written here is
/// `None` (a delta carries only the registers it changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcRecord {
    /// Selector, template, update strategy, partition policy.
    pub body: Option<Reg<RcBody>>,
    /// Replica count: its own register so a scale never fights an image change.
    pub replicas: Option<Reg<u32>>,
    /// Tombstone. `None` counts as not deleted.
    pub deleted: Option<Reg<bool>>,
    /// Rollout paused (`shoal rollout pause`): running pods are not moved
    /// to a new template. Its own register, so an `apply` keeps it. `None`
    /// counts as not paused.
    pub paused: Option<Reg<bool>>,
    /// Templates of overwritten bodies, newest first, distinct stamps, at most
    /// [`HISTORY_LIMIT`]. It is the top-N (by stamp) of the union of all
    /// overwritten body writes: the top-N of a union is still a join
    /// (commutative, associative, idempotent), so history merges like the rest.
    /// A write that changed only the strategy repeats the previous template.
    pub history: Vec<Revision>,
}

impl RcRecord {
    /// Join `other` into this record.
    pub fn merge(&mut self, other: RcRecord) {
        if let Some(lost) = register::join(&mut self.body, other.body) {
            merge_history(&mut self.history, vec![Revision::of(&lost)]);
        }
        register::join(&mut self.replicas, other.replicas);
        register::join(&mut self.deleted, other.deleted);
        register::join(&mut self.paused, other.paused);
        merge_history(&mut self.history, other.history);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.as_ref().is_some_and(|r| r.val)
    }

    pub fn is_paused(&self) -> bool {
        self.paused.as_ref().is_some_and(|r| r.val)
    }

    /// When the RC was created, or recreated after a delete: `apply` writes
    /// `deleted = false` only then. Failing that (a record built without
    /// it), the oldest template stamp known.
    pub fn created(&self) -> Option<Hlc> {
        match &self.deleted {
            Some(reg) if !reg.val => Some(reg.marker),
            _ => self
                .history
                .last()
                .map(|r| r.stamp)
                .or(self.body.as_ref().map(|b| b.marker)),
        }
    }

    /// Live: has a body and a replica count and is not deleted.
    pub fn is_live(&self) -> bool {
        self.body.is_some() && self.replicas.is_some() && !self.is_deleted()
    }

    /// The newest stamp in the record (registers and history).
    pub fn max_stamp(&self) -> Option<Hlc> {
        [
            register::stamp(&self.body),
            register::stamp(&self.replicas),
            register::stamp(&self.deleted),
            register::stamp(&self.paused),
            self.history.first().map(|r| r.stamp),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_none()
            && self.replicas.is_none()
            && self.deleted.is_none()
            && self.paused.is_none()
            && self.history.is_empty()
    }
}

/// Union `incoming` into `history`: newest first, one entry per stamp (the
/// larger encoding on a clash, which correct clocks never produce), capped.
fn merge_history(history: &mut Vec<Revision>, incoming: Vec<Revision>) {
    if incoming.is_empty() {
        return;
    }
    history.extend(incoming);
    history.sort_by_key(|r| std::cmp::Reverse(r.stamp));
    history.dedup_by(|later, kept| {
        if later.stamp != kept.stamp {
            return false;
        }
        // Template and revision number both count: a clash keeps the larger
        // encoding whatever the order the entries arrived in.
        if later != kept && register::encoding(later) > register::encoding(kept) {
            std::mem::swap(later, kept);
        }
        true
    });
    history.truncate(HISTORY_LIMIT);
}

/// A live RC as the rest of Shoal reads it: borrowed, no copy.
#[derive(Debug, Clone, Copy)]
pub struct RcView<'a> {
    pub name: &'a str,
    pub replicas: u32,
    pub body: &'a RcBody,
    pub record: &'a RcRecord,
}

impl RcView<'_> {
    pub fn template(&self) -> &PodTemplate {
        &self.body.template
    }

    /// Previous templates, newest first.
    pub fn history(&self) -> &[Revision] {
        &self.record.history
    }

    pub fn to_spec(&self) -> RcSpec {
        RcSpec {
            paused: self.record.is_paused(),
            ..self.body.to_spec(self.name, self.replicas)
        }
    }
}

/// Changes to gossip: the registers a command wrote, or what a peer lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredDelta {
    pub rcs: BTreeMap<String, RcRecord>,
    /// Decisions about nodes (see [`crate::node_decisions`]).
    pub nodes: BTreeMap<NodeId, NodeDecision>,
    /// Services (see [`crate::service`]).
    pub services: BTreeMap<String, ServiceRecord>,
    /// API tokens (see [`crate::api_tokens`]).
    pub tokens: BTreeMap<String, TokenRecord>,
    /// The join tokens admitted (see [`crate::join_secrets`]).
    pub join: JoinRegister,
}

impl DesiredDelta {
    pub fn is_empty(&self) -> bool {
        self.rcs.values().all(RcRecord::is_empty)
            && self.nodes.values().all(NodeDecision::is_empty)
            && self.services.values().all(ServiceRecord::is_empty)
            && self.tokens.values().all(TokenRecord::is_empty)
            && self.join.is_empty()
    }

    /// The newest stamp carried: feed it to [`Clock::observe`](crate::hlc::Clock::observe).
    pub fn max_stamp(&self) -> Option<Hlc> {
        let rcs = self.rcs.values().filter_map(RcRecord::max_stamp);
        let nodes = self.nodes.values().filter_map(NodeDecision::max_stamp);
        let services = self.services.values().filter_map(ServiceRecord::max_stamp);
        let tokens = self.tokens.values().filter_map(TokenRecord::max_stamp);
        rcs.chain(nodes)
            .chain(services)
            .chain(tokens)
            .chain(self.join.stamp())
            .max()
    }

    /// Join another delta into this one (to batch deltas before sending).
    pub fn merge(&mut self, other: DesiredDelta) {
        for (name, record) in other.rcs {
            self.rcs.entry(name).or_default().merge(record);
        }
        for (node, decision) in other.nodes {
            self.nodes.entry(node).or_default().merge(decision);
        }
        for (name, record) in other.services {
            self.services.entry(name).or_default().merge(record);
        }
        for (name, record) in other.tokens {
            self.tokens.entry(name).or_default().merge(record);
        }
        self.join.merge(other.join);
    }

    fn single(name: &str, record: RcRecord) -> DesiredDelta {
        DesiredDelta {
            rcs: BTreeMap::from([(name.to_owned(), record)]),
            ..DesiredDelta::default()
        }
    }
}

/// The replicated map from RC name to record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Each record with its digest entry, cached (encoded as records alone).
    pub(crate) rcs: BTreeMap<String, Summarized<RcRecord>>,
    /// Cordoned and removed nodes.
    pub(crate) nodes: NodeDecisions,
    /// Services, like the RCs: each record with its digest entry.
    pub(crate) services: BTreeMap<String, Summarized<ServiceRecord>>,
    /// API tokens; never collected, never fenced (see [`crate::api_tokens`]).
    pub(crate) tokens: ApiTokens,
    /// The join tokens admitted; never collected.
    pub(crate) join: JoinRegister,
    /// The garbage-collection horizon (ms): records whose every stamp is
    /// older were collected or are fenced off (see [`crate::gc`]).
    pub(crate) collected_below_ms: u64,
}

impl DesiredState {
    pub fn new() -> DesiredState {
        DesiredState::default()
    }

    // ---- getters ----

    /// The live RC called `name`.
    pub fn get(&self, name: &str) -> Option<RcView<'_>> {
        self.rcs
            .get_key_value(name)
            .and_then(|(name, record)| view(name, record.get()))
    }

    /// Live RCs, sorted by name.
    pub fn live_rcs(&self) -> impl Iterator<Item = RcView<'_>> {
        self.rcs
            .iter()
            .filter_map(|(name, record)| view(name, record.get()))
    }

    /// Every record, tombstones and partial records included, sorted by name.
    pub fn records(&self) -> impl Iterator<Item = (&str, &RcRecord)> {
        self.rcs
            .iter()
            .map(|(name, record)| (name.as_str(), record.get()))
    }

    pub fn record(&self, name: &str) -> Option<&RcRecord> {
        self.rcs.get(name).map(Summarized::get)
    }

    /// Every record with its digest entry, sorted by name.
    pub(crate) fn summarized(&self) -> impl Iterator<Item = (&str, &Summarized<RcRecord>)> {
        self.rcs
            .iter()
            .map(|(name, record)| (name.as_str(), record))
    }

    pub fn len(&self) -> usize {
        self.rcs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rcs.is_empty()
    }

    // ---- commands (local writes) ----

    /// Create or update an RC like `kubectl apply`: only the registers whose
    /// value differs are written, so re-applying an unchanged manifest does
    /// not clobber a concurrent `scale`. Recreates a deleted RC. Keeps the
    /// last-applied text.
    pub fn apply(&mut self, spec: &RcSpec, stamp: Hlc) -> DesiredDelta {
        self.apply_with(spec, &LastApplied::Keep, stamp)
    }

    /// [`DesiredState::apply`], with what to do with the last-applied text.
    /// A new text with an unchanged spec rewrites the body, same revision.
    pub fn apply_with(
        &mut self,
        spec: &RcSpec,
        last_applied: &LastApplied,
        stamp: Hlc,
    ) -> DesiredDelta {
        let current = self.record(&spec.name);
        let mut body = RcBody::of(spec);
        let mut write = RcRecord::default();
        let current_body = current.and_then(|r| r.body.as_ref());
        body.last_applied =
            last_applied.resolve(current_body.and_then(|reg| reg.val.last_applied.as_ref()));
        let text_changed =
            current_body.is_some_and(|reg| reg.val.last_applied != body.last_applied);
        // Recreating a deleted RC writes every register anew: a peer that
        // already collected the tombstone gets a whole record, not the
        // changed registers of one it no longer holds (see `crate::gc`).
        let reviving = current.is_some_and(RcRecord::is_deleted);
        if let Some(reg) =
            current_body.filter(|reg| (reviving || text_changed) && reg.val.same_spec(&body))
        {
            body.revision = reg.val.revision;
            write.body = Some(register::write(body.clone(), stamp));
        }
        if current_body.is_none_or(|reg| !reg.val.same_spec(&body)) {
            body.revision = current.map_or(1, |r| revisions::next_number(r, &body.template));
            // The overwritten body becomes history here and at every receiver;
            // shipping it lets a receiver that never saw it record it too.
            write.history = current_body.map(Revision::of).into_iter().collect();
            write.body = Some(register::write(body, stamp));
        }
        if reviving
            || current
                .and_then(|r| r.replicas.as_ref())
                .is_none_or(|reg| reg.val != spec.replicas)
        {
            write.replicas = Some(register::write(spec.replicas, stamp));
        }
        if current.is_none_or(|r| r.is_deleted() || r.deleted.is_none()) {
            write.deleted = Some(register::write(false, stamp));
        }
        self.commit(&spec.name, write)
    }

    /// Set the replica count of a live RC (always written: it is an explicit command).
    pub fn scale(
        &mut self,
        name: &str,
        replicas: u32,
        stamp: Hlc,
    ) -> Result<DesiredDelta, StateError> {
        self.live_record(name)?;
        let write = RcRecord {
            replicas: Some(register::write(replicas, stamp)),
            ..RcRecord::default()
        };
        Ok(self.commit(name, write))
    }

    /// Replace the pod template of a live RC (rolling update, image change).
    /// The old template goes into the history. Same template: nothing written.
    pub fn set_template(
        &mut self,
        name: &str,
        template: PodTemplate,
        stamp: Hlc,
    ) -> Result<DesiredDelta, StateError> {
        let record = self.live_record(name)?;
        let Some(current) = record.body.as_ref() else {
            return Err(StateError::UnknownRc {
                name: name.to_owned(),
            });
        };
        if current.val.template == template {
            return Ok(DesiredDelta::default());
        }
        let selector = &current.val.selector;
        if selector.is_empty()
            || selector
                .iter()
                .any(|(k, v)| template.labels.get(k) != Some(v))
        {
            return Err(StateError::SelectorMismatch {
                name: name.to_owned(),
                selector: selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        let old = Revision::of(current);
        let body = RcBody {
            revision: revisions::next_number(record, &template),
            template,
            ..current.val.clone()
        };
        let write = RcRecord {
            body: Some(register::write(body, stamp)),
            history: vec![old],
            ..RcRecord::default()
        };
        Ok(self.commit(name, write))
    }

    /// Delete a live RC: writes the tombstone.
    pub fn delete(&mut self, name: &str, stamp: Hlc) -> Result<DesiredDelta, StateError> {
        self.live_record(name)?;
        let write = RcRecord {
            deleted: Some(register::write(true, stamp)),
            ..RcRecord::default()
        };
        Ok(self.commit(name, write))
    }

    // ---- merging ----

    /// Join a delta (from gossip or anti-entropy) into the state. Records
    /// below the collection horizon that we do not hold are dropped (the
    /// fence, see [`crate::gc`]).
    pub fn merge_delta(&mut self, mut delta: DesiredDelta) {
        self.fence(&mut delta);
        for (name, record) in delta.rcs {
            if record.is_empty() {
                continue;
            }
            // Gossip often brings what is already here: a record shared
            // with a snapshot then stays shared (see `summarized`).
            self.rcs
                .entry(name)
                .or_default()
                .update(|current| current.merge(record));
        }
        self.nodes.merge(delta.nodes);
        self.tokens.merge(delta.tokens);
        self.join.merge(delta.join);
        for (name, record) in delta.services {
            if !record.is_empty() {
                self.services
                    .entry(name)
                    .or_default()
                    .update(|current| current.merge(record));
            }
        }
    }

    /// Decisions about nodes: cordoned, removed.
    pub fn nodes(&self) -> &NodeDecisions {
        &self.nodes
    }

    /// Cordons (`on`) or uncordons `node`; empty when nothing changes.
    pub fn cordon(&mut self, node: NodeId, on: bool, stamp: Hlc) -> DesiredDelta {
        DesiredDelta {
            nodes: self.nodes.cordon(node, on, stamp),
            ..DesiredDelta::default()
        }
    }

    /// Forgets `node` (`on`) and its records up to version `through`, or
    /// takes it back; empty when nothing changes. Use
    /// [`ClusterState::remove_node`](crate::ClusterState::remove_node),
    /// which names the version the caller holds.
    pub fn remove_node(
        &mut self,
        node: NodeId,
        on: bool,
        through: u64,
        stamp: Hlc,
    ) -> DesiredDelta {
        DesiredDelta {
            nodes: self.nodes.remove(node, on, through, stamp),
            ..DesiredDelta::default()
        }
    }

    /// API tokens.
    pub fn tokens(&self) -> &ApiTokens {
        &self.tokens
    }

    /// Creates API token `name` (refused when the name is taken).
    pub fn create_token(
        &mut self,
        name: &str,
        grant: TokenGrant,
        stamp: Hlc,
    ) -> Result<DesiredDelta, StateError> {
        Ok(DesiredDelta {
            tokens: self.tokens.create(name, grant, stamp)?,
            ..DesiredDelta::default()
        })
    }

    /// Revokes API token `name` for good; empty when it already was.
    pub fn revoke_token(&mut self, name: &str, stamp: Hlc) -> Result<DesiredDelta, StateError> {
        Ok(DesiredDelta {
            tokens: self.tokens.revoke(name, stamp)?,
            ..DesiredDelta::default()
        })
    }

    /// The join tokens the cluster admits; `None` until the first rotation.
    pub fn join_secrets(&self) -> &JoinRegister {
        &self.join
    }

    /// Rotates the join token to `new` (`first`: the token the cluster
    /// started with, used when it never rotated); the one current until now
    /// stays admitted for `grace_ms`.
    pub fn rotate_join_token(
        &mut self,
        first: &str,
        new: String,
        now_ms: u64,
        grace_ms: u64,
        stamp: Hlc,
    ) -> DesiredDelta {
        let value = JoinSecrets::rotated(self.join.get(), first, new, now_ms, grace_ms);
        DesiredDelta {
            join: self.join.write(value, stamp),
            ..DesiredDelta::default()
        }
    }

    /// Announces `key` as `node`'s signing key (see
    /// [`NodeDecisions::bind`]); empty when it is bound to it already.
    pub fn bind_key(&mut self, node: NodeId, key: PublicKey, stamp: Hlc) -> DesiredDelta {
        DesiredDelta {
            nodes: self.nodes.bind(node, key, stamp),
            ..DesiredDelta::default()
        }
    }

    /// Join a whole state (a peer's full copy) into this one.
    pub fn merge(&mut self, other: &DesiredState) {
        self.merge_delta(other.to_delta());
    }

    /// Everything, as a delta: what a joining peer pulls.
    pub fn to_delta(&self) -> DesiredDelta {
        DesiredDelta {
            rcs: self
                .rcs
                .iter()
                .map(|(name, record)| (name.clone(), record.get().clone()))
                .collect(),
            nodes: self.nodes.to_delta(),
            services: self
                .services
                .iter()
                .map(|(name, record)| (name.clone(), record.get().clone()))
                .collect(),
            tokens: self.tokens.to_delta(),
            join: self.join.clone(),
        }
    }

    pub(crate) fn live_record(&self, name: &str) -> Result<&RcRecord, StateError> {
        match self.record(name) {
            Some(r) if r.is_live() => Ok(r),
            Some(r) if r.is_deleted() => Err(StateError::DeletedRc {
                name: name.to_owned(),
            }),
            _ => Err(StateError::UnknownRc {
                name: name.to_owned(),
            }),
        }
    }

    /// Merge a local write and hand it back as the delta to gossip.
    pub(crate) fn commit(&mut self, name: &str, write: RcRecord) -> DesiredDelta {
        if write.is_empty() {
            return DesiredDelta::default();
        }
        self.rcs
            .entry(name.to_owned())
            .or_default()
            .get_mut()
            .merge(write.clone());
        DesiredDelta::single(name, write)
    }
}

fn view<'a>(name: &'a str, record: &'a RcRecord) -> Option<RcView<'a>> {
    if record.is_deleted() {
        return None;
    }
    Some(RcView {
        name,
        replicas: record.replicas.as_ref()?.val,
        body: &record.body.as_ref()?.val,
        record,
    })
}
