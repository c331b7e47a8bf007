//! Telling who holds a DNS address: peers sharing one Docker engine share
//! its bridge address, and only the first binds DNS there. A Shoal DNS
//! server answers `_cluster.svc.shoal TXT` with its cluster id (also for
//! `dig`); a socket that is no DNS server is told apart.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use shoal::services::ServiceTable;
use shoal::shell::service_dns::holder::{Holder, holder_of};
use shoal::shell::service_dns::{DnsServer, Upstreams};
use tokio::sync::watch;

/// This file's loopback range: 127.0.91.x.
const PEER: [u8; 4] = [127, 0, 91, 21];
const SILENT: [u8; 4] = [127, 0, 91, 22];

#[tokio::test]
async fn a_peer_answers_its_cluster_id_and_a_silent_socket_is_no_peer() {
    let (_tables, rx) = watch::channel(Arc::new(ServiceTable::default()));
    let dns = DnsServer::spawn(
        &[SocketAddr::from((PEER, 0))],
        rx,
        Upstreams::default(),
        "c0ffee",
    )
    .await
    .expect("binds");
    let addr = dns.addrs()[0];
    assert_eq!(
        holder_of(addr).await,
        Holder::Peer {
            cluster: "c0ffee".to_owned()
        }
    );

    // What a user sees with dig, over UDP.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("dig")
            .args([
                &format!("@{}", addr.ip()),
                "-p",
                &addr.port().to_string(),
                "_cluster.svc.shoal",
                "TXT",
                "+short",
                "+time=5",
                "+tries=1",
            ])
            .output()
            .expect("run dig (bind9-dnsutils)")
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"c0ffee\"");

    // Bound but never answering: no peer, said so.
    let silent = tokio::net::UdpSocket::bind(SocketAddr::from((SILENT, 0)))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let held = holder_of(silent.local_addr().unwrap()).await;
    assert!(
        matches!(&held, Holder::Other(why) if why.contains("no answer")),
        "{held:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
