//! The placement function: multi-probe consistent hashing with bounded
//! loads (issue #15; before it, rendezvous hashing over every node).
//!
//! Each replica walks the usable nodes nearest first: the order of the
//! `ring` module, where a node's distance is the clockwise distance on the
//! 64-bit circle from the nearest of the replica's [`PROBES`] probe points
//! before its key. The replica goes to the first node that passes the hard
//! checks (cpu, memory, host ports — after what this assignment already put
//! there, and host ports the node's pods hold, see
//! [`inputs`](mod@super::inputs)) and, preferably, two soft ones:
//!
//! 1. **spread**: no other replica of the same RC is there yet;
//! 2. **bounded load**: the node holds fewer than
//!    about `total replicas × (1 + ε) / usable nodes` replicas (its own
//!    bound is that number rounded down or up, see [`LoadCap`]).
//!
//! The tiers rank (spread and bound, spread only, bound only, neither): one
//! walk stops at the first node passing all, else takes the first node of
//! the best tier it met, so replicas stack on a node only when an RC has
//! more replicas than nodes that can take them, and the bound yields rather
//! than leave a replica unplaced. The walk stops early only when what is
//! left cannot change the answer (see [`choose`]), so a walk that finds
//! nothing has ruled out every candidate, and `explain` then charges every
//! node exactly as before.
//!
//! **Why disruption stays minimal.** A node's distance depends only on the
//! replica and that node, never on the other nodes, so a join ranks the new
//! node somewhere in every replica's order and leaves the others' order
//! alone; only replicas for which it comes first move (plus the bounded-load
//! cascade below). No candidate set shrinks as the cluster grows (no fixed
//! successor count, no arc width tied to N): those would make each join
//! also evict candidates. Nodes matching a nodeSelector get their own ring,
//! built once per distinct selector, with the same distances.
//!
//! **Probes.** With one probe a node's share is the arc before it, which
//! varies like an exponential variable: many nodes hit the bound and every
//! join or leave cascades. More probes average the arcs (Appleton &
//! O'Reilly, 2015); the cost is one hash and one binary search per probe
//! per replica, and a merge step over the probes per node visited.
//! Measured by the bench (moved/ideal: 1,000 RCs × 10 over 1,000 nodes, 16
//! seeds; time: 1,000,000 replicas over 10,000 nodes, one run; on 2 cores
//! shared with other builds, so times are noisy):
//!
//! | probes | join | leave | 1M × 10k time | max load (mean 100) |
//! |-------:|-----:|------:|--------------:|--------------------:|
//! | 1      | 2.88 | 6.35  | 2.4 s         | 175                 |
//! | 2      | 1.73 | 2.15  | 2.2 s         | 175                 |
//! | 4      | 1.24 | 1.23  | 2.5 s         | 173                 |
//! | 9      | 1.10 | 1.08  | 2.6 s         | 163                 |
//! | 16     | 1.11 | 1.05  | 3.1 s         | 148                 |
//! | 21     | 1.01 | 1.08  | 3.3 s         | 153                 |
//! | 32     | 1.04 | 1.04  | 3.9 s         | 142                 |
//!
//! From 9 probes on, moved/ideal is within seed noise; 16 keeps the busiest
//! node furthest below the bound short of 32, whose time grows.
//!
//! **Against the old placement** (same bench, same clusters, run
//! 2026-12-04, load average 3–5 on 2 cores): at 1,000 nodes × 10,000
//! replicas one assignment takes 12 ms against 19 ms; at 100 nodes the old
//! scan is faster, 4 ms against 13 ms (each replica pays its probes
//! whatever the cluster size). Disruption is not better: a join at 1,000
//! nodes moves 1.11 × the ideal against 1.01 for the old placement (a
//! leave: 1.05 against 1.09). 1,000,000 replicas over 10,000 nodes: 3.6 s
//! against 18 s, join 1.02 and leave 1.00 × the ideal (8 seeds). A full
//! cluster (requests = capacity, 1,000 nodes): 10 ms against 58 ms.
//! `benchmarks/placement.md` has the full output.
//!
//! **ε = 3/4.** Unbounded hashing puts Poisson-like load on nodes: at 10
//! replicas per node over 1,000 nodes the busiest node gets about twice the
//! mean. The bound caps it at 1.75 × mean. A smaller ε spreads more evenly
//! but saturates more nodes, and every saturated node turns a join or leave
//! into a chain of moves (a replica that lands on a node may push out one
//! that came later in the order, which then lands elsewhere, ...). Measured
//! with the old rendezvous placement (moved/ideal at 1,000 nodes × 10,000
//! replicas, 8 seeds; an earlier experiment, not in the bench):
//! ε = 1/2: 1.23 join, 1.26 leave; 3/4: 1.11, 1.04; 1: 1.11, 1.02. What
//! remains at large ε comes from the spread rule: when two replicas of an
//! RC prefer the same node, the later one takes its next choice, and a join
//! or leave that separates them sends it back — one extra move.
//!
//! **Order.** Replicas are processed index-major: every RC's replica 0 (RCs
//! in name order), then every replica 1, and so on. Under the load bound,
//! earlier replicas win contested slots, so scaling an RC up or down touches
//! only the highest indices and leaves the low ones — which exist in every
//! version of the RC — where they were. The order cannot take a host port
//! from a pod that runs: ports held on a node are taken before the first
//! replica is placed, and only their holder may be placed there again.
//!
//! **Cost.** Per replica: [`PROBES`] hashes, a sort of them, one binary
//! search each in the ring, then a few steps of the walk while nodes are
//! below their bound — independent of the number of nodes except for the
//! logarithm of the searches. Sorting the ring is once per assignment.
//! The slow path — no node passes spread and bound — costs O(log P) per
//! node visited; it ends as soon as no node left can be in a better tier,
//! and a replica whose cpu or memory no node has left skips it. What it
//! cannot cut short: a replica whose only fitting nodes are far down its
//! order (a nearly full cluster) still walks to them.

use std::collections::{BTreeMap, BTreeSet};

use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{Labels, RcSpec, Resources};

use super::assignment::Assignment;
use super::hash::{node_key, rc_key, replica_seed};
use super::inputs::{HostPort, NodeCandidate};
use super::ring::Ring;
use super::room::MostFree;
use super::unplaced::{NodeRejection, Unplaced};

/// ε of the load bound, as a fraction: bound ≈ mean × (1 + NUM/DEN).
pub const LOAD_SLACK_NUM: u64 = 3;
pub const LOAD_SLACK_DEN: u64 = 4;

/// Probe points per replica (see `ring`): chosen by the bench.
pub const PROBES: usize = 16;

/// Per-node capacity left while the assignment is being built.
struct Slot<'a> {
    id: NodeId,
    /// [`node_key`] of `id`.
    key: u64,
    /// This node's load bound (see [`LoadCap`]).
    cap: u64,
    info: &'a NodeInfo,
    free: Resources,
    /// Host ports taken: held by the pods the node reports, then given to
    /// the replicas this assignment places there.
    ports: Vec<PortUse<'a>>,
    load: u64,
}

/// What the walks need to know about all slots at once, to stop early.
struct Tally {
    /// Slots whose load is below their bound.
    below_bound: usize,
    most_free: MostFree,
}

/// A host port taken on a node, and by which replica.
#[derive(Debug, Clone, Copy)]
struct PortUse<'a> {
    port: HostPort,
    rc: &'a str,
    index: u32,
}

impl PortUse<'_> {
    /// Taken by another pod than replica `index` of `rc`: a replica may
    /// keep the port it already holds.
    fn blocks(&self, rc: &str, index: u32) -> bool {
        self.index != index || self.rc != rc
    }
}

/// What every replica of one RC needs, computed once per RC.
struct RcNeeds<'a> {
    spec: &'a RcSpec,
    request: Resources,
    ports: Vec<HostPort>,
    /// [`rc_key`] of the name.
    key: u64,
    /// Index in the rings of the one holding the slots whose labels match
    /// the nodeSelector (ring 0: every slot, for an empty selector).
    ring: usize,
    /// Slots that already hold a replica of this RC (spread check), sorted,
    /// each once.
    used: Vec<usize>,
}

/// Where each replica of `rcs` runs, given `nodes`. Pure and deterministic:
/// the map orders fix the iteration order and the weights are fixed hashes,
/// so every peer with the same view computes the same assignment.
pub fn assign(
    rcs: &BTreeMap<String, RcSpec>,
    nodes: &BTreeMap<NodeId, NodeCandidate>,
) -> Assignment {
    assign_with_probes(rcs, nodes, PROBES)
}

/// [`assign`] with another probe count (clamped to 1..=32), for the bench
/// that chose [`PROBES`]. Peers use [`assign`]: the count is part of the
/// cluster contract.
pub fn assign_with_probes(
    rcs: &BTreeMap<String, RcSpec>,
    nodes: &BTreeMap<NodeId, NodeCandidate>,
    probes: usize,
) -> Assignment {
    let mut slots: Vec<Slot<'_>> = nodes
        .iter()
        .filter(|(_, c)| c.alive && !c.cordoned && c.info.runtime_healthy)
        .map(|(id, c)| Slot {
            id: *id,
            key: node_key(*id),
            cap: 0,
            info: &c.info,
            free: c.info.allocatable,
            ports: c
                .held_ports
                .iter()
                .map(|h| PortUse {
                    port: h.port,
                    rc: &h.holder.rc,
                    index: h.holder.index,
                })
                .collect(),
            load: 0,
        })
        .collect();
    let mut assignment = Assignment::new(slots.iter().map(|s| s.id).collect());

    let total: u64 = rcs.values().map(|r| u64::from(r.replicas)).sum();
    let cap = LoadCap::new(total, slots.len());
    for slot in &mut slots {
        slot.cap = cap.of(slot.key);
    }
    let mut tally = Tally {
        below_bound: slots.len(),
        most_free: MostFree::new(slots.iter().map(|s| s.free)),
    };

    let keys: Vec<u64> = slots.iter().map(|s| s.key).collect();
    // One ring per distinct nodeSelector, built once.
    let mut rings = vec![Ring::new(&keys, 0..slots.len())];
    let mut ring_of: BTreeMap<&Labels, usize> = BTreeMap::new();
    let mut needs: Vec<RcNeeds<'_>> = rcs
        .values()
        .map(|spec| {
            let mut ports: Vec<HostPort> = spec
                .template
                .host_ports()
                .map(|(port, protocol)| HostPort { port, protocol })
                .collect();
            ports.sort_unstable();
            ports.dedup();
            let selector = &spec.template.node_selector;
            RcNeeds {
                spec,
                request: spec.template.requests(),
                ports,
                key: rc_key(&spec.name),
                ring: if selector.is_empty() {
                    0
                } else {
                    *ring_of.entry(selector).or_insert_with(|| {
                        let matching = (0..slots.len())
                            .filter(|s| selector_matches(selector, &slots[*s].info.labels));
                        rings.push(Ring::new(&keys, matching));
                        rings.len() - 1
                    })
                },
                used: Vec::new(),
            }
        })
        .collect();

    let mut active: Vec<usize> = (0..needs.len()).collect();
    let mut index: u32 = 0;
    loop {
        active.retain(|r| index < needs[*r].spec.replicas);
        if active.is_empty() {
            break;
        }
        for &r in &active {
            let need = &mut needs[r];
            let pod = PodId {
                rc: need.spec.name.clone(),
                index,
            };
            match choose(need, &slots, &tally, &rings[need.ring], index, probes) {
                Some(s) => {
                    take(need, &mut slots[s], s, index, &mut tally);
                    assignment.place(pod, slots[s].id);
                }
                None => {
                    let why = explain(need, index, &slots, nodes);
                    assignment.unplaced.insert(pod, why);
                }
            }
        }
        index = index.saturating_add(1);
        if index == u32::MAX {
            break;
        }
    }
    place_surge(
        &mut needs,
        &mut slots,
        &mut tally,
        &rings,
        probes,
        &mut assignment,
    );
    assignment.seal()
}

/// Charges replica `index` of `need` to `slot` (number `s`).
fn take<'a>(need: &mut RcNeeds<'a>, slot: &mut Slot<'a>, s: usize, index: u32, tally: &mut Tally) {
    slot.free = slot.free.saturating_sub(&need.request);
    tally.most_free.set(s, slot.free);
    if slot.load + 1 == slot.cap {
        tally.below_bound -= 1;
    }
    slot.ports.extend(need.ports.iter().map(|&port| PortUse {
        port,
        rc: &need.spec.name,
        index,
    }));
    slot.load += 1;
    if let Err(at) = need.used.binary_search(&s) {
        need.used.insert(at, s);
    }
}

/// Surge slots `replicas..replicas + surge` of every RC, after all
/// replicas: they take only what is left and never move a replica. Their
/// weights are those replica `replicas + k` would have, so a scale-up
/// during a rollout finds the surge pod where the new replica belongs.
fn place_surge<'a>(
    needs: &mut [RcNeeds<'a>],
    slots: &mut [Slot<'a>],
    tally: &mut Tally,
    rings: &[Ring],
    probes: usize,
    assignment: &mut Assignment,
) {
    for need in needs.iter_mut() {
        let replicas = need.spec.replicas;
        let (surge, _) = need.spec.update_strategy.resolve(replicas);
        for index in replicas..replicas.saturating_add(surge) {
            let Some(s) = choose(need, slots, tally, &rings[need.ring], index, probes) else {
                continue;
            };
            take(need, &mut slots[s], s, index, tally);
            let slot = &slots[s];
            let pod = PodId {
                rc: need.spec.name.clone(),
                index,
            };
            assignment.place_surge(pod, slot.id);
        }
    }
}

/// The load bound `c = total × (1 + ε) / nodes`, made smooth in `c`.
///
/// A plain `ceil(c)` jumps by one for every node whenever `c` crosses an
/// integer, and a jump releases every overflowed replica at once (measured:
/// a leave at 1,000 nodes moved 6.7× the ideal). Instead each node's bound
/// is `floor(c)` or `floor(c) + 1`, the `+1` going to the nodes whose key,
/// read as a fraction of 2⁶⁴, is below `frac(c)`. As `c` drifts with a join
/// or leave only the few nodes whose key lies in the drifted interval change
/// bound, the total stays `≈ total × (1 + ε)`, and no node's bound is below 1.
#[derive(Debug, Clone, Copy)]
struct LoadCap {
    base: u64,
    /// `frac(c)` as `rem / den`.
    rem: u64,
    den: u64,
}

impl LoadCap {
    fn new(total: u64, nodes: usize) -> Self {
        let num = total.saturating_mul(LOAD_SLACK_DEN + LOAD_SLACK_NUM);
        let den = LOAD_SLACK_DEN.saturating_mul(nodes.max(1) as u64);
        LoadCap {
            base: num / den,
            rem: num % den,
            den,
        }
    }

    /// Bound of the node with key `key`.
    fn of(&self, key: u64) -> u64 {
        // key / 2⁶⁴ < rem / den, in integers.
        let extra = u128::from(key) * u128::from(self.den) < u128::from(self.rem) << 64;
        (self.base + u64::from(extra)).max(1)
    }
}

fn selector_matches(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Hard checks: room for the requests, and no host port replica `index`
/// needs taken there by another pod.
fn fits(need: &RcNeeds<'_>, index: u32, slot: &Slot<'_>) -> bool {
    slot.free.fits(&need.request) && conflicts(need, index, slot).next().is_none()
}

/// The uses of `slot`'s host ports that keep replica `index` of `need` out.
/// Empty at once when the RC asks for no host port (the common case).
fn conflicts<'s>(
    need: &'s RcNeeds<'_>,
    index: u32,
    slot: &'s Slot<'_>,
) -> impl Iterator<Item = &'s PortUse<'s>> + 's {
    need.ports.iter().flat_map(move |p| {
        slot.ports
            .iter()
            .filter(move |u| u.port == *p && u.blocks(&need.spec.name, index))
    })
}

/// The nearest slot on `ring` (see [`Ring::walk`]) passing the hard
/// checks, trying the soft ones (spread, then load bound) first: the walk
/// stops at the first slot passing all of them, and otherwise returns the
/// first that passed the best tier it met. A replica that fits somewhere is
/// always placed.
///
/// The walk also stops as soon as no slot left can be in a better tier
/// than the best met (counted: unused slots of the RC left, slots below
/// their bound left), and is skipped when no slot has the cpu or the memory
/// asked for: both give the result of the full walk, sooner.
fn choose(
    need: &RcNeeds<'_>,
    slots: &[Slot<'_>],
    tally: &Tally,
    ring: &Ring,
    index: u32,
    probes: usize,
) -> Option<usize> {
    if !tally.most_free.might_fit(&need.request) {
        return None;
    }
    // Spread is impossible once the RC is on every slot of its ring (its
    // replicas all went through this ring, so `used` is part of it).
    let can_spread = need.used.len() < ring.len();
    let mut unused_left = ring.len() - need.used.len();
    // At most this many of the slots not yet visited are below their bound.
    let mut bounded_left = tally.below_bound;
    // Firsts of the lower tiers, in order: spread only, bound only, neither
    // (stacking is the last resort, the bound yields first).
    let mut lower: [Option<usize>; 3] = [None; 3];
    for s in ring.walk(replica_seed(need.key, index), probes) {
        let slot = &slots[s];
        let spread = can_spread && need.used.binary_search(&s).is_err();
        let bounded = slot.load < slot.cap;
        unused_left -= usize::from(spread);
        bounded_left -= usize::from(bounded);
        let tier = match (spread, bounded) {
            (true, true) => None,
            (true, false) => Some(0),
            (false, true) => Some(1),
            (false, false) => Some(2),
        };
        let better_met = tier.is_some_and(|t| lower[..=t].iter().any(Option::is_some));
        if !better_met && fits(need, index, slot) {
            match tier {
                None => return Some(s),
                Some(t) => lower[t] = Some(s),
            }
        }
        let better_left = match lower.iter().position(Option::is_some) {
            None => true,
            // Only spread and bound beats spread only.
            Some(0) => unused_left > 0 && bounded_left > 0,
            // Both better tiers spread.
            Some(1) => unused_left > 0,
            _ => unused_left > 0 || bounded_left > 0,
        };
        if !better_left {
            break;
        }
    }
    lower.into_iter().flatten().next()
}

/// Charge every node with the first check it fails, for the unplaced
/// report; a host port conflict also names the port and who has it.
fn explain(
    need: &RcNeeds<'_>,
    index: u32,
    slots: &[Slot<'_>],
    nodes: &BTreeMap<NodeId, NodeCandidate>,
) -> Unplaced {
    let mut reasons: BTreeMap<NodeRejection, usize> = BTreeMap::new();
    let mut port_holders: BTreeMap<HostPort, BTreeSet<PodId>> = BTreeMap::new();
    #[cfg(debug_assertions)]
    let usable: BTreeSet<NodeId> = slots.iter().map(|s| s.id).collect();
    for (id, c) in nodes {
        let reason = if !c.alive {
            NodeRejection::NodeDown
        } else if c.cordoned {
            NodeRejection::Cordoned
        } else if !c.info.runtime_healthy {
            NodeRejection::RuntimeUnhealthy
        } else if !selector_matches(&need.spec.template.node_selector, &c.info.labels) {
            NodeRejection::NodeSelectorMismatch
        } else {
            #[cfg(debug_assertions)]
            assert!(usable.contains(id), "a usable node has a slot");
            let Ok(s) = slots.binary_search_by_key(id, |s| s.id) else {
                continue;
            };
            let slot = &slots[s];
            if slot.free.cpu_millis < need.request.cpu_millis {
                NodeRejection::InsufficientCpu
            } else if slot.free.memory_bytes < need.request.memory_bytes {
                NodeRejection::InsufficientMemory
            } else {
                for u in conflicts(need, index, slot) {
                    let holder = PodId {
                        rc: u.rc.to_owned(),
                        index: u.index,
                    };
                    port_holders.entry(u.port).or_default().insert(holder);
                }
                NodeRejection::HostPortConflict
            }
        };
        *reasons.entry(reason).or_default() += 1;
    }
    Unplaced {
        total_nodes: nodes.len(),
        reasons,
        port_holders,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_bounds_average_three_quarters_above_the_mean() {
        for nodes in [1_000u64, 999] {
            let cap = LoadCap::new(10_000, nodes as usize);
            let caps: Vec<u64> = (0..nodes).map(|n| cap.of(node_key(NodeId(n)))).collect();
            assert!(caps.iter().all(|c| *c == 17 || *c == 18));
            let sum: u64 = caps.iter().sum();
            assert!((17_400..=17_600).contains(&sum), "total bound {sum}");
        }
        let whole = LoadCap::new(4_000, 1_000);
        assert!((0..1_000u64).all(|n| whole.of(node_key(NodeId(n))) == 7));
        assert_eq!(LoadCap::new(1, 1_000).of(u64::MAX), 1, "never below one");
        assert_eq!(LoadCap::new(0, 0).of(0), 1);
    }

    #[test]
    fn a_join_changes_few_bounds() {
        let before = LoadCap::new(10_000, 1_000);
        let after = LoadCap::new(10_000, 1_001);
        let changed = (0..1_000u64)
            .filter(|n| before.of(node_key(NodeId(*n))) != after.of(node_key(NodeId(*n))))
            .count();
        assert!(changed <= 40, "{changed} bounds changed");
    }
}
