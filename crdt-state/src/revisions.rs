//! Rollout revisions: numbers every peer agrees on, and the commands that
//! move between them (undo, restart, pause, resume).
//!
//! **Numbers.** Each body write carries the number its writer gave the
//! template ([`RcBody::revision`](crate::desired::RcBody)): the newest
//! number it knew plus one when the template changes, the same number when
//! only the strategy changes. Read back, the record's revisions (history
//! oldest first, then the current body) are numbered by [`numbered`]:
//!
//! - consecutive writes with the same template and the same stored number
//!   are one revision (a strategy-only change, or the same image rolled out
//!   on both sides of a partition);
//! - otherwise a revision's number is its stored number, raised to one more
//!   than the revision before it if needed. Two writes made concurrently on
//!   two peers both store `n + 1`; after they merge, the later (by stamp)
//!   reads `n + 2` on every peer.
//!
//! The numbering depends only on the record, which converges, so every peer
//! shows the same numbers once it has the same writes; numbers are stored,
//! so they stay put when the bounded history drops its oldest entries.
//! Only a write made concurrently elsewhere can shift a number, once.

use crate::desired::{DesiredDelta, DesiredState, RcRecord};
use crate::error::StateError;
use crate::hlc::Hlc;
use crate::register;
use crate::spec::PodTemplate;

/// The template label `rollout restart` writes, so the template (and its
/// hash) changes while every image stays: kubectl's `restartedAt`.
pub const RESTARTED_AT: &str = "shoal.io/restarted-at";

/// One revision of an RC's template, as users see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedRevision<'a> {
    pub number: u64,
    /// When this template was first written.
    pub written: Hlc,
    pub template: &'a PodTemplate,
    /// The template the RC runs now.
    pub current: bool,
}

/// The record's revisions, oldest first; the last is the current one.
pub fn numbered(record: &RcRecord) -> Vec<NumberedRevision<'_>> {
    let history = record
        .history
        .iter()
        .rev()
        .map(|r| (r.stamp, &r.template, r.revision, false));
    let current = record
        .body
        .as_ref()
        .map(|b| (b.marker, &b.val.template, b.val.revision, true));
    let mut out: Vec<NumberedRevision<'_>> = Vec::new();
    let mut previous_stored = None;
    for (stamp, template, stored, is_current) in history.chain(current) {
        if let Some(last) = out.last_mut()
            && previous_stored == Some(stored)
            && last.template == template
        {
            last.current |= is_current;
            previous_stored = Some(stored);
            continue;
        }
        let floor = out.last().map_or(1, |r| r.number + 1);
        out.push(NumberedRevision {
            number: stored.max(floor),
            written: stamp,
            template,
            current: is_current,
        });
        previous_stored = Some(stored);
    }
    out
}

/// The number a write of `template` gets: the current one when the
/// template stays, one more than the newest otherwise.
pub(crate) fn next_number(record: &RcRecord, template: &PodTemplate) -> u64 {
    let revisions = numbered(record);
    match revisions.last() {
        Some(last) if last.template == template => last.number,
        Some(last) => last.number + 1,
        None => 1,
    }
}

/// What `undo` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undo {
    pub delta: DesiredDelta,
    /// The revision whose template is now desired again.
    pub to: u64,
    /// The number the rollout back got (a new revision, as kubectl does).
    pub new_revision: u64,
}

impl DesiredState {
    /// Writes the template of revision `to` (the one before the current
    /// one when `None`) as the new desired template: a rollout like any other.
    pub fn undo(&mut self, name: &str, to: Option<u64>, stamp: Hlc) -> Result<Undo, StateError> {
        let record = self.live_record(name)?;
        let revisions = numbered(record);
        let current = revisions.last().map_or(0, |r| r.number);
        let target = match to {
            Some(n) => revisions.iter().find(|r| r.number == n).ok_or_else(|| {
                StateError::UnknownRevision {
                    name: name.to_owned(),
                    revision: n,
                    known: revisions.iter().map(|r| r.number).collect(),
                }
            })?,
            None => revisions
                .iter()
                .rev()
                .nth(1)
                .ok_or_else(|| StateError::NoEarlierRevision {
                    name: name.to_owned(),
                })?,
        };
        let to = target.number;
        let template = target.template.clone();
        if revisions.last().is_some_and(|r| *r.template == template) {
            return Err(StateError::AlreadyAtRevision {
                name: name.to_owned(),
                revision: to,
                current,
            });
        }
        let delta = self.set_template(name, template, stamp)?;
        let new_revision = self
            .record(name)
            .and_then(|r| numbered(r).last().map(|r| r.number))
            .unwrap_or(current + 1);
        Ok(Undo {
            delta,
            to,
            new_revision,
        })
    }

    /// New pods with the same images: the template gets the
    /// [`RESTARTED_AT`] label set to `at` (any label value; the caller
    /// passes the time), so its hash changes and every replica rolls.
    pub fn restart(
        &mut self,
        name: &str,
        at: &str,
        stamp: Hlc,
    ) -> Result<DesiredDelta, StateError> {
        let record = self.live_record(name)?;
        let Some(body) = record.body.as_ref() else {
            return Err(StateError::UnknownRc {
                name: name.to_owned(),
            });
        };
        let mut template = body.val.template.clone();
        template
            .labels
            .insert(RESTARTED_AT.to_owned(), at.to_owned());
        self.set_template(name, template, stamp)
    }

    /// Pauses (`paused`) or resumes the rollout of a live RC. Refused when
    /// it already is in that state, so the user learns it.
    pub fn set_paused(
        &mut self,
        name: &str,
        paused: bool,
        stamp: Hlc,
    ) -> Result<DesiredDelta, StateError> {
        let record = self.live_record(name)?;
        if record.is_paused() == paused {
            return Err(if paused {
                StateError::AlreadyPaused {
                    name: name.to_owned(),
                }
            } else {
                StateError::NotPaused {
                    name: name.to_owned(),
                }
            });
        }
        let write = RcRecord {
            paused: Some(register::write(paused, stamp)),
            ..RcRecord::default()
        };
        Ok(self.commit(name, write))
    }
}
