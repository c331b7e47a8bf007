//! Peers sharing one Docker engine share its bridge address, where pods
//! reach DNS and the service ports: only the first peer binds each. Shown
//! with one loopback service address for both peers (the machine engine's
//! bridge address is shared with every other test): the second peer finds
//! DNS taken by a peer of its own cluster and says so, nothing fails, the
//! shared address answers for the cluster, and a service port taken there
//! is described, not treated as broken.

mod cluster_support;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use cluster_support::{Cluster, ok, wait_until};

/// Our loopback range: 127.0.91.x.
const SUBNET: u8 = 91;
const SHARED: &str = "127.0.91.100";
const DNS_PORT: &str = "5391";

fn log(cluster: &Cluster, i: usize) -> String {
    std::fs::read_to_string(&cluster.peers[i].log).unwrap_or_default()
}

#[test]
fn two_peers_on_one_service_address_serve_it_once_and_say_so() {
    let mut cluster = Cluster::start_with_args(
        SUBNET,
        2,
        &["--service-address", SHARED, "--dns-port", DNS_PORT],
    );
    let logs =
        |cluster: &Cluster| format!("peer 0:\n{}\npeer 1:\n{}", log(cluster, 0), log(cluster, 1));

    // Peer 1 started second: peer 0 holds DNS at the shared address.
    let said = wait_until(Duration::from_secs(10), || {
        log(&cluster, 1).contains(&format!(
            "DNS at {SHARED}:{DNS_PORT} is served by another peer of this cluster"
        ))
    });
    assert!(
        said,
        "no note of the shared DNS address\n{}",
        logs(&cluster)
    );
    let dig = Command::new("dig")
        .args([
            &format!("@{SHARED}"),
            "-p",
            DNS_PORT,
            "+short",
            "+time=2",
            "+tries=2",
            "_cluster.svc.shoal",
            "TXT",
        ])
        .output()
        .expect("run dig (bind9-dnsutils)");
    assert_eq!(
        String::from_utf8_lossy(&dig.stdout).trim(),
        format!("\"{}\"", cluster.cluster_id),
        "{}",
        logs(&cluster)
    );

    let service = cluster.manifest(
        "shared.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: shared\nspec:\n  selector:\n    app: nothing\n  ports:\n  - port: 8091\n    targetPort: 80\n",
    );
    ok(&cluster.cli(0, &["apply", "-f", service.to_str().unwrap()]));
    // One peer listens on the shared port; the other one describes it.
    let described = wait_until(Duration::from_secs(15), || {
        ok(&cluster.cli(1, &["describe", "svc", "shared"])).contains("Not listening:")
    });
    let text = ok(&cluster.cli(1, &["describe", "svc", "shared"]));
    assert!(described, "{text}\n{}", logs(&cluster));
    let not_listening: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(&format!("{SHARED}:8091")))
        .collect();
    assert_eq!(not_listening.len(), 1, "{text}");
    // The peer that also lost DNS knows who holds the port.
    if not_listening[0].contains("n1:") || not_listening[0].contains("node1:") {
        assert!(
            not_listening[0].contains("most likely by another peer of this cluster"),
            "{text}"
        );
    }
    assert!(
        TcpStream::connect_timeout(
            &format!("{SHARED}:8091").parse().unwrap(),
            Duration::from_secs(2)
        )
        .is_ok(),
        "nobody listens on the shared service port\n{}",
        logs(&cluster)
    );
    for i in 0..2 {
        assert!(
            cluster.peers[i].is_running(),
            "peer {i} exited\n{}",
            logs(&cluster)
        );
    }
}
