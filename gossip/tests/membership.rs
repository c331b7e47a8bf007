//! Membership driven end to end over an in-memory, lossless network with a
//! virtual clock: real foca, real codec, no sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use shoal_crdt_state::node::NodeId;
use shoal_gossip::{MemberState, Membership, MembershipEvent, Output, PeerIdentity, Preset};

/// A tiny driver: 2 ms latency, peers can be cut off (muted both ways);
/// each peer's timers fire at its `poll_timeout`.
struct Net {
    now: Duration,
    peers: BTreeMap<SocketAddr, Membership>,
    muted: Vec<SocketAddr>,
    /// While set, datagrams between these peers and the others are lost.
    split: Option<Vec<SocketAddr>>,
    /// (deliver at, seq) -> (to, from, datagram)
    queue: BTreeMap<(Duration, u64), (SocketAddr, SocketAddr, Vec<u8>)>,
    seq: u64,
    events: Vec<(SocketAddr, MembershipEvent)>,
}

fn addr(i: u64) -> SocketAddr {
    format!("10.0.0.{i}:7946").parse().unwrap()
}

impl Net {
    fn new(n: u64) -> Self {
        let mut net = Net {
            now: Duration::ZERO,
            peers: BTreeMap::new(),
            muted: Vec::new(),
            split: None,
            queue: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
        };
        for i in 1..=n {
            let id = PeerIdentity::new(NodeId(i), addr(i), 1);
            net.peers
                .insert(addr(i), Membership::new(id, Preset::Lan, i));
        }
        net
    }

    fn drain(&mut self, at: SocketAddr) {
        let peer = self.peers.get_mut(&at).unwrap();
        let mut outs = Vec::new();
        while let Some(o) = peer.poll_output() {
            outs.push(o);
        }
        for o in outs {
            self.seq += 1;
            match o {
                Output::Send { to, bytes } => {
                    assert!(bytes.len() <= shoal_gossip::MAX_PACKET_SIZE);
                    let crosses = self
                        .split
                        .as_ref()
                        .is_some_and(|side| side.contains(&at) != side.contains(&to));
                    if !self.muted.contains(&at) && !self.muted.contains(&to) && !crosses {
                        let when = self.now + Duration::from_millis(2);
                        self.queue.insert((when, self.seq), (to, at, bytes));
                    }
                }
                Output::Event(e) => self.events.push((at, e)),
            }
        }
    }

    /// The earliest timer deadline of any peer, and whose (datagrams at the
    /// same time go first).
    fn next_timeout(&self) -> Option<(Duration, SocketAddr)> {
        self.peers
            .iter()
            .filter_map(|(a, p)| Some((p.poll_timeout()?, *a)))
            .min()
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let datagram = self.queue.first_key_value().map(|(k, _)| k.0);
            let timeout = self.next_timeout();
            // Errors are counted by real drivers; here we only need progress.
            let to = match (datagram, timeout) {
                (Some(when), t) if when <= end && t.is_none_or(|(at, _)| when <= at) => {
                    let Some(((when, _), (to, from, bytes))) = self.queue.pop_first() else {
                        break;
                    };
                    self.now = when;
                    let Some(peer) = self.peers.get_mut(&to) else {
                        continue;
                    };
                    let _ = peer.handle_datagram(when, from, &bytes);
                    to
                }
                (_, Some((at, to))) if at <= end => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    let _ = self.peers.get_mut(&to).unwrap().handle_timeout(now);
                    to
                }
                _ => break,
            };
            self.drain(to);
        }
        self.now = end;
    }

    fn join_all_through_first(&mut self) {
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for a in &addrs[1..] {
            let now = self.now;
            self.peers.get_mut(a).unwrap().join(now, addrs[0]).unwrap();
            self.drain(*a);
        }
    }

    fn active_nodes(&self, at: SocketAddr) -> Vec<u64> {
        self.peers[&at]
            .view()
            .active_nodes()
            .iter()
            .map(|n| n.0)
            .collect()
    }
}

#[test]
fn five_peers_joining_through_one_seed_all_see_each_other() {
    let mut net = Net::new(5);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(5));
    for a in net.peers.keys() {
        assert_eq!(net.active_nodes(*a), vec![1, 2, 3, 4, 5], "view of {a}");
    }
    let view = net.peers[&addr(3)].view();
    assert!(
        view.members
            .windows(2)
            .all(|w| w[0].identity < w[1].identity)
    );
    assert!(view.version > 0);
}

#[test]
fn a_silent_peer_is_suspected_then_declared_down_by_all_others() {
    let mut net = Net::new(4);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    net.muted.push(addr(4));
    net.peers.remove(&addr(4));
    net.run_for(Duration::from_secs(10));
    for i in 1..=3 {
        assert_eq!(net.active_nodes(addr(i)), vec![1, 2, 3]);
        let view = net.peers[&addr(i)].view();
        let four: Vec<_> = view.get(NodeId(4)).collect();
        assert_eq!(four.len(), 1);
        assert_eq!(four[0].state, MemberState::Down);
    }
    assert!(net.events.iter().any(|(_, e)| matches!(
        e, MembershipEvent::Suspected(id) if id.node == NodeId(4)
    )));
}

#[test]
fn a_peer_wrongly_declared_down_renews_its_identity_and_rejoins() {
    let mut net = Net::new(4);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    net.muted.push(addr(2));
    net.run_for(Duration::from_secs(10));
    assert_eq!(net.active_nodes(addr(1)), vec![1, 3, 4]);
    net.muted.clear();
    net.run_for(Duration::from_secs(20));
    let renewed = net.peers[&addr(2)].identity();
    assert!(renewed.incarnation > 1, "peer 2 should have renewed");
    for i in 1..=4 {
        let view = net.peers[&addr(i)].view();
        assert_eq!(view.active_nodes().len(), 4, "view of peer {i}: {view:?}");
        assert!(
            view.members
                .iter()
                .any(|m| m.identity == renewed && m.state.is_active())
        );
    }
}

#[test]
fn after_a_partition_heals_no_peer_sees_its_own_side_go_down() {
    let mut net = Net::new(8);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    let side: Vec<SocketAddr> = (1..=4).map(addr).collect();
    net.split = Some(side.clone());
    net.run_for(Duration::from_secs(15));
    assert_eq!(net.active_nodes(addr(1)), vec![1, 2, 3, 4]);
    assert_eq!(net.active_nodes(addr(8)), vec![5, 6, 7, 8]);
    net.split = None;
    let healed = net.events.len();
    net.run_for(Duration::from_secs(20));
    for i in 1..=8 {
        assert_eq!(
            net.active_nodes(addr(i)).len(),
            8,
            "view of peer {i}: {:?}",
            net.peers[&addr(i)].view()
        );
    }
    // Each side declared the other down while split; those verdicts must
    // not make a peer drop the members it was talking to all along.
    let same_side = |a: &SocketAddr, node: NodeId| side.contains(a) == (node.0 <= 4);
    let flaps: Vec<_> = net.events[healed..]
        .iter()
        .filter(|(at, e)| matches!(e, MembershipEvent::Down(id) if same_side(at, id.node)))
        .collect();
    assert!(
        flaps.is_empty(),
        "own side seen down after the heal: {flaps:?}"
    );
    let held: u64 = net.peers.values().map(|p| p.stats().downs_held).sum();
    assert!(held > 0, "the other side's verdicts reached no roster");
}

#[test]
fn a_broadcast_reaches_every_peer_once_and_a_newer_one_supersedes_it() {
    let mut net = Net::new(5);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    let now = net.now;
    let origin = addr(3);
    net.peers
        .get_mut(&origin)
        .unwrap()
        .broadcast(now, 42, b"delta-1".to_vec())
        .unwrap();
    net.drain(origin);
    net.run_for(Duration::from_secs(3));
    let now = net.now;
    net.peers
        .get_mut(&origin)
        .unwrap()
        .broadcast(now, 42, b"delta-2".to_vec())
        .unwrap();
    net.drain(origin);
    net.run_for(Duration::from_secs(3));
    for i in [1, 2, 4, 5] {
        let got: Vec<&[u8]> = net
            .events
            .iter()
            .filter(|(at, _)| *at == addr(i))
            .filter_map(|(_, e)| match e {
                MembershipEvent::Received(r) if r.key == 42 => Some(&r.payload[..]),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![&b"delta-1"[..], &b"delta-2"[..]], "peer {i}");
    }
    let oversize = vec![0u8; shoal_gossip::MAX_BROADCAST_PAYLOAD + 1];
    assert!(
        net.peers
            .get_mut(&origin)
            .unwrap()
            .broadcast(now, 1, oversize)
            .is_err()
    );
}

#[test]
fn garbage_datagrams_are_rejected_without_panicking() {
    let mut net = Net::new(2);
    let peer = net.peers.get_mut(&addr(1)).unwrap();
    let now = Duration::ZERO;
    assert!(peer.handle_datagram(now, addr(2), &[]).is_err());
    assert!(peer.handle_datagram(now, addr(2), &[0x7f, 1, 2]).is_err());
    assert!(
        peer.handle_datagram(now, addr(2), &[0x01, 0xff, 0xff, 0xff])
            .is_err()
    );
    assert!(peer.handle_datagram(now, addr(2), &[0x03, 0x01]).is_err());
    assert!(
        peer.handle_datagram(now, addr(2), &vec![1u8; 5000])
            .is_err()
    );
    assert_eq!(peer.view().members.len(), 1);
}

#[test]
fn a_join_sent_while_the_seed_is_unreachable_completes_once_it_is_back() {
    let mut net = Net::new(3);
    net.muted.push(addr(1));
    net.join_all_through_first();
    // Announces and roster requests of the first attempts are lost.
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.active_nodes(addr(2)), vec![2]);
    net.muted.clear();
    net.run_for(Duration::from_secs(10));
    for i in 1..=3 {
        assert_eq!(net.active_nodes(addr(i)), vec![1, 2, 3], "view of peer {i}");
    }
}

#[test]
fn malformed_digests_and_suspect_notices_are_rejected() {
    let mut net = Net::new(2);
    let peer = net.peers.get_mut(&addr(1)).unwrap();
    let now = Duration::ZERO;
    // A digest of the wrong length, and a digest answer nobody asked for.
    assert!(peer.handle_datagram(now, addr(2), &[0x04, 0, 1]).is_err());
    let mut answer = vec![0x04, 1];
    answer.extend(std::iter::repeat_n(0u8, 256));
    assert!(peer.handle_datagram(now, addr(2), &answer).is_err());
    // A truncated suspect notice.
    assert!(peer.handle_datagram(now, addr(2), &[0x05, 0x80]).is_err());
    assert_eq!(peer.view().members.len(), 1);
}

#[test]
fn a_suspect_that_refutes_in_time_keeps_its_identity_and_is_never_declared_down() {
    let mut net = Net::new(5);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    // Peer 2 goes silent for a moment: long enough to fail a probe, far
    // shorter than the suspicion window plus the notices.
    net.muted.push(addr(2));
    net.run_for(Duration::from_millis(700));
    net.muted.clear();
    net.run_for(Duration::from_secs(10));
    assert!(
        net.events.iter().any(|(_, e)| matches!(
            e, MembershipEvent::Suspected(id) if id.node == NodeId(2)
        )),
        "peer 2 should have been suspected"
    );
    assert_eq!(net.peers[&addr(2)].identity().incarnation, 1, "no renewal");
    assert!(!net.events.iter().any(|(_, e)| matches!(
        e, MembershipEvent::Down(id) if id.node == NodeId(2)
    )));
    for i in 1..=5 {
        assert_eq!(
            net.active_nodes(addr(i)),
            vec![1, 2, 3, 4, 5],
            "view of {i}"
        );
    }
}

/// Replaces every peer with a fresh process of the next incarnation that
/// remembers the others' addresses (a whole-site restart without a seed).
fn restart_all_remembering(net: &mut Net, up: &[u64]) {
    let all: Vec<SocketAddr> = net.peers.keys().copied().collect();
    net.peers.clear();
    net.queue.clear();
    for &i in up {
        let id = PeerIdentity::new(NodeId(i), addr(i), 2);
        let mut peer = Membership::new(id, Preset::Lan, 100 + i);
        peer.remember(net.now, &all).unwrap();
        net.peers.insert(addr(i), peer);
        net.drain(addr(i));
    }
}

#[test]
fn a_subset_of_a_restarted_cluster_finds_itself_through_remembered_members() {
    let mut net = Net::new(4);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    // Peer 1 (everyone's seed) never comes back; the others restart at once.
    restart_all_remembering(&mut net, &[2, 3, 4]);
    net.run_for(Duration::from_secs(3));
    for i in 2..=4 {
        assert_eq!(net.active_nodes(addr(i)), vec![2, 3, 4], "view of peer {i}");
    }
}

#[test]
fn a_remembered_member_that_comes_back_late_is_found_without_a_seed() {
    let mut net = Net::new(3);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    restart_all_remembering(&mut net, &[1, 2]);
    net.run_for(Duration::from_secs(40));
    assert_eq!(net.active_nodes(addr(1)), vec![1, 2]);
    // Peer 3 returns 40 s later and knows nobody: the others still retry it
    // (back-off capped at 30 s) and pull it in.
    let id = PeerIdentity::new(NodeId(3), addr(3), 2);
    net.peers
        .insert(addr(3), Membership::new(id, Preset::Lan, 103));
    net.run_for(Duration::from_secs(35));
    for i in 1..=3 {
        assert_eq!(net.active_nodes(addr(i)), vec![1, 2, 3], "view of peer {i}");
    }
    assert!(net.peers[&addr(1)].unreached_contacts().is_empty());
}

#[test]
fn a_join_through_several_seeds_completes_when_only_the_last_one_answers() {
    let mut net = Net::new(3);
    net.join_all_through_first();
    net.run_for(Duration::from_secs(3));
    // A fourth peer is given two dead seeds and one live one.
    let id = PeerIdentity::new(NodeId(4), addr(4), 1);
    let mut joiner = Membership::new(id, Preset::Lan, 4);
    joiner
        .join_any(net.now, &[addr(8), addr(9), addr(3)])
        .unwrap();
    net.peers.insert(addr(4), joiner);
    net.drain(addr(4));
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.active_nodes(addr(4)), vec![1, 2, 3, 4]);
    assert!(net.peers[&addr(4)].is_connected());
    // The dead seeds are dropped once the join completed.
    net.run_for(Duration::from_secs(10));
    assert!(net.peers[&addr(4)].unreached_contacts().is_empty());
}
