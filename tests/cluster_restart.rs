//! Whole-site restarts with real peers: `shoal up` processes on loopback
//! addresses, real QUIC, real Docker engines. Tests where a machine dies or
//! powers down give each machine its own engine, so its containers go with it.
//!
//! Bound documented in the README: after the last peer of a restarted site
//! is up, every peer sees the others within seconds, and exactly the
//! declared replicas run, all ready, within the startup grace (about 9 s on
//! LAN: one join-retry cycle plus the suspicion window) plus a container
//! start; the tests allow 40 s for a loaded CI machine.

mod cluster_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc, hello_rc_probed, ok, wait_until};

/// Applies `replicas` copies of the hello pod (with a readiness probe when
/// `probed`) at peer 0 and waits until each runs once, ready.
fn run_web(cluster: &Cluster, replicas: u32, probed: bool) {
    let rc = if probed {
        hello_rc_probed("web", replicas, "shoal-test/hello:1.0")
    } else {
        hello_rc("web", replicas, "shoal-test/hello:1.0")
    };
    let manifest = cluster.manifest("web.yaml", &rc);
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let running = wait_until(Duration::from_secs(60), || {
        cluster.engine_copies("web").len() == replicas as usize
            && cluster.rc_counts(0, "web") == Some((replicas.into(), replicas.into()))
    });
    assert!(
        running,
        "web never ran {replicas} copies: {:?}\n{}",
        cluster.engine_copies("web"),
        cluster.log_tail(0)
    );
}

/// Every replica index below `n` runs exactly once on the engine.
fn exactly(copies: &[(String, String)], n: u32) -> bool {
    let replicas: Vec<String> = copies.iter().map(|(r, _)| r.clone()).collect();
    let mut want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    want.sort();
    replicas == want
}

/// Waits until `peers` all see exactly each other alive, every replica of
/// `web` runs once, and `peers[0]` counts them all ready. Returns the peak
/// number of copies seen meanwhile.
fn wait_converged(cluster: &Cluster, peers: &[usize], n: u32, since: Instant) -> usize {
    let mut peak = 0;
    let mut all_seen: Option<Duration> = None;
    let done = wait_until(Duration::from_secs(40), || {
        let copies = cluster.engine_copies("web");
        peak = peak.max(copies.len());
        let seen = peers
            .iter()
            .all(|&i| cluster.count_nodes(i, "Alive") == peers.len());
        if seen && all_seen.is_none() {
            all_seen = Some(since.elapsed());
        }
        seen && exactly(&copies, n)
            && cluster.rc_counts(peers[0], "web") == Some((n.into(), n.into()))
    });
    assert!(
        done,
        "not converged: copies {:?}, rc at peer {}: {:?}, nodes {:?}\n{}",
        cluster.engine_copies("web"),
        peers[0],
        cluster.rc_counts(peers[0], "web"),
        cluster.try_get_json(peers[0], "nodes"),
        cluster.log_tail(peers[0])
    );
    eprintln!(
        "all peers saw each other after {:?}; exactly {n} ready after {:?}; peak copies {peak}",
        all_seen.unwrap_or_default(),
        since.elapsed()
    );
    peak
}

#[test]
fn a_site_restart_without_its_seed_re_forms_and_runs_exactly_the_declared_replicas() {
    let mut cluster = Cluster::start_machines(24, 3);
    run_web(&cluster, 3, false);

    // Power off: every peer stops at once (each saves its state); machine 0
    // — everyone's --join seed — dies with its engine and its containers and
    // never comes back.
    cluster.terminate_all(&[0, 1, 2]);
    cluster.kill_machine(0);
    let restarted = Instant::now();
    cluster.spawn(1);
    cluster.spawn(2);
    wait_converged(&cluster, &[1, 2], 3, restarted);
    let nodes: BTreeSet<String> = cluster
        .engine_copies("web")
        .into_iter()
        .map(|(_, node)| node)
        .collect();
    assert!(
        !nodes.contains(&cluster.node_id(0)),
        "a copy still claims the dead node"
    );
}

#[test]
fn a_site_restart_in_random_order_adopts_every_pod_without_duplicates() {
    // Pods with a readiness probe: adopted ones must be probed again to
    // count as ready.
    let mut cluster = Cluster::start(25, 5);
    run_web(&cluster, 5, true);

    let seed = std::process::id() as usize;
    let mut order: Vec<usize> = vec![1, 2, 3, 4];
    for i in (1..order.len()).rev() {
        order.swap(i, (seed / (i + 1)) % (i + 1));
    }
    order.push(0); // the seed comes back last
    eprintln!("restart order {order:?} (from seed {seed})");

    cluster.terminate_all(&[0, 1, 2, 3, 4]);
    // Peers that see the others leave a few milliseconds before their own
    // SIGTERM may start a replacement: that copy is there before the
    // restart, and the restart must not add to it.
    std::thread::sleep(Duration::from_secs(1));
    let after_stop = cluster.engine_copies("web").len();
    eprintln!("copies after the stop: {after_stop}");
    let restarted = Instant::now();
    let mut peak = 0;
    for &i in &order {
        cluster.spawn(i);
        peak = peak.max(cluster.engine_copies("web").len());
    }
    peak = peak.max(wait_converged(&cluster, &[0, 1, 2, 3, 4], 5, restarted));
    // Adopted pods, not new ones: the containers that ran before the
    // restart still run, and the restart started no extra copy.
    assert!(
        peak <= after_stop.max(5),
        "the restart added copies: peak {peak}, {after_stop} after the stop"
    );
}

#[test]
fn a_gracefully_stopped_peer_keeps_its_replicas_for_the_grace_then_loses_them() {
    let mut cluster = Cluster::start_machines(30, 3);
    run_web(&cluster, 3, false);
    let victim = 2;
    let victim_node = cluster.node_id(victim);
    let held: Vec<String> = cluster
        .engine_copies("web")
        .into_iter()
        .filter(|(_, node)| *node == victim_node)
        .map(|(replica, _)| replica)
        .collect();
    assert!(!held.is_empty(), "peer {victim} runs no replica");

    // A restart (upgrade): SIGTERM, back a few seconds later. Its pods keep
    // running meanwhile, so nobody starts a copy.
    cluster.terminate(victim);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        cluster.engine_copies("web").len(),
        3,
        "copies started while the peer restarted"
    );
    cluster.spawn(victim);
    wait_converged(&cluster, &[0, 1, 2], 3, stopped);

    // Stopped for good: its machine shuts down (the peer leaves, the engine
    // stops its containers); its replicas are started elsewhere once the
    // grace is over.
    cluster.terminate(victim);
    let gone = Instant::now();
    cluster.shut_down_machine(victim);
    let replaced = wait_until(Duration::from_secs(40), || {
        let copies = cluster.engine_copies("web");
        exactly(&copies, 3) && copies.iter().all(|(_, n)| *n != victim_node)
    });
    assert!(replaced, "not replaced: {:?}", cluster.engine_copies("web"));
    let after = gone.elapsed();
    eprintln!("replicas of a gracefully stopped peer replaced after {after:?}");
    assert!(
        after >= Duration::from_secs(5),
        "replaced before the grace: {after:?}"
    );
}

#[test]
fn a_site_power_cut_takes_every_container_and_the_site_comes_back_with_exactly_the_declared_replicas()
 {
    // Pods with a readiness probe: the restarted ones must be probed again.
    let mut cluster = Cluster::start_machines(50, 3);
    run_web(&cluster, 3, true);

    // The power goes: every machine dies at once, its peer, its engine and
    // its containers with it.
    for i in 0..3 {
        cluster.kill_machine(i);
    }
    assert!(cluster.engine_copies("web").is_empty());

    // The power comes back; the seed boots last. No container survived, so
    // the site must start every replica again, once.
    let restarted = Instant::now();
    for i in [1, 2, 0] {
        cluster.restart_machine(i);
    }
    let peak = wait_converged(&cluster, &[0, 1, 2], 3, restarted);
    assert!(peak <= 3, "the restart started extra copies: peak {peak}");
    // The containers that died in the power cut do not pile up either.
    let stale = || -> Vec<(String, String)> {
        (0..3)
            .flat_map(|i| cluster.machine_containers(i))
            .filter(|(_, state)| state != "running")
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(20), || stale().is_empty()),
        "dead containers left on the engines: {:?}",
        stale()
    );
}
