//! Images without a registry, with real peers and one Docker engine per
//! machine: a replica placed on a machine whose engine lacks its image
//! gets it from a peer that holds it, with the same image ID; holders serve
//! only the cluster's images, under the ID they announced; a transfer
//! cut by the death of its source completes from another holder.
#![cfg(feature = "shell")]

mod cluster_support;

use std::net::SocketAddr;
use std::time::Duration;

use cluster_support::images::{image_id, remove_image};
use cluster_support::{Cluster, hello_rc, ok, sh, wait_until};
use shoal::shell::images::wire::{FetchRequest, REFUSED, SIZED};
use shoal_crdt_state::node::NodeId;
use shoal_gossip::quic::{JoinToken, NodeKey, QuicConfig, QuicTransport};

const IMAGE: &str = "shoal-test/hello:1.0";

/// Asks the peer at `to` for `reference` as `id`, as a member would (a
/// transport holding the cluster's join token); returns the answer's
/// status byte, its length and the start of its text.
fn fetch(token: &str, to: SocketAddr, reference: &str, id: &str) -> (u8, usize, String) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let token: JoinToken = token.parse().unwrap();
        let listen: SocketAddr = format!("{}:0", to.ip()).parse().unwrap();
        let mut config = QuicConfig::new(listen, token);
        // Peers require a certificate naming a node id: an unbound one, as
        // a member that just joined.
        config.node_key = Some(NodeKey {
            node: NodeId(0x7e57_0000_0000_fe7c),
            seed: [0x42; 32],
        });
        let (transport, _inbound) = QuicTransport::bind(config).unwrap();
        let request = FetchRequest {
            reference: reference.to_owned(),
            id: id.to_owned(),
        };
        let mut reply = transport
            .request_stream(to, request.encode(), Duration::from_secs(10))
            .await
            .expect("the peer answers a fetch");
        let mut answer = Vec::new();
        while let Some(chunk) = reply.next_chunk().await.expect("a whole answer") {
            answer.extend_from_slice(&chunk);
        }
        transport.shutdown().await;
        let text = String::from_utf8_lossy(&answer[1..answer.len().min(300)]).into_owned();
        (answer[0], answer.len(), text)
    })
}

#[test]
fn replicas_on_machines_without_the_image_get_it_from_a_peer() {
    let cluster = Cluster::start_machines(52, 3);
    let id = image_id(&cluster, 0, IMAGE).expect("machine 0 holds the test image");
    // Only machine 0 keeps the image; no registry is reachable.
    for i in [1, 2] {
        remove_image(&cluster, i, IMAGE);
        assert_eq!(image_id(&cluster, i, IMAGE), None);
    }

    let manifest = cluster.manifest("web.yaml", &hello_rc("web", 3, IMAGE));
    ok(&cluster.cli(1, &["apply", "-f", manifest.to_str().unwrap()]));
    let all_run = wait_until(Duration::from_secs(90), || {
        cluster.running_pods(0, "web").len() == 3
            && (0..3).all(|i| !cluster.machine_containers(i).is_empty())
    });
    assert!(
        all_run,
        "3 replicas on 3 machines never ran: {:?} per machine {:?}\n{}\n{}",
        cluster.running_pods(0, "web"),
        (0..3)
            .map(|i| cluster.machine_containers(i))
            .collect::<Vec<_>>(),
        cluster.log_tail(1),
        cluster.log_tail(2)
    );
    for i in [1, 2] {
        assert_eq!(
            image_id(&cluster, i, IMAGE).as_deref(),
            Some(id.as_str()),
            "machine {i} holds another image than machine 0"
        );
    }
    // Every node announces the image under its ID.
    let announced = wait_until(Duration::from_secs(15), || {
        let nodes = cluster.get_json(0, "nodes");
        let nodes = nodes.as_array().cloned().unwrap_or_default();
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["images"][IMAGE].as_str() == Some(id.as_str()))
    });
    assert!(
        announced,
        "not every node announces {IMAGE}: {}",
        cluster.get_json(0, "nodes")
    );

    // `get images` at any peer: the image, its ID, held by all 3 nodes.
    let listed = cluster.get_json(2, "images");
    assert_eq!(listed[0]["image"], IMAGE, "{listed}");
    assert_eq!(
        listed[0]["holders"].as_object().unwrap().len(),
        3,
        "{listed}"
    );
    assert_eq!(
        listed[0]["missing"].as_array().unwrap().len(),
        0,
        "{listed}"
    );
    let table = ok(&cluster.cli(2, &["get", "images"]));
    let short = &id["sha256:".len().."sha256:".len() + 12];
    assert!(
        table.contains(IMAGE) && table.contains(short) && table.contains("3/3"),
        "{table}"
    );

    // A member asking machine 0 directly: the image of an RC, under its ID,
    // comes as an archive; any other image, or another ID, is refused.
    let to: SocketAddr = cluster.peers[0].peer_addr().parse().unwrap();
    // The archive comes after the image's size, for the requester's progress.
    let (status, size, _) = fetch(&cluster.token, to, IMAGE, &id);
    assert_eq!(status, SIZED);
    assert!(size > 100_000, "an archive of {size} bytes");
    let other = "shoal-test/hello:1.1";
    let other_id = image_id(&cluster, 0, other).expect("machine 0 holds hello:1.1");
    let (status, _, why) = fetch(&cluster.token, to, other, &other_id);
    assert_eq!(status, REFUSED, "served an image no RC uses: {why}");
    assert!(why.contains("not an image of any RC"), "{why}");
    let (status, _, why) = fetch(&cluster.token, to, IMAGE, "sha256:0000");
    assert_eq!(status, REFUSED, "served under another ID: {why}");
    assert!(why.contains("not sha256:0000"), "{why}");
}

/// `docker` against engine `i`, which must succeed; its stdout.
fn docker(cluster: &Cluster, i: usize, args: &[&str]) -> String {
    let out = cluster.engine(i).docker().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} on machine {i}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Labels the images tests build, so that they can be told apart and removed.
const BUILT_LABEL: &str = "io.shoal.test-built=cluster_images";

/// Builds `reference` on engine `i`: the hello image plus `mb` MB of random
/// data, so that a transfer of it lasts long enough to be cut. No
/// `io.shoal.test` label: it exists only in this cluster's engines.
fn build_big_image(cluster: &Cluster, i: usize, reference: &str, mb: usize) {
    let dir = cluster.dir.join("big-image");
    std::fs::create_dir_all(dir.join("extra/data")).unwrap();
    let rootfs = dir.join("rootfs.tar");
    let container = docker(cluster, i, &["create", IMAGE]);
    docker(
        cluster,
        i,
        &["export", "-o", rootfs.to_str().unwrap(), &container],
    );
    docker(cluster, i, &["rm", &container]);
    sh(&format!(
        "head -c {} /dev/urandom > {dir}/extra/data/blob && tar -rf {dir}/rootfs.tar -C {dir}/extra data",
        mb * 1_000_000,
        dir = dir.display()
    ));
    docker(
        cluster,
        i,
        &[
            "import",
            "--change",
            r#"CMD ["/init"]"#,
            "--change",
            "EXPOSE 80/tcp",
            "--change",
            "ENV PATH=/bin",
            "--change",
            &format!("LABEL {BUILT_LABEL}"),
            rootfs.to_str().unwrap(),
            reference,
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Removes the images this file built from engine `i` (by their label).
fn remove_built_images(cluster: &Cluster, i: usize) {
    let ids = docker(
        cluster,
        i,
        &["images", "-q", "--filter", &format!("label={BUILT_LABEL}")],
    );
    for id in ids.split_whitespace() {
        let _ = cluster
            .engine(i)
            .docker()
            .args(["image", "rm", "-f", id])
            .output();
    }
}

/// An RC of one replica of `image` that only machine `machine` may run.
fn rc_on_machine(name: &str, image: &str, machine: usize) -> String {
    hello_rc(name, 1, image).replace(
        "    spec:\n      terminationGracePeriodSeconds",
        &format!(
            "    spec:\n      nodeSelector:\n        machine: \"{machine}\"\n      terminationGracePeriodSeconds"
        ),
    )
}

/// Samples machine 1's transfer of `image` (and its `get images` table
/// once bytes move) until the replica runs there; whether it ran.
fn watch_transfer(
    cluster: &Cluster,
    image: &str,
    samples: &mut Vec<serde_json::Value>,
    table: &mut Option<String>,
) -> bool {
    wait_until(Duration::from_secs(120), || {
        if let Some(images) = cluster.try_get_json(1, "images")
            && let Some(t) = images
                .as_array()
                .and_then(|a| a.iter().find(|i| i["image"] == image))
                .and_then(|i| i["transfers"].as_array()?.first().cloned())
        {
            let moving = t["received_bytes"].as_u64().is_some_and(|b| b > 0);
            samples.push(t);
            if table.is_none() && moving {
                *table = Some(ok(&cluster.cli(1, &["get", "images"])));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        matches!(pod_state(cluster, 1, "progress"), Some((node, phase, _)) if node == "node1" && phase == "Running")
    })
}

#[test]
fn get_images_shows_a_transfer_in_flight_with_growing_bytes() {
    const BIG: &str = "shoal-test-progress/big:1.0";
    const MB: usize = 150;
    let cluster = Cluster::builder(94, 2)
        .engine_per_node()
        .machine_labels()
        .start();
    build_big_image(&cluster, 0, BIG, MB);
    assert_eq!(image_id(&cluster, 1, BIG), None);
    let manifest = cluster.manifest("progress.yaml", &rc_on_machine("progress", BIG, 1));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));

    // Watch machine 1's peer list the transfer until the replica runs,
    // while peer 0 is asked about the waiting pod as often as the CLI
    // allows: on a fast machine the transfer lasts about 2 s.
    let mut samples: Vec<serde_json::Value> = Vec::new();
    let mut table = None;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (running, described) = std::thread::scope(|scope| {
        let describer = scope.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let out = cluster.cli(0, &["describe", "pod", "progress-0"]);
                let out = String::from_utf8_lossy(&out.stdout);
                if out.contains("ImageTransferring from node0 (") {
                    return Ok(out.into_owned());
                }
                seen.push(out.into_owned());
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(seen)
        });
        let running = watch_transfer(&cluster, BIG, &mut samples, &mut table);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (running, describer.join().unwrap())
    });
    assert!(
        running,
        "the replica never ran on machine 1: {:?}\n{}",
        pod_state(&cluster, 1, "progress"),
        cluster.log_tail(1)
    );
    let received: Vec<u64> = samples
        .iter()
        .map(|t| t["received_bytes"].as_u64().unwrap())
        .collect();
    eprintln!("bytes received as `get images` showed them: {received:?}");
    assert!(
        received.windows(2).any(|w| w[1] > w[0]) && received.windows(2).all(|w| w[1] >= w[0]),
        "`get images` did not show the bytes growing: {received:?}"
    );
    let last = samples.last().unwrap();
    eprintln!("last row seen: {last}");
    assert_eq!(
        (&last["node"], &last["from"]),
        (&"node1".into(), &"node0".into()),
        "{last}"
    );
    let total = last["total_bytes"].as_u64().unwrap_or(0);
    assert!(
        (MB as u64 * 1_000_000..(MB as u64 + 20) * 1_000_000).contains(&total),
        "a total of {total} bytes for a {MB} MB image: {last}"
    );
    let percent = last["percent"].as_u64().unwrap();
    assert!(percent <= 99, "{last}");
    assert!(last["bytes_per_second"].as_u64().unwrap() > 0, "{last}");
    let table = table.expect("`get images` never showed bytes received");
    eprintln!("{table}");
    assert!(
        table.contains("node1<-node0 ") && table.contains("%, ") && table.contains("MB/s"),
        "{table}"
    );
    let described = described.unwrap_or_else(|seen| {
        panic!("`describe pod` at peer 0 never showed the transfer; it showed:\n{seen:#?}")
    });
    assert!(
        described.contains(" MB, ") && described.contains("MB/s"),
        "{described}"
    );

    // Done: it disappears everywhere, machine 1 holds the image under its ID,
    // and the pod's events tell the transfer.
    let gone = wait_until(Duration::from_secs(15), || {
        [0, 1].iter().all(|&i| {
            cluster
                .get_json(i, "images")
                .as_array()
                .unwrap()
                .iter()
                .all(|row| {
                    row["transfers"].as_array().unwrap().is_empty()
                        && row["transferring_elsewhere"]
                            .as_object()
                            .unwrap()
                            .is_empty()
                })
        })
    });
    assert!(
        gone,
        "{}\n{}",
        cluster.get_json(0, "images"),
        cluster.get_json(1, "images")
    );
    assert_eq!(image_id(&cluster, 1, BIG), image_id(&cluster, 0, BIG));
    let events = ok(&cluster.cli(0, &["get", "events"]));
    assert!(
        events
            .lines()
            .any(|l| l.contains("Transferring") && l.contains("ImageTransferring from node0")),
        "{events}"
    );
    ok(&cluster.cli(0, &["delete", "rc", "progress"]));
    for i in 0..2 {
        remove_built_images(&cluster, i);
    }
}

/// The replica of `rc`'s pods as peer `i` reports them: (node, phase,
/// preparing) of the first.
fn pod_state(cluster: &Cluster, i: usize, rc: &str) -> Option<(String, String, Option<String>)> {
    let pods = cluster.try_get_json(i, "pods")?;
    let pod = pods.as_array()?.iter().find(|p| p["rc"] == rc)?.clone();
    Some((
        pod["node"].as_str()?.to_owned(),
        pod["phase"].as_str()?.to_owned(),
        pod["preparing"].as_str().map(str::to_owned),
    ))
}

#[test]
fn a_transfer_cut_by_killing_its_source_completes_from_another_holder() {
    const BIG: &str = "shoal-test-cut/big:1.0";
    let mut cluster = Cluster::builder(62, 4)
        .engine_per_node()
        .machine_labels()
        .start();
    build_big_image(&cluster, 0, BIG, 90);
    sh(&format!(
        "docker -H {} save {BIG} | docker -H {} load -q",
        cluster.engine(0).host(),
        cluster.engine(1).host()
    ));
    let id = image_id(&cluster, 0, BIG).unwrap();
    assert_eq!(image_id(&cluster, 1, BIG).as_deref(), Some(id.as_str()));
    assert_eq!(image_id(&cluster, 3, BIG), None);

    // One replica, which only machine 3 may run.
    let rc = hello_rc("cut", 1, BIG).replace(
        "    spec:\n      terminationGracePeriodSeconds",
        "    spec:\n      nodeSelector:\n        machine: \"3\"\n      terminationGracePeriodSeconds",
    );
    let manifest = cluster.manifest("cut.yaml", &rc);
    ok(&cluster.cli(2, &["apply", "-f", manifest.to_str().unwrap()]));

    // Cut the transfer as soon as machine 3 reports it under way.
    let mut source = None;
    let transferring = wait_until(Duration::from_secs(30), || {
        if let Some((node, _, Some(preparing))) = pod_state(&cluster, 3, "cut")
            && node == "node3"
            && let Some(from) = preparing.strip_prefix("ImageTransferring from node")
        {
            source = from.get(..1).and_then(|d| d.parse::<usize>().ok());
        }
        source.is_some()
    });
    assert!(
        transferring,
        "machine 3 never reported the transfer: {:?}\n{}",
        pod_state(&cluster, 3, "cut"),
        cluster.log_tail(3)
    );
    let source = source.unwrap();
    assert!(source < 2, "machine {source} does not hold {BIG}");
    cluster.kill_machine(source);
    let other = 1 - source;

    // Meanwhile machine 3's `get images` shows the retry from the other holder.
    let mut retry_seen = Vec::new();
    let running = wait_until(Duration::from_secs(45), || {
        if let Some(images) = cluster.try_get_json(3, "images")
            && let Some(transfers) = images[0]["transfers"].as_array()
        {
            retry_seen.extend(
                transfers
                    .iter()
                    .filter(|t| t["from"] == format!("node{other}").as_str())
                    .filter_map(|t| t["received_bytes"].as_u64()),
            );
        }
        matches!(pod_state(&cluster, 3, "cut"), Some((node, phase, _)) if node == "node3" && phase == "Running")
    });
    assert!(
        running,
        "after machine {source} died mid-transfer the replica never ran: {:?}\n{}",
        pod_state(&cluster, 3, "cut"),
        cluster.log_tail(3)
    );
    assert!(
        !retry_seen.is_empty(),
        "`get images` at machine 3 never showed the transfer from node{other}"
    );
    eprintln!("bytes from node{other} as `get images` showed them: {retry_seen:?}");
    assert_eq!(
        image_id(&cluster, 3, BIG).as_deref(),
        Some(id.as_str()),
        "machine 3 holds another image than machines 0 and 1"
    );
    // The log says the transfer was cut, then came from the other holder.
    let log = std::fs::read_to_string(&cluster.peers[3].log).unwrap();
    let line = |what: &str, holder: usize| {
        log.lines()
            .any(|l| l.contains(what) && l.contains(&format!("holder=node{holder}")))
    };
    assert!(
        line("image fetch failed", source) && line("image transferred and loaded", other),
        "machine 3 did not fail over from node{source} to node{other}:\n{}",
        cluster.log_tail(3)
    );
    // The failed holder stays in machine 3's events, with the reason.
    let events = ok(&cluster.cli(3, &["get", "events"]));
    assert!(
        events.lines().any(|l| l.contains("TransferFailed")
            && l.contains(&format!("Image transfer failed from node{source}: "))),
        "{events}"
    );
    for i in [1, 2, 3].into_iter().filter(|&i| i != source) {
        let _ = cluster
            .engine(i)
            .docker()
            .args(["image", "rm", "-f", BIG])
            .output();
    }
}

#[test]
fn shoal_image_load_seeds_an_engine_through_its_peer() {
    const SEED: &str = "shoal-test-seed/hello:1.1";
    let cluster = Cluster::start_machines(63, 2);
    // The test's own tag of a test image, saved, then gone from the engines.
    let archive = cluster.dir.join("seed.tar");
    docker(&cluster, 0, &["tag", "shoal-test/hello:1.1", SEED]);
    docker(
        &cluster,
        0,
        &["save", "-o", archive.to_str().unwrap(), SEED],
    );
    let id = image_id(&cluster, 0, SEED).unwrap();
    remove_image(&cluster, 0, SEED);
    // Over the API's manifest limit: an archive is exempt from it.
    let size = std::fs::metadata(&archive).unwrap().len();
    assert!(
        size > shoal::shell::api::MAX_BODY_BYTES as u64,
        "{size} bytes"
    );
    assert_eq!(image_id(&cluster, 1, SEED), None);

    // From a file through peer 0, from standard input through peer 1.
    let said = ok(&cluster.cli(0, &["image", "load", "-i", archive.to_str().unwrap()]));
    assert_eq!(said.trim(), format!("Loaded image: {SEED} ({id})"));
    let mut load = std::process::Command::new(cluster_support::shoal_bin())
        .args(["image", "load", "-i", "-"])
        .env("SHOAL_SERVER", cluster.peers[1].server())
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let said = String::from_utf8_lossy(&load.stdout);
    assert_eq!(said.trim(), format!("Loaded image: {SEED} ({id})"));
    for i in 0..2 {
        assert_eq!(image_id(&cluster, i, SEED).as_deref(), Some(id.as_str()));
    }

    // Not an archive: a clear error, nothing loaded.
    let junk = cluster.manifest("junk.tar", "not an image archive\n");
    load = cluster.cli(0, &["image", "load", "-i", junk.to_str().unwrap()]);
    let why = String::from_utf8_lossy(&load.stderr);
    assert!(!load.status.success());
    assert!(why.contains("the engine refused the archive"), "{why}");

    // Once an RC uses it, `get images` shows both nodes holding it.
    let manifest = cluster.manifest("seed.yaml", &hello_rc("seed", 2, SEED));
    ok(&cluster.cli(0, &["apply", "-f", manifest.to_str().unwrap()]));
    let listed = wait_until(Duration::from_secs(20), || {
        let images = cluster.get_json(1, "images");
        images[0]["image"] == SEED
            && images[0]["holders"]
                .as_object()
                .is_some_and(|h| h.len() == 2 && h.values().all(|v| *v == *id))
    });
    assert!(listed, "{}", cluster.get_json(1, "images"));
    let running = wait_until(Duration::from_secs(30), || {
        cluster.running_pods(0, "seed").len() == 2
    });
    assert!(running, "{:?}", cluster.get_json(0, "pods"));
}
