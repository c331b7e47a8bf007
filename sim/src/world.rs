//! The world: nodes at addresses, the network between them, one event
//! queue, one seeded RNG, and a running hash of everything that happened.
//! Virtual time jumps from one event to the next; no thread, no tokio.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::net::{Fate, Network};
use crate::node::{NodeOutput, SimNode};
use crate::queue::{EventQueue, Micros};

/// Index of a node slot; a slot keeps its address across restarts.
pub type Slot = usize;

enum Ev {
    /// A datagram arrives at whatever process holds `to` by then.
    Deliver {
        to: Slot,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// A reliable message between two process lifetimes: dropped if either
    /// end restarted meanwhile (the stream would have broken).
    Message {
        to: Slot,
        to_life: u32,
        from: SocketAddr,
        from_slot: Slot,
        from_life: u32,
        bytes: Vec<u8>,
    },
    /// A wake-up for the timers of one process lifetime (`life`) due by
    /// then: dropped after a restart.
    Timer { slot: Slot, life: u32 },
}

/// Traffic counters, for the report.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub delivered: u64,
    pub lost: u64,
    pub partitioned: u64,
    pub too_big: u64,
    pub duplicated: u64,
    /// Arrived at an address with no running process.
    pub undeliverable: u64,
    /// Reliable messages (sync streams) sent, their bytes, and those a
    /// partition or a restart broke.
    pub messages_sent: u64,
    pub message_bytes: u64,
    pub messages_broken: u64,
}

struct SlotState<N> {
    addr: SocketAddr,
    node: Option<N>,
    life: u32,
    /// Times a wake-up is queued for this lifetime: one per distinct
    /// deadline the node reported, so its next timer always has one.
    wake_ups: BTreeSet<Micros>,
    /// In `World::touched` already.
    touched: bool,
}

/// The simulated world of nodes of type `N`.
pub struct World<N: SimNode> {
    now: Micros,
    queue: EventQueue<Ev>,
    pub net: Network,
    pub rng: Xoshiro256PlusPlus,
    slots: Vec<SlotState<N>>,
    by_addr: BTreeMap<SocketAddr, Slot>,
    pub traffic: Traffic,
    trace: Xxh3,
    events_processed: u64,
    outputs: Vec<NodeOutput<N::Event>>,
    /// Last scheduled arrival of a reliable message per (from, to) slot
    /// pair: later messages never overtake it (in-order streams).
    message_tail: BTreeMap<(Slot, Slot), Micros>,
    /// Slots whose process was given an input, started or crashed since
    /// the last `take_touched`: a check run after every instant recounts
    /// only those (at most one entry per slot, however long nobody asks).
    touched: Vec<Slot>,
    /// Transfer time per KiB of a reliable message, on top of the latency
    /// (default 10 µs: about 800 Mbit/s).
    pub message_us_per_kib: Micros,
}

impl<N: SimNode> std::fmt::Debug for World<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("slots", &self.slots.len())
            .field("queue", &self.queue)
            .finish()
    }
}

impl<N: SimNode> World<N> {
    pub fn new(net: Network, seed: u64) -> Self {
        Self {
            now: 0,
            queue: EventQueue::default(),
            net,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            slots: Vec::new(),
            by_addr: BTreeMap::new(),
            traffic: Traffic::default(),
            trace: Xxh3::new(),
            events_processed: 0,
            outputs: Vec::new(),
            message_tail: BTreeMap::new(),
            touched: Vec::new(),
            message_us_per_kib: 10,
        }
    }

    pub fn now(&self) -> Micros {
        self.now
    }

    /// Registers an (empty) slot at `addr`.
    pub fn add_slot(&mut self, addr: SocketAddr) -> Slot {
        let slot = self.slots.len();
        self.slots.push(SlotState {
            addr,
            node: None,
            life: 0,
            wake_ups: BTreeSet::new(),
            touched: false,
        });
        self.by_addr.insert(addr, slot);
        slot
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub fn addr(&self, slot: Slot) -> SocketAddr {
        self.slots[slot].addr
    }

    pub fn slot_of(&self, addr: &SocketAddr) -> Option<Slot> {
        self.by_addr.get(addr).copied()
    }

    /// Starts a process in `slot` (a new lifetime: older timers are void).
    pub fn start(&mut self, slot: Slot, node: N) {
        let s = &mut self.slots[slot];
        s.life += 1;
        s.node = Some(node);
        s.wake_ups.clear();
        self.touch(slot);
        self.trace.update(b"S");
        self.trace.update(&(slot as u64).to_le_bytes());
    }

    /// Kills the process in `slot`; its in-flight datagrams are dropped on
    /// arrival, its timers never fire.
    pub fn crash(&mut self, slot: Slot) -> Option<N> {
        self.trace.update(b"C");
        self.trace.update(&(slot as u64).to_le_bytes());
        self.touch(slot);
        self.slots[slot].node.take()
    }

    fn touch(&mut self, slot: Slot) {
        let s = &mut self.slots[slot];
        if !s.touched {
            s.touched = true;
            self.touched.push(slot);
        }
    }

    /// Moves into `into` (cleared first) the slots whose node may have
    /// changed since the last call: every input, start and crash touches
    /// its slot. The first call returns every slot started so far.
    pub fn take_touched(&mut self, into: &mut Vec<Slot>) {
        into.clear();
        std::mem::swap(into, &mut self.touched);
        for &slot in into.iter() {
            self.slots[slot].touched = false;
        }
    }

    pub fn node(&self, slot: Slot) -> Option<&N> {
        self.slots[slot].node.as_ref()
    }

    /// Gives a node an input from outside (a scenario step), then drains it.
    pub fn with_node<R>(
        &mut self,
        slot: Slot,
        on_event: &mut impl FnMut(Micros, Slot, N::Event),
        f: impl FnOnce(&mut N, Micros) -> R,
    ) -> Option<R> {
        let now = self.now;
        let node = self.slots[slot].node.as_mut()?;
        let r = f(node, now);
        self.drain(slot, on_event);
        Some(r)
    }

    /// A hash of every event processed so far: same seed, same hash.
    pub fn trace_hash(&self) -> u64 {
        self.trace.digest()
    }

    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// When the next queued event is due, if any.
    pub fn next_event_at(&self) -> Option<Micros> {
        self.queue.peek_time()
    }

    /// Processes events up to and including time `until`, then sets the
    /// clock to `until`.
    pub fn run_until(&mut self, until: Micros, on_event: &mut impl FnMut(Micros, Slot, N::Event)) {
        while let Some(at) = self.queue.peek_time() {
            if at > until {
                break;
            }
            let Some((at, ev)) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.events_processed += 1;
            match ev {
                Ev::Deliver { to, from, bytes } => {
                    self.trace.update(&at.to_le_bytes());
                    self.trace.update(&(to as u64).to_le_bytes());
                    self.trace.update(&xxh3_64(&bytes).to_le_bytes());
                    let Some(node) = self.slots[to].node.as_mut() else {
                        self.traffic.undeliverable += 1;
                        continue;
                    };
                    self.traffic.delivered += 1;
                    node.handle_datagram(at, from, &bytes);
                    self.drain(to, on_event);
                }
                Ev::Message {
                    to,
                    to_life,
                    from,
                    from_slot,
                    from_life,
                    bytes,
                } => {
                    self.trace.update(b"M");
                    self.trace.update(&at.to_le_bytes());
                    self.trace.update(&(to as u64).to_le_bytes());
                    self.trace.update(&xxh3_64(&bytes).to_le_bytes());
                    if self.slots[to].life != to_life || self.slots[from_slot].life != from_life {
                        self.traffic.messages_broken += 1;
                        continue;
                    }
                    let Some(node) = self.slots[to].node.as_mut() else {
                        self.traffic.messages_broken += 1;
                        continue;
                    };
                    node.handle_message(at, from, &bytes);
                    self.drain(to, on_event);
                }
                Ev::Timer { slot, life } => {
                    let s = &mut self.slots[slot];
                    if s.life != life {
                        continue;
                    }
                    s.wake_ups.remove(&at);
                    let Some(node) = s.node.as_mut() else {
                        continue;
                    };
                    self.trace.update(b"T");
                    self.trace.update(&at.to_le_bytes());
                    self.trace.update(&(slot as u64).to_le_bytes());
                    node.handle_timeout(at);
                    self.drain(slot, on_event);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Carries out a node's outputs, and queues a wake-up for its next
    /// deadline unless one is queued for that time already.
    fn drain(&mut self, slot: Slot, on_event: &mut impl FnMut(Micros, Slot, N::Event)) {
        // Every input to a node ends here: the one place to note it.
        self.touch(slot);
        let mut outputs = std::mem::take(&mut self.outputs);
        let s = &mut self.slots[slot];
        if let Some(node) = s.node.as_mut() {
            node.drain(&mut outputs);
            if let Some(at) = node.poll_timeout() {
                let at = at.max(self.now);
                if s.wake_ups.insert(at) {
                    let life = s.life;
                    self.queue.push(at, Ev::Timer { slot, life });
                }
            }
        }
        let from = self.slots[slot].addr;
        for out in outputs.drain(..) {
            match out {
                NodeOutput::Send { to, bytes } => self.send(from, to, bytes),
                NodeOutput::Message { to, bytes } => self.send_message(slot, to, bytes),
                NodeOutput::Event(e) => on_event(self.now, slot, e),
            }
        }
        self.outputs = outputs;
    }

    /// Schedules a reliable message: latency plus transfer time, never
    /// before the previous message of the same pair.
    fn send_message(&mut self, from_slot: Slot, to: SocketAddr, bytes: Vec<u8>) {
        self.traffic.messages_sent += 1;
        self.traffic.message_bytes += bytes.len() as u64;
        let from = self.slots[from_slot].addr;
        let Some(to_slot) = self.slot_of(&to) else {
            self.traffic.messages_broken += 1;
            return;
        };
        if !self.net.connected(from, to) || self.slots[to_slot].node.is_none() {
            self.traffic.messages_broken += 1;
            return;
        }
        let transfer = (bytes.len() as u64 / 1024) * self.message_us_per_kib;
        let mut at = self.now + self.net.latency(&mut self.rng) + transfer;
        let tail = self.message_tail.entry((from_slot, to_slot)).or_insert(0);
        at = at.max(*tail);
        *tail = at;
        self.queue.push(
            at,
            Ev::Message {
                to: to_slot,
                to_life: self.slots[to_slot].life,
                from,
                from_slot,
                from_life: self.slots[from_slot].life,
                bytes,
            },
        );
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.traffic.datagrams_sent += 1;
        self.traffic.bytes_sent += bytes.len() as u64;
        let Some(to_slot) = self.slot_of(&to) else {
            self.traffic.undeliverable += 1;
            return;
        };
        match self.net.route(&mut self.rng, from, to, bytes.len()) {
            Fate::Delivered(delays) => {
                if delays.len() > 1 {
                    self.traffic.duplicated += 1;
                }
                let last = delays.len() - 1;
                let mut bytes = Some(bytes);
                for (i, d) in delays.into_iter().enumerate() {
                    let payload = if i == last {
                        bytes.take().unwrap_or_default()
                    } else {
                        bytes.clone().unwrap_or_default()
                    };
                    self.queue.push(
                        self.now + d,
                        Ev::Deliver {
                            to: to_slot,
                            from,
                            bytes: payload,
                        },
                    );
                }
            }
            Fate::Lost => self.traffic.lost += 1,
            Fate::Partitioned => self.traffic.partitioned += 1,
            Fate::TooBig => self.traffic.too_big += 1,
        }
    }
}
