//! Rollouts under real faults: 3 machines (a peer and its own Docker
//! engine each) run 4 replicas of shoal-test/hello with surge 1 and
//! nothing unavailable. What runs is read from the engines themselves.
//!
//! 1. `rolling-update --image …:1.1`, and once a replica has moved, the
//!    machine running an outdated replica loses power (`kill -9` of its
//!    peer, its engine and its containers). The survivors finish the
//!    rollout: exactly 4 pods, all 1.1 and ready; `rollout status` says
//!    done and `rollout history` lists both revisions. Before the kill at
//!    most 5 pods run and peer 0 counts 4 ready at every sample. After it,
//!    at most 5 replicas run, each on at most two nodes: the loss of a node
//!    can move a surviving replica to the other survivor (placement's
//!    spread rule), and a move is make-before-break, so for a moment up to
//!    5 + the moved replicas containers run (7 seen in one run of 4). The
//!    simulator's ceiling leaves such handed-over copies out the same way.
//! 2. The machine boots again; `rollout undo` back to 1.0, and mid-way a
//!    peer running an outdated replica is stopped (SIGTERM) and started
//!    again on the same data dir (within the grace, so nothing moves). The
//!    rollout resumes and converges, never more than 5 pods at any sample,
//!    and no replica runs twice afterwards.
//!
//! One test, two phases: the task owns one loopback subnet.
//!
//! A second test (its own subnet) splits the cluster by a partition
//! (iptables on the peers' addresses) in the middle of a rollout: each
//! side keeps within its budget by its own view, the minority side is
//! told `rollout undo` while split, and on heal that newer template wins
//! everywhere, the split's extra copies leave, and every peer agrees on
//! the history; the RC is back within `replicas + maxSurge` at most 10 s
//! after the peers see each other again (before the owner replaced an
//! outdated copy whose replica served elsewhere: up to the 30 s handover
//! bound). Then the whole site loses power in the middle of the next
//! rollout and boots again: the rollout completes within the budget.

mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cluster_support::{Cluster, hello_rc_probed, ok, wait_until};
use serde_json::Value;

const SUBNET: u8 = 92;
const REPLICAS: usize = 4;
/// replicas + maxSurge.
const CEILING: usize = REPLICAS + 1;
const V10: &str = "shoal-test/hello:1.0";
const V11: &str = "shoal-test/hello:1.1";

fn manifest() -> String {
    // minReadySeconds slows each step down to a few seconds, so a fault
    // lands in the middle of the rollout.
    hello_rc_probed("hello", REPLICAS as u32, V10).replace(
        "spec:\n  replicas: 4\n",
        "spec:\n  replicas: 4\n  minReadySeconds: 3\n  progressDeadlineSeconds: 60\n  strategy:\n    rollingUpdate:\n      maxSurge: 1\n      maxUnavailable: 0\n",
    )
}

/// `(replica, node id, image)` of every running pod of `hello` on the engines.
type Pods = Vec<(String, String, String)>;

fn pods(cluster: &Cluster) -> Pods {
    cluster.ground_truth().images("hello")
}

/// Exactly one pod of each replica 0..4, all of `image`, none in a surge slot.
fn exactly(pods: &Pods, image: &str) -> bool {
    let replicas: Vec<&str> = pods.iter().map(|p| p.0.as_str()).collect();
    replicas == ["0", "1", "2", "3"] && pods.iter().all(|p| p.2 == image)
}

/// The tail of every peer's log, for failure messages.
fn logs(cluster: &Cluster) -> String {
    (0..cluster.peers.len())
        .map(|i| format!("--- peer {i} ---\n{}", cluster.log_tail(i)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `rollout history hello -o json` at peer `i`: `(revision, image, current)`.
fn history(cluster: &Cluster, i: usize) -> Vec<(u64, String, bool)> {
    let out = ok(&cluster.cli(i, &["rollout", "history", "hello", "-o", "json"]));
    let v: Value = serde_json::from_str(&out).expect("history -o json prints JSON");
    v["revisions"]
        .as_array()
        .expect("revisions")
        .iter()
        .map(|r| {
            let image = r["images"][0].as_str().unwrap_or_default();
            (
                r["revision"].as_u64().unwrap_or_default(),
                image.split_once('=').map_or(image, |x| x.1).to_owned(),
                r["current"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// The machine (other than `keep`) running an outdated (not `image`)
/// replica, if any.
fn machine_with_outdated(
    cluster: &Cluster,
    pods: &Pods,
    image: &str,
    keep: usize,
) -> Option<usize> {
    (0..cluster.peers.len()).filter(|&m| m != keep).find(|&m| {
        let node = cluster.node_id(m);
        pods.iter().any(|(replica, n, img)| {
            *n == node && img != image && replica.parse::<usize>().is_ok_and(|r| r < REPLICAS)
        })
    })
}

/// How many pods may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ceiling {
    /// At most replicas + maxSurge containers.
    Containers,
    /// At most replicas + maxSurge replica indices, each on at most two
    /// nodes: while placement moves a replica (a node left), its old copy
    /// runs until the new one serves, as the simulator counts it.
    Replicas,
}

/// Samples the engines until `done` holds or `timeout` passes; returns
/// whether it held and the peak container count seen. Panics at once, with
/// the pods, when a sample breaks `ceiling`, or, with `floor`, when peer 0
/// counts fewer than `replicas` ready (maxUnavailable 0; no fault yet).
fn follow(
    cluster: &Cluster,
    timeout: Duration,
    what: &str,
    ceiling: Ceiling,
    floor: bool,
    mut done: impl FnMut(&Pods) -> bool,
) -> (bool, usize) {
    let mut peak = 0;
    let held = wait_until(timeout, || {
        if floor && let Some((_, ready)) = cluster.rc_counts(0, "hello") {
            assert!(
                ready >= REPLICAS as u64,
                "{what}: peer 0 counts {ready} ready, below replicas − maxUnavailable: {:?}\n{}",
                pods(cluster),
                logs(cluster)
            );
        }
        let now = pods(cluster);
        peak = peak.max(now.len());
        let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &now {
            *copies.entry(p.0.as_str()).or_default() += 1;
        }
        let within = match ceiling {
            Ceiling::Containers => now.len() <= CEILING,
            Ceiling::Replicas => copies.len() <= CEILING && copies.values().all(|&c| c <= 2),
        };
        assert!(
            within,
            "{what}: {} pods of {} replicas run, more than replicas + maxSurge ({ceiling:?}): \
             {now:?}\n{}",
            now.len(),
            copies.len(),
            logs(cluster)
        );
        done(&now)
    });
    (held, peak)
}

/// 3 machines on `subnet` running exactly 4 replicas of 1.0 (the manifest),
/// within the budget while they start.
fn running_hello(subnet: u8) -> Cluster {
    let cluster = Cluster::start_machines(subnet, 3);
    let path = cluster.manifest("hello.yaml", &manifest());
    ok(&cluster.cli(0, &["apply", "-f", path.to_str().unwrap()]));
    let (running, _) = follow(
        &cluster,
        Duration::from_secs(120),
        "apply",
        Ceiling::Containers,
        false,
        |p| exactly(p, V10) && cluster.rc_counts(0, "hello") == Some((4, 4)),
    );
    assert!(running, "{:?}\n{}", pods(&cluster), logs(&cluster));
    cluster
}

fn rollout_done(cluster: &Cluster, i: usize, revision: u64) {
    let out = cluster.cli(
        i,
        &["rollout", "status", "hello", "--watch", "--timeout", "60s"],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && said.contains(&format!("successfully rolled out (revision {revision})")),
        "rollout status at peer {i}: {said}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs(cluster)
    );
}

#[test]
fn a_rollout_completes_on_the_survivors_of_a_killed_machine_and_resumes_after_a_peer_restart() {
    let mut cluster = running_hello(SUBNET);

    // Phase 1: a machine running an outdated replica dies mid-rollout.
    let started = Instant::now();
    ok(&cluster.cli(0, &["rolling-update", "hello", "--image", V11]));
    let mut victim = None;
    let mut before_kill = Vec::new();
    let (moved, _) = follow(
        &cluster,
        Duration::from_secs(90),
        "rollout",
        Ceiling::Containers,
        true,
        |p| {
            let replaced = p
                .iter()
                .any(|(r, _, img)| img == V11 && r.parse::<usize>().is_ok_and(|r| r < REPLICAS));
            victim = machine_with_outdated(&cluster, p, V11, 0);
            before_kill = p.clone();
            replaced && victim.is_some()
        },
    );
    assert!(
        moved,
        "no replica moved to 1.1 while machine 1 or 2 still ran a 1.0 replica: {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );
    let victim = victim.unwrap();
    let victim_node = cluster.node_id(victim);
    cluster.kill_machine(victim);
    let killed_at = started.elapsed();
    eprintln!(
        "killed machine {victim} ({victim_node}) at {killed_at:?}, pods then {before_kill:?}"
    );

    let (rolled, peak) = follow(
        &cluster,
        Duration::from_secs(150),
        "rollout after the kill",
        Ceiling::Replicas,
        false,
        |p| {
            exactly(p, V11)
                && p.iter().all(|(_, n, _)| *n != victim_node)
                && cluster.rc_counts(0, "hello") == Some((4, 4))
        },
    );
    assert!(
        rolled,
        "the survivors did not finish the rollout: {:?}, rc {:?}\n{}",
        pods(&cluster),
        cluster.rc_counts(0, "hello"),
        logs(&cluster)
    );
    eprintln!(
        "rolled out on the survivors after {:?} (peak {peak} pods)",
        started.elapsed()
    );
    let survivors: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    rollout_done(&cluster, survivors[1], 2);
    let want = vec![(1, V10.to_owned(), false), (2, V11.to_owned(), true)];
    for &i in &survivors {
        assert_eq!(history(&cluster, i), want, "history at peer {i}");
    }

    // Phase 2: the machine boots again and takes its replicas back; then a
    // peer restarts in the middle of `rollout undo`.
    cluster.restart_machine(victim);
    cluster.wait_for_all_alive(3, Duration::from_secs(60));
    // Placement hands the machine its replicas back, make-before-break
    // (both copies run for a moment): settled once it holds one again and
    // nothing changed for 3 s.
    let mut stable_since: Option<(Pods, Instant)> = None;
    let settled = wait_until(Duration::from_secs(90), || {
        let now = pods(&cluster);
        let back = exactly(&now, V11)
            && now.iter().any(|(_, n, _)| *n == victim_node)
            && cluster.rc_counts(0, "hello") == Some((4, 4));
        if !back {
            stable_since = None;
            return false;
        }
        match &stable_since {
            Some((was, since)) if *was == now => since.elapsed() >= Duration::from_secs(3),
            _ => {
                stable_since = Some((now, Instant::now()));
                false
            }
        }
    });
    assert!(
        settled,
        "not settled after machine {victim} came back: {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );

    let started = Instant::now();
    let undone = ok(&cluster.cli(0, &["rollout", "undo", "hello"]));
    assert!(undone.contains("rolled back"), "{undone}");
    let mut restarted = None;
    let (moved, _) = follow(
        &cluster,
        Duration::from_secs(90),
        "undo",
        Ceiling::Containers,
        true,
        |p| {
            let replaced = p
                .iter()
                .any(|(r, _, img)| img == V10 && r.parse::<usize>().is_ok_and(|r| r < REPLICAS));
            restarted = machine_with_outdated(&cluster, p, V10, 0);
            replaced && restarted.is_some()
        },
    );
    assert!(
        moved,
        "no replica moved back to 1.0 while machine 1 or 2 still ran a 1.1 replica: {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );
    let restarted = restarted.unwrap();
    let before = pods(&cluster);
    cluster.terminate(restarted);
    std::thread::sleep(Duration::from_secs(2));
    cluster.spawn(restarted);
    eprintln!(
        "restarted peer {restarted} at {:?}, pods before {before:?}",
        started.elapsed()
    );

    let (resumed, peak) = follow(
        &cluster,
        Duration::from_secs(150),
        "undo after the restart",
        Ceiling::Containers,
        false,
        |p| exactly(p, V10) && cluster.rc_counts(0, "hello") == Some((4, 4)),
    );
    assert!(
        resumed,
        "the rollout did not resume after the restart: {:?}, rc {:?}\n{}",
        pods(&cluster),
        cluster.rc_counts(0, "hello"),
        logs(&cluster)
    );
    eprintln!(
        "rolled back after {:?} (peak {peak} pods)",
        started.elapsed()
    );
    rollout_done(&cluster, restarted, 3);
    let want = vec![
        (1, V10.to_owned(), false),
        (2, V11.to_owned(), false),
        (3, V10.to_owned(), true),
    ];
    for i in 0..3 {
        assert_eq!(history(&cluster, i), want, "history at peer {i}");
    }

    // No duplicate shows up later either: every replica runs once, on one node.
    let mut seen = BTreeSet::new();
    let steady = (0..10).all(|_| {
        std::thread::sleep(Duration::from_millis(500));
        let now = pods(&cluster);
        seen.extend(now.iter().map(|p| (p.0.clone(), p.1.clone())));
        exactly(&now, V10)
    });
    assert!(
        steady,
        "a duplicate after the restart: {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );
    assert_eq!(
        seen.len(),
        REPLICAS,
        "pods moved after convergence: {seen:?}"
    );
}

const PARTITION_SUBNET: u8 = 110;

/// Pods of `pods` on the machines of `side`.
fn on_side(cluster: &Cluster, pods: &Pods, side: &[usize]) -> Pods {
    let nodes: Vec<String> = side.iter().map(|&m| cluster.node_id(m)).collect();
    pods.iter()
        .filter(|p| nodes.contains(&p.1))
        .cloned()
        .collect()
}

/// Every replica 0..4 on exactly one machine (any template), no surge
/// slot (`pods` is sorted).
fn one_copy_each(pods: &Pods) -> bool {
    let replicas: Vec<&str> = pods.iter().map(|p| p.0.as_str()).collect();
    replicas == ["0", "1", "2", "3"]
}

/// At most replicas + maxSurge replica indices, each on at most two nodes
/// (a move is make-before-break; see [`Ceiling::Replicas`]): each side of
/// a split by its own view, and the whole cluster once it has settled.
fn within_budget(pods: &Pods) -> bool {
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        *copies.entry(p.0.as_str()).or_default() += 1;
    }
    copies.len() <= CEILING && copies.values().all(|&c| c <= 2)
}

/// `rolling-update` to 1.1 at peer `at`, followed (budget and floor at
/// every sample) until a replica runs 1.1.
fn roll_until_one_moved(cluster: &Cluster, at: usize, what: &str) {
    ok(&cluster.cli(at, &["rolling-update", "hello", "--image", V11]));
    let (moved, _) = follow(
        cluster,
        Duration::from_secs(90),
        what,
        Ceiling::Containers,
        true,
        |p| {
            p.iter()
                .any(|(r, _, img)| img == V11 && r.parse::<usize>().is_ok_and(|r| r < REPLICAS))
        },
    );
    assert!(
        moved,
        "{what}: no replica moved to 1.1: {:?}\n{}",
        pods(cluster),
        logs(cluster)
    );
}

#[test]
fn a_rollout_split_by_a_partition_keeps_each_side_within_budget_and_the_newest_template_wins() {
    let mut cluster = running_hello(PARTITION_SUBNET);

    roll_until_one_moved(&cluster, 0, "rollout");

    // Split: machine 0 alone, machines 1 and 2 together. The lone side
    // undoes the rollout (a newer write than the rollout's); the other
    // side goes on rolling to 1.1.
    let (minority, majority) = ([0usize], [1usize, 2]);
    cluster.partition(&minority, &majority);
    let split_at = Instant::now();
    let undone = ok(&cluster.cli(0, &["rollout", "undo", "hello"]));
    assert!(undone.contains("rolled back"), "{undone}");
    // Each side converges on its own: the lone machine runs all 4 of 1.0,
    // the pair all 4 of 1.1, and neither side breaks its budget meanwhile.
    let sides_done = wait_until(Duration::from_secs(120), || {
        let now = pods(&cluster);
        let (alone, pair) = (
            on_side(&cluster, &now, &minority),
            on_side(&cluster, &now, &majority),
        );
        assert!(
            within_budget(&alone) && within_budget(&pair),
            "a side broke its budget while split: alone {alone:?}, pair {pair:?}\n{}",
            logs(&cluster)
        );
        exactly(&alone, V10) && exactly(&pair, V11)
    });
    assert!(
        sides_done,
        "the sides did not each converge while split: {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );
    eprintln!(
        "both sides converged {:?} after the split",
        split_at.elapsed()
    );

    // Heal: the undo is the newest template, so 1.0 wins everywhere. As
    // in the simulator (`sim/src/scenarios/peer/rollout.rs`), the budget
    // holds again from the first sample where every peer sees the others
    // and the split's extra copies (8 containers for 4 replicas) are gone:
    // every replica on one machine. Until then the peers' placements
    // differ, as while split. A container count at or under the ceiling
    // is not enough: an owner replacing its outdated copy in place (stop,
    // then start) dips it while the other side's copy still waits to hand
    // over (seen in CI: 5 containers, then 8). A replica may also gain a
    // third copy: the pair's bounded-load placement may have put it on a
    // machine that is not its owner among all three, whose copy of the
    // current template then starts beside the two. Meanwhile the whole
    // stays within the two sides' budgets together.
    cluster.heal();
    let healed_at = Instant::now();
    let mut rejoined: Option<Duration> = None;
    // When every peer first saw the others, and the last sample above
    // replicas + maxSurge containers: the owner of a replica whose
    // current copy ran on the other side replaces its outdated copy at
    // once, so the excess lasts a drain and a start, not the 30 s bound.
    let mut views_agree: Option<Duration> = None;
    let mut last_above: Option<Duration> = None;
    let mut peak = 0;
    let mut peak_pods = Pods::new();
    let converged = wait_until(Duration::from_secs(150), || {
        let now = pods(&cluster);
        let all_alive =
            views_agree.is_some() || (0..3).all(|i| cluster.count_nodes(i, "Alive") == 3);
        if views_agree.is_none() && all_alive {
            views_agree = Some(healed_at.elapsed());
        }
        if now.len() > peak {
            peak = now.len();
            peak_pods = now.clone();
        }
        if now.len() > CEILING {
            last_above = Some(healed_at.elapsed());
        }
        if rejoined.is_none() && one_copy_each(&now) && all_alive {
            rejoined = Some(healed_at.elapsed());
        }
        if rejoined.is_some() {
            assert!(
                within_budget(&now),
                "{} pods after the heal settled, more than replicas + maxSurge: {now:?}\n{}",
                now.len(),
                logs(&cluster)
            );
            if let Some((_, ready)) = cluster.rc_counts(0, "hello") {
                assert!(
                    ready >= REPLICAS as u64,
                    "peer 0 counts {ready} ready after the heal settled: {now:?}\n{}",
                    logs(&cluster)
                );
            }
        }
        exactly(&now, V10) && (0..3).all(|i| cluster.rc_counts(i, "hello") == Some((4, 4)))
    });
    assert!(
        converged,
        "not converged to 1.0 after the heal: {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );
    eprintln!(
        "after the heal: every peer sees the others at {views_agree:?}, last above the ceiling \
         at {last_above:?}, one copy of each replica with every peer seeing the others at {rejoined:?}, \
         converged at {:?}, at most {peak} containers: {peak_pods:?}",
        healed_at.elapsed()
    );
    assert!(
        peak <= 2 * CEILING,
        "{peak} containers after the heal, more than the two sides' budgets together: {peak_pods:?}"
    );
    let agreed = views_agree.expect("the peers saw each other again");
    let excess = last_above.map_or(Duration::ZERO, |t| t.saturating_sub(agreed));
    assert!(
        excess <= Duration::from_secs(10),
        "above replicas + maxSurge for {excess:?} after the peers saw each other again"
    );
    let want = vec![
        (1, V10.to_owned(), false),
        (2, V11.to_owned(), false),
        (3, V10.to_owned(), true),
    ];
    for i in 0..3 {
        assert_eq!(history(&cluster, i), want, "history at peer {i}");
    }
    rollout_done(&cluster, 2, 3);

    // The whole site loses power in the middle of the next rollout (every
    // peer, engine and container at once) and boots again: the rollout
    // resumes from the persisted state and completes, within the budget.
    roll_until_one_moved(&cluster, 1, "rollout before the power loss");
    let before = pods(&cluster);
    for m in 0..3 {
        cluster.kill_machine(m);
    }
    std::thread::sleep(Duration::from_secs(2));
    let booted = Instant::now();
    for m in 0..3 {
        cluster.restart_machine(m);
    }
    // The machines boot one after another: the first peers up may start
    // replicas of machines still booting and hand them back once those are
    // up (make-before-break), so replicas, not containers, are counted.
    let (resumed, peak) = follow(
        &cluster,
        Duration::from_secs(180),
        "rollout after the site rebooted",
        Ceiling::Replicas,
        false,
        |p| exactly(p, V11) && (0..3).all(|i| cluster.rc_counts(i, "hello") == Some((4, 4))),
    );
    assert!(
        resumed,
        "the rollout did not complete after the reboot (pods before it {before:?}): {:?}\n{}",
        pods(&cluster),
        logs(&cluster)
    );
    eprintln!(
        "the site rebooted mid-rollout (pods then {before:?}); rolled out {:?} after the boot, peak {peak} pods",
        booted.elapsed()
    );
    rollout_done(&cluster, 0, 4);
    for i in 0..3 {
        let revisions: Vec<u64> = history(&cluster, i).iter().map(|r| r.0).collect();
        assert_eq!(revisions, [1, 2, 3, 4], "history at peer {i}");
    }
}
