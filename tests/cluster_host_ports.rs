//! A host port held by a running replica is never taken from it: real
//! `shoal up` peers, the real Docker engine. Each peer publishes on its own
//! loopback address, so one host port can be held once per node.
#![cfg(feature = "shell")]

mod cluster_support;

use std::time::Duration;

use cluster_support::{Cluster, hello_rc, wait_until};

/// `hello_rc` whose pods publish container port 80 on host port `port`.
fn with_host_port(name: &str, replicas: u32, port: u16) -> String {
    hello_rc(name, replicas, "shoal-test/hello:1.0").replace(
        "        - containerPort: 80\n",
        &format!("        - containerPort: 80\n          hostPort: {port}\n"),
    )
}

#[test]
fn a_newcomer_needing_a_held_host_port_waits_unplaced_and_evicts_nobody() {
    let cluster = Cluster::start(45, 3);
    let a = cluster.manifest("a.yaml", &with_host_port("a", 3, 18080));
    assert!(
        cluster
            .cli(0, &["apply", "-f", a.to_str().unwrap()])
            .status
            .success()
    );
    assert!(
        wait_until(Duration::from_secs(60), || cluster.engine_copies("a").len()
            == 3),
        "a never ran 3 copies: {:?}",
        cluster.engine_copies("a")
    );
    let before = cluster.engine_copies("a");

    let b = cluster.manifest("b.yaml", &with_host_port("b", 1, 18080));
    assert!(
        cluster
            .cli(1, &["apply", "-f", b.to_str().unwrap()])
            .status
            .success()
    );
    // B is reported unplaced with the port and its holders...
    let reason = wait_until(Duration::from_secs(20), || {
        let out = cluster.cli(2, &["describe", "rc", "b"]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.contains("port 18080/TCP is in use by a-0, a-1, a-2")
    });
    assert!(
        reason,
        "no reason naming the port: {}",
        String::from_utf8_lossy(&cluster.cli(2, &["describe", "rc", "b"]).stdout)
    );
    // ... and, well past the handover bound, A still runs where it ran.
    std::thread::sleep(Duration::from_secs(35));
    assert_eq!(cluster.engine_copies("a"), before, "a replica of A moved");
    assert!(cluster.engine_copies("b").is_empty(), "B took a port");

    // Once A is gone, B gets the port.
    assert!(cluster.cli(0, &["delete", "rc", "a"]).status.success());
    assert!(
        wait_until(Duration::from_secs(60), || cluster.engine_copies("b").len()
            == 1),
        "b never ran: {}",
        String::from_utf8_lossy(&cluster.cli(2, &["describe", "rc", "b"]).stdout)
    );
}
