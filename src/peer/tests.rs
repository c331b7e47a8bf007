//! The core's timers, driven through [`testing`](super::testing) or by
//! hand: one deadline, fired in order, never early.

use std::net::SocketAddr;
use std::time::Duration;

use shoal_crdt_state::manifest;
use shoal_crdt_state::node::{NodeId, NodeInfo};
use shoal_crdt_state::pod::PodId;
use shoal_crdt_state::spec::{RcSpec, Resources};
use shoal_runtime::vocabulary::{PodEvent, PodObservation};

use super::testing::Cluster;
use super::timers::{PeerTimer, TimerQueue};
use super::{Command, Output, Peer, PeerConfig};

pub(super) const START: Duration = Duration::from_secs(1_700_000_000);
const NS: Duration = Duration::from_nanos(1);
const MS: Duration = Duration::from_millis(1);

pub(super) fn addr(i: usize) -> SocketAddr {
    format!("127.0.0.1:{}", 17_500 + i).parse().unwrap()
}

pub(super) fn config(i: usize) -> PeerConfig {
    let room = Resources {
        cpu_millis: 4000,
        memory_bytes: 8 << 30,
    };
    let info = NodeInfo {
        peer_addr: addr(i).to_string(),
        api_addr: format!("127.0.0.1:{}", 18_500 + i),
        version: "test".to_owned(),
        ..NodeInfo::healthy(format!("node-{i}"), room)
    };
    PeerConfig::new(NodeId(i as u64 + 1), addr(i), info)
}

pub(super) fn hello(replicas: u32) -> RcSpec {
    let text = include_str!("../../examples/hello-local.yaml");
    let mut spec = manifest::parse_manifests(text).unwrap().specs.remove(0);
    spec.replicas = replicas;
    spec
}

/// A started peer of its own, its start-up outputs drained.
fn lone_peer(seeds: &[SocketAddr]) -> Peer {
    let mut peer = Peer::new(config(0));
    peer.start(START, seeds, &[]);
    while peer.poll_output().is_some() {}
    peer
}

#[test]
fn the_queue_pops_by_deadline_then_order_set_and_nothing_set_after_the_mark() {
    let mut q = TimerQueue::default();
    q.schedule(START + 20 * MS, PeerTimer::Publish);
    q.schedule(START + 10 * MS, PeerTimer::Reconcile);
    q.schedule(START + 10 * MS, PeerTimer::AntiEntropy);
    let mark = q.mark();
    q.schedule(START + 5 * MS, PeerTimer::Push);
    let now = START + 30 * MS;
    assert_eq!(q.next_deadline(), Some(START + 5 * MS));
    assert_eq!(
        q.next_due(now, mark),
        Some(START + 10 * MS),
        "set after the mark"
    );
    let popped: Vec<_> = std::iter::from_fn(|| q.pop_due(now, mark)).collect();
    assert_eq!(
        popped,
        [
            (START + 10 * MS, PeerTimer::Reconcile),
            (START + 10 * MS, PeerTimer::AntiEntropy),
            (START + 20 * MS, PeerTimer::Publish),
        ]
    );
    assert_eq!(
        q.pop_due(now, q.mark()),
        Some((START + 5 * MS, PeerTimer::Push))
    );
    assert_eq!(q.next_deadline(), None);
}

#[test]
fn a_timeout_before_the_deadline_fires_nothing() {
    let mut peer = lone_peer(&[]);
    let deadline = peer.poll_timeout().expect("a started peer has timers");
    let pending: Vec<_> = peer.timers.pending().collect();
    let stats = peer.stats();
    peer.handle_timeout(deadline - NS);
    assert_eq!(peer.poll_output(), None, "nothing is due yet");
    assert_eq!(peer.poll_timeout(), Some(deadline));
    assert_eq!(peer.timers.pending().collect::<Vec<_>>(), pending);
    assert_eq!(peer.stats(), stats);
    assert!(peer.fired.is_empty());
}

#[test]
fn timers_fire_in_deadline_order_each_at_or_after_its_deadline() {
    let mut cluster = Cluster::new(START, MS);
    for i in 0..3 {
        let seeds: Vec<SocketAddr> = (i > 0).then(|| addr(0)).into_iter().collect();
        cluster.add(Peer::new(config(i)), &seeds);
    }
    cluster.command(1, Command::Apply(hello(4))).unwrap();
    for _ in 0..2_000 {
        // Step to the next thing that happens, one instant at a time.
        let Some(next) = cluster.next_event() else {
            break;
        };
        let deadlines: Vec<_> = cluster.peers.iter().map(Peer::poll_timeout).collect();
        let counts: Vec<_> = cluster.logs.iter().map(|l| l.timeouts).collect();
        cluster.run_until(next);
        for (i, log) in cluster.logs.iter().enumerate() {
            if log.timeouts > counts[i] {
                assert_eq!(
                    log.last_timeout, deadlines[i],
                    "peer {i} woke exactly at its deadline"
                );
            }
        }
    }
    assert!(
        cluster.now > START + Duration::from_secs(2),
        "the run went on"
    );
    for (i, peer) in cluster.peers.iter().enumerate() {
        assert!(peer.fired.len() > 20, "peer {i} fired {:?}", peer.fired);
        assert!(
            peer.fired.windows(2).all(|w| w[0].0 <= w[1].0),
            "peer {i} fired out of deadline order: {:?}",
            peer.fired
        );
        assert!(
            peer.fired.iter().all(|(at, fired, _)| at <= fired),
            "peer {i} fired a timer early: {:?}",
            peer.fired
        );
        assert!(peer.is_connected(), "peer {i} joined");
    }
    let running: usize = cluster.peers.iter().map(|p| p.local_pods().len()).sum();
    assert_eq!(running, 4, "the reconcile ticks placed every replica once");
}

#[test]
fn a_second_timeout_at_the_same_instant_does_nothing() {
    let mut peer = lone_peer(&[]);
    let deadline = peer.poll_timeout().unwrap();
    peer.handle_timeout(deadline);
    while peer.poll_output().is_some() {}
    let fired = peer.fired.len();
    let next = peer.poll_timeout();
    peer.handle_timeout(deadline);
    assert_eq!(peer.poll_output(), None);
    assert_eq!(peer.fired.len(), fired);
    assert_eq!(peer.poll_timeout(), next);
    assert!(next.is_some_and(|next| next > deadline));
}

#[test]
fn an_unanswered_join_is_retried_with_back_off() {
    let seed = addr(9);
    let mut peer = lone_peer(&[seed]);
    let mut sends_to_seed = Vec::new();
    let until = START + Duration::from_secs(20);
    for _ in 0..10_000 {
        let Some(at) = peer.poll_timeout().filter(|at| *at <= until) else {
            break;
        };
        peer.handle_timeout(at);
        let mut sent = false;
        while let Some(output) = peer.poll_output() {
            sent |= matches!(output, Output::Datagram { to, .. } if to == seed);
        }
        if sent {
            sends_to_seed.push(at - START);
        }
    }
    assert!(!peer.is_connected());
    // Retries after 1, 2, 4, 8, 8 s (the cap): each gap at least as long
    // as the one before, and the first one a join retry away.
    assert!(sends_to_seed.len() >= 4, "{sends_to_seed:?}");
    assert!(
        sends_to_seed[0] >= Duration::from_secs(1),
        "{sends_to_seed:?}"
    );
    let gaps: Vec<_> = sends_to_seed.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[0] <= g[1]), "{sends_to_seed:?}");
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(8)),
        "{sends_to_seed:?}"
    );
}

#[test]
fn a_write_is_reconciled_one_reconcile_delay_later() {
    let mut cluster = Cluster::new(START, MS);
    cluster.add(Peer::new(config(0)), &[]);
    cluster.run_for(Duration::from_secs(1));
    let delay = cluster.peers[0].config().reconcile_delay;
    cluster.command(0, Command::Apply(hello(2))).unwrap();
    let written = cluster.now;
    cluster.run_until(written + delay - NS);
    assert_eq!(
        cluster.peers[0].stats().pod_starts,
        0,
        "not before the tick"
    );
    cluster.run_until(written + delay);
    assert_eq!(cluster.peers[0].stats().pod_starts, 2, "at the tick");
    let reconciles = |peer: &Peer| {
        peer.fired
            .iter()
            .filter(|(_, _, t)| *t == PeerTimer::Reconcile)
            .count()
    };
    assert!(reconciles(&cluster.peers[0]) >= 1);
}

#[test]
fn a_changed_state_is_checkpointed_at_the_next_tick_and_an_unchanged_one_never() {
    let mut cluster = Cluster::new(START, MS);
    cluster.add(Peer::new(config(0)), &[]);
    let every = cluster.peers[0].config().checkpoint_every;
    // The first seconds publish our own record; then nothing changes.
    cluster.run_for(3 * every);
    let settled = cluster.logs[0].checkpoints;
    cluster.run_for(5 * every);
    assert_eq!(cluster.logs[0].checkpoints, settled, "nothing changed");

    // Ticks come every `every` from the start: find the next one.
    let since_start = (cluster.now - START).as_nanos() % every.as_nanos();
    assert_eq!(since_start, 0, "the clock sits on a tick");
    cluster.run_for(every / 2);
    cluster.command(0, Command::Apply(hello(1))).unwrap();
    let tick = START + every * 9;
    cluster.run_until(tick - NS);
    assert_eq!(cluster.logs[0].checkpoints, settled, "not before the tick");
    cluster.run_until(tick);
    assert_eq!(cluster.logs[0].checkpoints, settled + 1, "at the tick");
    assert!(cluster.logs[0].persists > 0, "the write itself was logged");
    cluster.run_for(5 * every);
    assert!(
        cluster.logs[0].checkpoints <= settled + 2,
        "one more at most: the pod's status"
    );
}

#[test]
fn a_crashed_pod_s_error_leaves_its_published_status_once_it_has_stayed_ready() {
    let mut cluster = Cluster::new(START, MS);
    cluster.add(Peer::new(config(0)), &[]);
    cluster.run_for(Duration::from_secs(1));
    cluster.command(0, Command::Apply(hello(1))).unwrap();
    cluster.run_for(Duration::from_secs(2));
    let pod = PodId {
        rc: "hello".to_owned(),
        index: 0,
    };
    let published = |c: &Cluster| {
        c.peers[0]
            .state()
            .observed
            .get(NodeId(1))
            .and_then(|r| r.pods.iter().find(|p| p.id == pod).cloned())
            .expect("the pod is reported")
    };
    let crash = PodObservation {
        pod: pod.clone(),
        template_hash: published(&cluster).template_hash,
        event: PodEvent::Exited {
            code: 2,
            oom_killed: false,
        },
    };
    cluster.with_peer(0, |peer, now| peer.handle_observation(now, &crash));
    // Restarted at once (a first crash), running and ready again.
    cluster.run_for(Duration::from_secs(2));
    let status = published(&cluster);
    assert_eq!(
        (status.restarts, status.ready, status.last_error.as_deref()),
        (1, true, Some("exited with code 2"))
    );
    let forgive = cluster.peers[0].config().reconcile.backoff.reset_after;
    cluster.run_for(forgive);
    let status = published(&cluster);
    assert_eq!(
        (status.restarts, status.ready, status.last_error),
        (1, true, None)
    );
}

/// Rolls `hello` (2 replicas, surge 1, nothing unavailable, 5 s deadline)
/// to an image the engine lacks; returns the cluster once it has had time
/// to give up, and the template it ran before.
fn rollout_to_a_missing_image(
    auto_rollback: bool,
) -> (Cluster, shoal_crdt_state::spec::TemplateHash) {
    use shoal_crdt_state::spec::Allowance;
    let mut spec = hello(2);
    spec.update_strategy.max_surge = Allowance::Count(1);
    spec.update_strategy.max_unavailable = Allowance::Count(0);
    spec.update_strategy.progress_deadline_secs = 5;
    spec.update_strategy.auto_rollback = auto_rollback;
    let mut cluster = Cluster::new(START, MS);
    cluster.add(Peer::new(config(0)), &[]);
    cluster.run_for(Duration::from_secs(1));
    cluster.command(0, Command::Apply(spec.clone())).unwrap();
    cluster.run_for(Duration::from_secs(2));
    let image = format!("{}hello:1.1", super::testing::MISSING_IMAGES);
    let update = Command::RollingUpdate {
        name: "hello".to_owned(),
        image,
        container: None,
    };
    cluster.command(0, update).unwrap();
    cluster.run_for(Duration::from_secs(20));
    (cluster, spec.template.hash())
}

#[test]
fn a_rollout_to_a_missing_image_stops_with_the_image_reason_and_the_old_pods_serve() {
    let (cluster, old) = rollout_to_a_missing_image(false);
    let report = cluster.peers[0].state().observed.get(NodeId(1)).unwrap();
    let serving: Vec<u32> = report
        .pods
        .iter()
        .filter(|p| p.ready && p.template_hash == old)
        .map(|p| p.id.index)
        .collect();
    assert_eq!(serving, [0, 1], "{:?}", report.pods);
    let stalled: Vec<&str> = report
        .pods
        .iter()
        .filter_map(|p| p.stalled.as_deref())
        .collect();
    assert_eq!(stalled.len(), 1, "{:?}", report.pods);
    assert!(
        stalled[0]
            .starts_with("pod hello-2 not ready after 5s: image: No such image: missing/hello:1.1"),
        "{stalled:?}"
    );
    assert!(cluster.logs[0].events.iter().any(|e| matches!(
        e,
        super::PeerEvent::RolloutStopped {
            rolled_back: false,
            ..
        }
    )));
}

#[test]
fn auto_rollback_returns_to_the_previous_template_and_the_surge_leaves() {
    let (cluster, old) = rollout_to_a_missing_image(true);
    let desired = cluster.peers[0].state().desired.get("hello").unwrap();
    assert_eq!(desired.template().hash(), old, "rolled back");
    assert!(cluster.logs[0].events.iter().any(|e| matches!(
        e,
        super::PeerEvent::RolloutStopped {
            rolled_back: true,
            ..
        }
    )));
    let report = cluster.peers[0].state().observed.get(NodeId(1)).unwrap();
    let pods: Vec<(u32, bool, bool)> = report
        .pods
        .iter()
        .map(|p| (p.id.index, p.ready, p.template_hash == old))
        .collect();
    assert_eq!(pods, [(0, true, true), (1, true, true)]);
}

/// A peer resumed with `n` RCs of about 1.5 KB each (an env of 16 entries).
fn peer_with_rcs(n: usize) -> Peer {
    use shoal_crdt_state::hlc::Hlc;
    use shoal_crdt_state::spec::EnvVar;
    let mut state = shoal_crdt_state::ClusterState::new();
    for i in 0..n {
        let mut spec = hello(1);
        spec.name = format!("rc-{i:05}");
        spec.template.containers[0].env = (0..16)
            .map(|k| EnvVar {
                name: format!("CONFIG_{k}"),
                value: format!("{i:05}-{k:02}-").repeat(8),
            })
            .collect();
        let stamp = Hlc::new(1_690_000_000_000 + i as u64, 0, NodeId(1));
        state.desired.apply(&spec, stamp);
    }
    let persisted = super::Persisted {
        state,
        members: Vec::new(),
    };
    let mut peer = Peer::resume(config(0), persisted);
    peer.start(START, &[], &[]);
    while peer.poll_output().is_some() {}
    peer
}

/// The sync messages `peer` sends to `to`, drained.
fn syncs_to(peer: &mut Peer, to: SocketAddr) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| peer.poll_output())
        .filter_map(|o| match o {
            Output::Sync { to: t, bytes } if t == to => Some(bytes),
            _ => None,
        })
        .collect()
}

fn pull(from: &Peer, i: usize) -> Vec<u8> {
    use super::sync_message::{SyncEnvelope, SyncMessage};
    let envelope = SyncEnvelope {
        from: from.node(),
        reply_to: addr(i),
        message: SyncMessage::Pull {
            digest: from.state().digest(),
        },
    };
    shoal_crdt_state::wire::encode(&envelope).unwrap()
}

#[test]
fn a_big_answer_travels_in_pieces_and_a_truncated_piece_loses_only_itself() {
    let n = 4_000;
    let mut a = peer_with_rcs(n);
    let mut b = Peer::new(config(1));
    b.start(START, &[], &[]);
    while b.poll_output().is_some() {}

    a.handle_sync(START, addr(1), &pull(&b, 1));
    let pieces = syncs_to(&mut a, addr(1));
    assert!(pieces.len() >= 4, "{} pieces", pieces.len());
    assert!(
        pieces
            .iter()
            .all(|p| p.len() <= super::sync_message::MAX_MESSAGE_BYTES)
    );
    // Every piece arrives but the second, which is cut short.
    for (k, piece) in pieces.iter().enumerate() {
        let bytes = if k == 1 {
            &piece[..piece.len() / 2]
        } else {
            &piece[..]
        };
        b.handle_sync(START + MS, addr(0), bytes);
    }
    let events: Vec<String> = std::iter::from_fn(|| b.poll_output())
        .filter_map(|o| match o {
            Output::Event(super::PeerEvent::BadMessage { error, .. }) => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("malformed"), "{events:?}");
    let held = b.state().desired.len();
    assert!(held < n && held > n / 2, "held {held} of {n}");

    // The next round asks for what is missing, and only that comes.
    a.handle_sync(START + 2 * MS, addr(1), &pull(&b, 1));
    let again = syncs_to(&mut a, addr(1));
    assert!(again.len() < pieces.len(), "{} pieces again", again.len());
    for piece in &again {
        b.handle_sync(START + 3 * MS, addr(0), piece);
    }
    assert_eq!(b.state().desired.len(), n);
    // Every RC register alike (b also holds its own key binding, which a
    // has not pulled).
    assert!(b.state().desired.digest() == a.state().desired.digest());
}
