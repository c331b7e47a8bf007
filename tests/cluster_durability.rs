//! Acknowledged writes survive a crash right after the answer: real
//! `shoal up` processes, `kill -9` as soon as the reply arrives.

mod cluster_support;

use std::time::Duration;

use cluster_support::{Cluster, hello_rc, http, wait_until};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The RC names peer `i` lists, or `None` if it does not answer.
fn rc_names(cluster: &Cluster, i: usize) -> Option<Vec<String>> {
    let rcs = cluster.try_get_json(i, "rc")?;
    let mut names: Vec<String> = rcs
        .as_array()?
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Some(names)
}

#[test]
fn no_acknowledged_apply_is_lost_when_the_peer_is_killed_right_after_answering() {
    // One peer: nobody else holds a copy, so only its own disk can keep
    // what it acknowledged.
    let mut cluster = Cluster::start(26, 1);
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..10 {
        for k in 0..5 {
            let name = format!("r{round}-{k}");
            // Zero replicas: the test is about the write, not containers.
            let manifest = hello_rc(&name, 0, "shoal-test/hello:1.0");
            let reply = http(
                &cluster.peers[0].api_addr(),
                "POST",
                "/api/v1/rcs",
                Some(&manifest),
                TIMEOUT,
            );
            match reply {
                Some((201, _)) => acknowledged.push(name),
                other => panic!("apply {name} answered {other:?}"),
            }
        }
        // The last answer just arrived: crash now, before any snapshot.
        cluster.kill9(0);
        cluster.spawn(0);
        let names = rc_names(&cluster, 0).expect("peer answers after restart");
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|n| names.binary_search(n).is_err())
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged but lost after kill -9: {lost:?}\n{}",
            cluster.log_tail(0)
        );
    }
    assert_eq!(acknowledged.len(), 50);
}

#[test]
fn a_replicated_write_survives_losing_the_peer_that_answered_for_good() {
    let mut cluster = Cluster::start(27, 2);
    let manifest = hello_rc("kept", 0, "shoal-test/hello:1.0");
    let reply = http(
        &cluster.peers[0].api_addr(),
        "POST",
        "/api/v1/rcs?wait=replicated",
        Some(&manifest),
        TIMEOUT,
    );
    assert!(matches!(reply, Some((201, _))), "{reply:?}");
    // The answering machine is lost with its disk: the other peer has it.
    cluster.kill9(0);
    let _ = std::fs::remove_dir_all(&cluster.peers[0].data_dir);
    cluster.kill9(1);
    cluster.spawn(1);
    assert!(
        wait_until(TIMEOUT, || rc_names(&cluster, 1)
            .is_some_and(|n| n.contains(&"kept".to_owned()))),
        "the replicated write is gone: {:?}",
        rc_names(&cluster, 1)
    );
}

#[test]
fn a_replicated_write_with_no_other_live_peer_says_it_is_only_durable_here() {
    let cluster = Cluster::start(28, 1);
    let out = cluster.cli(
        0,
        &[
            "apply",
            "--replicated",
            "-f",
            cluster
                .manifest("alone.yaml", &hello_rc("alone", 0, "shoal-test/hello:1.0"))
                .to_str()
                .unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("durable on this peer") && stderr.contains("no other peer is alive"),
        "{stderr}"
    );
    // It was still applied, and it is durable.
    assert_eq!(rc_names(&cluster, 0), Some(vec!["alone".to_owned()]));
}

#[test]
fn an_unchanged_re_apply_is_answered_at_once() {
    let cluster = Cluster::start(29, 1);
    let manifest = hello_rc("same", 0, "shoal-test/hello:1.0");
    let api = cluster.peers[0].api_addr();
    let first = http(&api, "POST", "/api/v1/rcs", Some(&manifest), TIMEOUT);
    assert!(matches!(first, Some((201, _))), "{first:?}");
    // Let the state go quiet: nothing new will be written after this.
    std::thread::sleep(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let again = http(&api, "POST", "/api/v1/rcs", Some(&manifest), TIMEOUT);
    assert!(
        matches!(&again, Some((200, body)) if body.contains("unchanged")),
        "{again:?} after {:?}",
        started.elapsed()
    );
}

#[test]
fn a_state_file_edited_while_the_peer_was_down_is_refused_with_what_to_do() {
    let mut cluster = Cluster::start(46, 1);
    let manifest = hello_rc("edited", 0, "shoal-test/hello:1.0");
    let api = cluster.peers[0].api_addr();
    assert!(matches!(
        http(&api, "POST", "/api/v1/rcs", Some(&manifest), TIMEOUT),
        Some((201, _))
    ));
    cluster.terminate(0);
    // Same length, still decodable: another image under the same stamp.
    let path = cluster.peers[0].data_dir.join("state.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(3)
        .position(|w| w == b"1.0")
        .expect("the image is in the snapshot");
    bytes[at..at + 3].copy_from_slice(b"6.6");
    std::fs::write(&path, &bytes).unwrap();
    let out = std::process::Command::new(cluster_support::shoal_bin())
        .args([
            "up",
            "--listen",
            "127.0.46.11:7946",
            "--api",
            "127.0.46.11:7070",
        ])
        .arg("--data-dir")
        .arg(&cluster.peers[0].data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("state.bin is corrupt")
            && stderr.contains("checksum")
            && stderr.contains("move it away"),
        "{stderr}"
    );
}
