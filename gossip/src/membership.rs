//! `Membership`: one owner for foca, fed inputs, drained of outputs.
//!
//! Calling order, after every input (`handle_datagram`, `handle_timeout`,
//! `join`, `broadcast`, `leave`): drain [`Membership::poll_output`] until it
//! returns `None`, then ask [`Membership::poll_timeout`] for the one
//! deadline to wake up at. Outputs are datagrams to send and membership
//! events. The timers (foca's and our own) stay here: call
//! [`Membership::handle_timeout`] at or after the deadline and every timer
//! due by then fires in deadline order; calling it early does nothing.
//! Time is a `Duration` since any fixed epoch the driver picks, as with
//! quinn-proto's `poll_timeout` / `handle_timeout`.
//!
//! Beyond foca (see `membership/exchange.rs`): a join is repeated until we
//! are connected and hold a roster; every peer runs a periodic
//! anti-entropy round (`sync.rs`) so that views converge even when a
//! piggybacked update was missed; a prober tells its suspect directly so a
//! live one refutes within a round trip; and suspicion timers of members
//! that refuted are dropped before foca sees them (see
//! `is_stale_suspicion`).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use foca::{Foca, Notification, Runtime, Timer};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use crate::broadcast::{Handler, MAX_BROADCAST_PAYLOAD, Received, WireBroadcast};
use crate::codec::{BincodeCodec, CodecError, MAX_PACKET_SIZE};
use crate::config::Preset;
use crate::envelope::{KIND_DIGEST, KIND_ROSTER, KIND_ROSTER_REQUEST, KIND_SUSPECT, KIND_SWIM};
use crate::identity::PeerIdentity;
use crate::timers::{Scheduled, TimerQueue};
use crate::view::{MemberEntry, MemberState, MemberView};

mod contacts;
mod exchange;

use contacts::Contacts;

/// A roster is accepted from a seed for this long after `join`.
const ROSTER_WINDOW: Duration = Duration::from_secs(10);
/// A requester gets at most one roster per this interval (each request
/// costs up to n/40 datagrams).
const ROSTER_REPLY_INTERVAL: Duration = Duration::from_secs(1);
/// Bound on remembered roster requesters.
const ROSTER_REPLY_MEMORY: usize = 1024;
/// Most roster datagrams one anti-entropy answer sends (about 3.5 KB): after
/// a partition heals every bucket differs, and a few rounds are cheaper
/// than one burst of the whole roster.
const SYNC_MAX_CHUNKS: usize = 3;
/// Anti-entropy datagrams a peer may send per second on average (about
/// 2.3 KB/s), with bursts of [`SYNC_MAX_CHUNKS`]: while many changes are
/// in flight (a join storm, a healed partition) every digest differs, and
/// this keeps anti-entropy within a fixed share of the bandwidth target.
const SYNC_CHUNKS_PER_SECOND: f64 = 2.0;
/// How long the answer to our digest is accepted.
const SYNC_WINDOW: Duration = Duration::from_secs(5);
/// How long a roster's down verdict about a member alive here waits for
/// that member to renew (see `exchange.rs`, `apply_roster`): a few
/// anti-entropy rounds, in which a member declared down by the other side
/// of a healed partition learns it from that side and renews.
const HELD_DOWN_FOR: Duration = Duration::from_secs(5);
/// Bound on held verdicts (one per member at most).
const HELD_DOWNS_MAX: usize = 16_384;

/// Why an input was rejected. Network input never panics: the datagram is
/// dropped, membership state is unaffected unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("empty datagram (dropped)")]
    Empty,
    #[error("datagram of {len} bytes exceeds the {max}-byte limit (dropped)")]
    TooBig { len: usize, max: usize },
    #[error("unknown datagram kind {0:#04x}: peer runs an incompatible Shoal version (dropped)")]
    UnknownKind(u8),
    #[error("roster from {0} arrived without a join in progress towards it (dropped)")]
    UnsolicitedRoster(SocketAddr),
    #[error("malformed roster datagram (dropped): {0}")]
    Roster(#[from] CodecError),
    #[error("malformed member digest of {0} bytes (dropped)")]
    Digest(usize),
    #[error("member digest answer from {0} arrived without our digest towards it (dropped)")]
    UnsolicitedDigest(SocketAddr),
    #[error(
        "broadcast payload of {len} bytes exceeds {max} bytes; split it or send it over a stream"
    )]
    BroadcastTooBig { len: usize, max: usize },
    #[error("could not encode broadcast: {0}")]
    BroadcastEncode(#[from] bincode::error::EncodeError),
    #[error("SWIM rejected the input (state unaffected unless foca says so): {0}")]
    Swim(#[from] foca::Error),
}

/// A membership change or delivery, in the order foca decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member became active (joined, or came back with a new identity).
    Up(PeerIdentity),
    /// A member was declared down (or left).
    Down(PeerIdentity),
    /// `old` was replaced by `new`, same address, newer incarnation.
    Renamed {
        old: PeerIdentity,
        new: PeerIdentity,
    },
    /// Our probe of this member failed: it is suspect and will be declared
    /// down unless it refutes. Raised only by the peer whose probe failed.
    Suspected(PeerIdentity),
    /// We were declared down and renewed our identity to rejoin.
    Rejoined(PeerIdentity),
    /// We see at least one other member.
    Connected,
    /// We see no other member.
    Idle,
    /// Declared down and unable to renew: only a restart brings us back.
    Defunct,
    /// A peer's broadcast payload, once per version.
    Received(Received),
}

/// What the driver must do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` as one datagram to `to`.
    Send {
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    Event(MembershipEvent),
}

/// What this member's SWIM did since it started, for metrics; monotonic.
/// Plain counters: the shell reads them with [`Membership::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Probes of a random member started (foca's probe timer fired).
    pub probes: u64,
    /// Members our own failed probe made suspect.
    pub suspicions: u64,
    /// Suspicions of ourselves we refuted on a prober's direct notice
    /// (refutations foca makes on piggybacked gossip are not seen here).
    pub refutations: u64,
    /// Members we learned were declared down (or left).
    pub downs: u64,
    /// Down verdicts from an anti-entropy roster about members alive here,
    /// held rather than applied (see `exchange.rs`, `apply_roster`).
    pub downs_held: u64,
    /// Of those, verdicts applied when the hold ended with the member
    /// still alive here under the same identity.
    pub held_downs_applied: u64,
}

/// foca's `Runtime`: a buffer emptied after every foca call.
#[derive(Debug, Default)]
struct Outbox {
    sends: Vec<(PeerIdentity, Vec<u8>)>,
    timers: Vec<(Duration, Timer<PeerIdentity>)>,
    events: Vec<MembershipEvent>,
    /// Members our own probe just failed, with the suspected incarnation.
    suspected: Vec<(PeerIdentity, u16)>,
}

impl Runtime<PeerIdentity> for Outbox {
    fn notify(&mut self, notification: Notification<'_, PeerIdentity>) {
        let event = match notification {
            Notification::MemberUp(id) => MembershipEvent::Up(*id),
            Notification::MemberDown(id) => MembershipEvent::Down(*id),
            Notification::Rename(old, new) => MembershipEvent::Renamed {
                old: *old,
                new: *new,
            },
            Notification::Active => MembershipEvent::Connected,
            Notification::Idle => MembershipEvent::Idle,
            Notification::Defunct => MembershipEvent::Defunct,
            Notification::Rejoin(id) => MembershipEvent::Rejoined(*id),
        };
        self.events.push(event);
    }

    fn send_to(&mut self, to: PeerIdentity, data: &[u8]) {
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.push(KIND_SWIM);
        bytes.extend_from_slice(data);
        self.sends.push((to, bytes));
    }

    fn submit_after(&mut self, timer: Timer<PeerIdentity>, after: Duration) {
        // foca schedules this only when its own probe failed.
        if let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = &timer
        {
            self.events.push(MembershipEvent::Suspected(*member_id));
            self.suspected.push((*member_id, *incarnation));
        }
        self.timers.push((after, timer));
    }
}

type Swim = Foca<PeerIdentity, BincodeCodec, Xoshiro256PlusPlus, Handler>;

/// SWIM membership of one peer. See the module docs for the calling order.
#[derive(Debug)]
pub struct Membership {
    foca: Swim,
    outbox: Outbox,
    outputs: VecDeque<Output>,
    timers: TimerQueue,
    broadcasts: Handler,
    preset: Preset,
    /// Cluster-size bucket (power of two) the current config was built for.
    config_bucket: usize,
    /// See [`MemberView::version`].
    version: u64,
    /// Our own broadcast sequence number.
    broadcast_seq: u64,
    /// Seeds we asked for a roster, until when we accept it.
    roster_expected: BTreeMap<SocketAddr, Duration>,
    /// When we last sent a roster to each requester.
    roster_sent: BTreeMap<SocketAddr, Duration>,
    /// Addresses we keep announcing to: `--join` seeds until the join
    /// completes, remembered members until each is seen (see `contacts.rs`).
    contacts: Contacts,
    /// Whether the anti-entropy timer is pending.
    sync_scheduled: bool,
    /// Our digest and the view version it was computed at (recomputing
    /// it walks every member: too slow at 10,000 peers to do each round).
    digest_cache: std::cell::Cell<Option<(u64, crate::sync::Digest)>>,
    /// Token bucket for anti-entropy datagrams: tokens, and when refilled.
    sync_budget: (f64, Duration),
    /// Our own choices (sync partner, jitter), separate from foca's RNG.
    rng: Xoshiro256PlusPlus,
    /// Down verdicts held back from anti-entropy rosters, by identity:
    /// the verdict's incarnation and when it applies if still alive here.
    held_downs: BTreeMap<PeerIdentity, (u16, Duration)>,
    /// Counters for metrics.
    stats: MembershipStats,
}

impl Membership {
    /// A peer that knows nobody yet. `rng_seed` seeds foca's member
    /// selection; give each peer a different one.
    pub fn new(identity: PeerIdentity, preset: Preset, rng_seed: u64) -> Self {
        let broadcasts = Handler::default();
        let foca = Foca::with_custom_broadcast(
            identity,
            preset.config(1),
            Xoshiro256PlusPlus::seed_from_u64(rng_seed),
            BincodeCodec,
            broadcasts.clone(),
        );
        Self {
            foca,
            outbox: Outbox::default(),
            outputs: VecDeque::new(),
            timers: TimerQueue::default(),
            broadcasts,
            preset,
            config_bucket: 1,
            version: 0,
            broadcast_seq: 0,
            roster_expected: BTreeMap::new(),
            roster_sent: BTreeMap::new(),
            contacts: Contacts::default(),
            sync_scheduled: false,
            digest_cache: std::cell::Cell::new(None),
            sync_budget: (SYNC_MAX_CHUNKS as f64, Duration::ZERO),
            rng: Xoshiro256PlusPlus::seed_from_u64(rng_seed ^ 0x5eed_5eed_a11c_e5e5),
            held_downs: BTreeMap::new(),
            stats: MembershipStats::default(),
        }
    }

    /// Our current identity (changes when we renew after a false down).
    pub fn identity(&self) -> PeerIdentity {
        *self.foca.identity()
    }

    /// What SWIM did since start (probes, suspicions, refutations, downs).
    pub fn stats(&self) -> MembershipStats {
        self.stats
    }

    /// Pending outputs; drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the next timer is due: call [`Self::handle_timeout`] then (or
    /// later). `None`: no timer pending. Ask again after every input.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.timers.next_deadline()
    }

    /// Learns `members` as alive without telling anyone: to start from a
    /// persisted member list, or to build a formed cluster in a simulation.
    pub fn restore_members(
        &mut self,
        now: Duration,
        members: impl IntoIterator<Item = PeerIdentity>,
    ) -> Result<(), MembershipError> {
        let me = self.identity().addr;
        let updates = members
            .into_iter()
            .filter(|m| m.addr != me)
            .map(foca::Member::alive);
        let result = self.foca.apply_many(updates, false, &mut self.outbox);
        self.flush(now);
        Ok(result?)
    }

    /// Feeds one datagram received from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), MembershipError> {
        if bytes.len() > MAX_PACKET_SIZE {
            return Err(MembershipError::TooBig {
                len: bytes.len(),
                max: MAX_PACKET_SIZE,
            });
        }
        let (&kind, body) = bytes.split_first().ok_or(MembershipError::Empty)?;
        let result = match kind {
            KIND_SWIM => self
                .foca
                .handle_data(body, &mut self.outbox)
                .map_err(MembershipError::from),
            KIND_ROSTER_REQUEST => self.answer_roster_request(now, from),
            KIND_ROSTER => self.apply_roster(now, from, body),
            KIND_DIGEST => self.answer_digest(now, from, body),
            KIND_SUSPECT => self.refute(from, body),
            other => Err(MembershipError::UnknownKind(other)),
        };
        self.flush(now);
        result
    }

    /// Fires every timer due at `now`, in deadline order (none early).
    pub fn handle_timeout(&mut self, now: Duration) -> Result<(), MembershipError> {
        let mut first_error = None;
        while let Some(due) = self.timers.pop_due(now) {
            self.stats.probes +=
                u64::from(matches!(due, Scheduled::Foca(Timer::ProbeRandomMember(_))));
            let result = match due {
                Scheduled::Foca(t) if self.is_stale_suspicion(&t) => Ok(()),
                Scheduled::Foca(t) => self
                    .foca
                    .handle_timer(t, &mut self.outbox)
                    .map_err(MembershipError::from),
                Scheduled::JoinRetry => self.contact_round(now),
                Scheduled::Sync => self.sync_round(now),
                Scheduled::SuspectNotice {
                    suspect,
                    incarnation,
                } => self.notify_suspect(now, suspect, incarnation, false),
                Scheduled::HeldDowns => self.apply_held_downs(now),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
            self.flush(now);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A suspicion timer for a member that refuted (or was renamed, or is
    /// already down) since. Dropped before foca sees it: foca 2.0.0 leaves
    /// the member alone in that case but still sends it `TurnUndead`, which
    /// makes a live, refuted peer renew its identity and the whole cluster
    /// see it go down and come back (the false downs seen under loss).
    fn is_stale_suspicion(&self, timer: &Timer<PeerIdentity>) -> bool {
        let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = timer
        else {
            return false;
        };
        !self.foca.iter_membership_state().any(|m| {
            m.id() == member_id
                && m.state() == foca::State::Suspect
                && m.incarnation() == *incarnation
        })
    }

    /// Spreads `payload` to every peer, piggybacked on SWIM traffic. A later
    /// call with the same `key` supersedes this one (peers that have not
    /// seen this version yet will only get the newer one).
    pub fn broadcast(
        &mut self,
        now: Duration,
        key: u64,
        payload: Vec<u8>,
    ) -> Result<(), MembershipError> {
        if payload.len() > MAX_BROADCAST_PAYLOAD {
            return Err(MembershipError::BroadcastTooBig {
                len: payload.len(),
                max: MAX_BROADCAST_PAYLOAD,
            });
        }
        self.broadcast_seq += 1;
        let me = self.identity();
        let item = WireBroadcast {
            origin: me.node,
            key,
            version: (me.incarnation, self.broadcast_seq),
            payload,
        };
        let data = item.encode()?;
        self.foca.add_broadcast(&data)?;
        let result = self.foca.broadcast(&mut self.outbox);
        self.flush(now);
        Ok(result?)
    }

    /// Leaves gracefully: tells a few members we are down, then goes quiet.
    pub fn leave(&mut self, now: Duration) -> Result<(), MembershipError> {
        let result = self.foca.leave_cluster(&mut self.outbox);
        self.flush(now);
        Ok(result?)
    }

    /// The sorted member view, ourselves included as alive.
    pub fn view(&self) -> MemberView {
        let mut members: Vec<MemberEntry> = self
            .foca
            .iter_membership_state()
            .map(|m| MemberEntry {
                identity: *m.id(),
                state: MemberState::from_foca(m.state()),
                swim_incarnation: m.incarnation(),
            })
            .collect();
        members.push(MemberEntry {
            identity: self.identity(),
            state: MemberState::Alive,
            swim_incarnation: 0,
        });
        members.sort_by_key(|m| m.identity);
        MemberView {
            version: self.version,
            members,
        }
    }

    /// Identities SWIM counts in (alive or suspect), ourselves included.
    /// Cheaper than [`Self::view`] when only the active set matters.
    pub fn active_identities(&self) -> Vec<PeerIdentity> {
        let mut ids: Vec<PeerIdentity> = self.foca.iter_members().map(|m| *m.id()).collect();
        ids.push(self.identity());
        ids.sort();
        ids
    }

    /// See [`MemberView::version`].
    pub fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn schedule(&mut self, at: Duration, what: Scheduled) {
        self.timers.schedule(at, what);
    }

    /// Moves foca's buffered outputs into the output queue, and rescales
    /// the config when the cluster crossed a power-of-two size.
    fn flush(&mut self, now: Duration) {
        for (to, bytes) in self.outbox.sends.drain(..) {
            self.outputs.push_back(Output::Send { to: to.addr, bytes });
        }
        let suspected: Vec<_> = self.outbox.suspected.drain(..).collect();
        self.stats.suspicions += suspected.len() as u64;
        for (suspect, incarnation) in suspected {
            // A notice that cannot be encoded only loses the shortcut.
            let _ = self.notify_suspect(now, suspect, incarnation, true);
        }
        let timers: Vec<_> = self.outbox.timers.drain(..).collect();
        for (after, timer) in timers {
            self.schedule(now + after, Scheduled::Foca(timer));
        }
        if !self.sync_scheduled && self.foca.iter_membership_state().len() > 0 {
            self.schedule_sync(now);
        }
        for event in self.outbox.events.drain(..) {
            self.stats.downs += u64::from(matches!(event, MembershipEvent::Down(_)));
            if matches!(
                event,
                MembershipEvent::Up(_)
                    | MembershipEvent::Down(_)
                    | MembershipEvent::Renamed { .. }
                    | MembershipEvent::Suspected(_)
                    | MembershipEvent::Rejoined(_)
            ) {
                self.version += 1;
            }
            self.outputs.push_back(Output::Event(event));
        }
        let received: Vec<Received> = self.broadcasts.book().received.drain(..).collect();
        for r in received {
            self.outputs
                .push_back(Output::Event(MembershipEvent::Received(r)));
        }
        let bucket = (self.foca.num_members() + 1).next_power_of_two();
        if bucket != self.config_bucket {
            // Only size-derived fields change, which foca always accepts.
            if self.foca.set_config(self.preset.config(bucket)).is_ok() {
                self.config_bucket = bucket;
            }
        }
    }
}
