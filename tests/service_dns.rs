//! Every peer's DNS server for services, asked by `dig` (Debian's
//! bind9-dnsutils) over UDP and TCP. The table is fed directly (the control
//! plane derives it in a peer). Needs the `shell` feature (on by default).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal::services::{ServiceEntry, ServicePortEntry, ServiceTable};
use shoal::shell::service_dns::{DnsServer, Upstreams};
use tokio::sync::watch;

/// The loopback addresses of this file: our peer, another peer, a resolver.
const OURS: [u8; 4] = [127, 0, 92, 1];
const UPSTREAM: [u8; 4] = [127, 0, 92, 2];
const CLUSTER: &str = "c0ffee";

fn hello() -> ServiceEntry {
    ServiceEntry {
        name: "hello".to_owned(),
        ports: vec![
            ServicePortEntry {
                name: Some("http".to_owned()),
                port: 8080,
                node_port: Some(30080),
                target_port: 80,
            },
            ServicePortEntry {
                name: None,
                port: 9090,
                node_port: None,
                target_port: 90,
            },
        ],
        endpoints: Vec::new(),
        proxy_protocol: Default::default(),
    }
}

fn table(services: Vec<ServiceEntry>, peers: &[&str]) -> Arc<ServiceTable> {
    Arc::new(ServiceTable {
        services: services
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect::<BTreeMap<_, _>>(),
        peer_addrs: peers.iter().map(|p| p.parse().unwrap()).collect(),
    })
}

async fn server(
    ip: [u8; 4],
    first: Arc<ServiceTable>,
    upstreams: Upstreams,
) -> (DnsServer, watch::Sender<Arc<ServiceTable>>, SocketAddr) {
    let (tx, rx) = watch::channel(first);
    let dns = DnsServer::spawn(&[SocketAddr::from((ip, 0))], rx, upstreams, CLUSTER)
        .await
        .expect("binds");
    let addr = dns.addrs()[0];
    (dns, tx, addr)
}

/// `dig @server NAME TYPE` with `extra` flags; stdout. Runs on a blocking
/// thread: the server answers on this test's runtime.
async fn dig(server: SocketAddr, name: &str, kind: &str, extra: &[&str]) -> String {
    let mut args = vec![
        format!("@{}", server.ip()),
        "-p".to_owned(),
        server.port().to_string(),
        name.to_owned(),
        kind.to_owned(),
        "+time=5".to_owned(),
        "+tries=1".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    tokio::task::spawn_blocking(move || {
        let out = Command::new("dig")
            .args(&args)
            .output()
            .expect("dig runs (Debian package bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

async fn short(server: SocketAddr, name: &str, kind: &str, extra: &[&str]) -> Vec<String> {
    let mut flags = vec!["+short"];
    flags.extend_from_slice(extra);
    dig(server, name, kind, &flags)
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn status(server: SocketAddr, name: &str, kind: &str) -> String {
    let out = dig(server, name, kind, &["+noall", "+comments"]).await;
    out.split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
        .to_owned()
}

#[tokio::test]
async fn services_resolve_by_name_and_srv_with_the_local_address_first() {
    let peers = ["127.0.0.7", "127.0.0.8"];
    let (_dns, _tables, at) =
        server(OURS, table(vec![hello()], &peers), Upstreams::default()).await;
    let ours = IpAddr::from(OURS).to_string();
    let expected = vec![ours.clone(), peers[0].to_owned(), peers[1].to_owned()];
    for tcp in [&[][..], &["+tcp"][..]] {
        assert_eq!(
            short(at, "hello.svc.shoal", "A", tcp).await,
            expected,
            "{tcp:?}"
        );
        assert_eq!(short(at, "HELLO.Svc.Shoal.", "A", tcp).await, expected);
        assert_eq!(
            short(at, "hello", "A", tcp).await,
            expected,
            "the bare name"
        );
    }
    assert_eq!(
        short(at, "_http._tcp.hello.svc.shoal", "SRV", &[]).await,
        vec!["0 10 8080 hello.svc.shoal.".to_owned()]
    );
    assert_eq!(
        short(at, "_9090._tcp.hello.svc.shoal", "SRV", &[]).await,
        vec!["0 10 9090 hello.svc.shoal.".to_owned()],
        "an unnamed port by its number"
    );
    // The SRV answer carries the target's addresses.
    let full = dig(
        at,
        "_http._tcp.hello.svc.shoal",
        "SRV",
        &["+noall", "+additional"],
    )
    .await;
    assert!(full.contains(&ours), "{full}");

    assert!(short(at, "hello.svc.shoal", "AAAA", &[]).await.is_empty());
    assert_eq!(status(at, "hello.svc.shoal", "AAAA").await, "NOERROR");
    assert_eq!(status(at, "nothing.svc.shoal", "A").await, "NXDOMAIN");
    assert_eq!(
        status(at, "_grpc._tcp.hello.svc.shoal", "SRV").await,
        "NXDOMAIN"
    );
    assert_eq!(
        status(at, "_http._udp.hello.svc.shoal", "SRV").await,
        "NXDOMAIN"
    );
    assert_eq!(status(at, "a.b.hello.svc.shoal", "A").await, "NXDOMAIN");
}

/// The header flags dig printed (`qr aa tc rd ra`) and the answer count.
fn flags_and_answers(out: &str) -> (Vec<String>, usize) {
    let line = out
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .unwrap_or_else(|| panic!("no flags in {out}"));
    let flags = line[";; flags:".len()..]
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let answers = line
        .split("ANSWER: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no answer count in {line}"));
    (flags, answers)
}

#[tokio::test]
async fn an_answer_too_big_for_udp_is_truncated_and_comes_whole_over_tcp() {
    // 150 other peers: 151 A records, about 2.5 KB, more than a UDP answer
    // may carry without EDNS (512 bytes) or with dig's EDNS size (1232).
    let peers: Vec<String> = (0..150).map(|i| format!("10.9.0.{}", i + 1)).collect();
    let peers: Vec<&str> = peers.iter().map(String::as_str).collect();
    let (_dns, _tables, at) =
        server(OURS, table(vec![hello()], &peers), Upstreams::default()).await;
    let header = ["+noall", "+comments"];
    for edns in ["+noedns", "+edns"] {
        // `+ignore`: dig shows the truncated UDP answer instead of retrying over TCP.
        let udp = dig(
            at,
            "hello.svc.shoal",
            "A",
            &[&["+notcp", "+ignore", edns][..], &header[..]].concat(),
        )
        .await;
        let (flags, answers) = flags_and_answers(&udp);
        assert!(flags.contains(&"tc".to_owned()), "{edns}: {udp}");
        assert!(answers < 151, "{edns}: {answers} answers over UDP");
    }
    let tcp = dig(
        at,
        "hello.svc.shoal",
        "A",
        &[&["+tcp"][..], &header[..]].concat(),
    )
    .await;
    let (flags, answers) = flags_and_answers(&tcp);
    assert!(!flags.contains(&"tc".to_owned()), "{tcp}");
    assert_eq!(answers, 151, "{tcp}");
    let all = short(at, "hello.svc.shoal", "A", &["+tcp"]).await;
    assert_eq!(
        all[0],
        IpAddr::from(OURS).to_string(),
        "the local peer first"
    );
    assert_eq!(all.len(), 151);
    // A resolver that sees TC asks again over TCP: dig without +ignore does.
    assert_eq!(
        short(at, "hello.svc.shoal", "A", &["+notcp"]).await.len(),
        151
    );
    // SRV: one record, the addresses of its target in the additional section.
    let srv = dig(
        at,
        "_http._tcp.hello.svc.shoal",
        "SRV",
        &["+tcp", "+noall", "+additional"],
    )
    .await;
    assert_eq!(
        srv.lines().filter(|l| l.contains("\tA\t")).count(),
        151,
        "{srv}"
    );
}

#[tokio::test]
async fn a_new_service_resolves_once_the_table_has_it_and_a_deleted_one_stops() {
    let (_dns, tables, at) = server(OURS, table(Vec::new(), &[]), Upstreams::default()).await;
    assert_eq!(status(at, "hello.svc.shoal", "A").await, "NXDOMAIN");
    tables.send_replace(table(vec![hello()], &[]));
    assert_eq!(
        short(at, "hello.svc.shoal", "A", &[]).await,
        vec![IpAddr::from(OURS).to_string()]
    );
    tables.send_replace(table(Vec::new(), &[]));
    assert_eq!(status(at, "hello.svc.shoal", "A").await, "NXDOMAIN");
}

#[tokio::test]
async fn names_outside_the_cluster_are_forwarded_and_a_dead_resolver_fails_fast() {
    // The "host's resolver" is another of our servers, answering for `elsewhere`.
    let mut outside = hello();
    outside.name = "elsewhere".to_owned();
    let (_upstream, _t, upstream_at) =
        server(UPSTREAM, table(vec![outside], &[]), Upstreams::default()).await;
    let (_dns, _tables, at) = server(
        OURS,
        table(vec![hello()], &[]),
        Upstreams::new(vec![upstream_at]),
    )
    .await;
    assert_eq!(
        short(at, "elsewhere", "A", &[]).await,
        vec![IpAddr::from(UPSTREAM).to_string()],
        "forwarded"
    );
    assert_eq!(
        short(at, "elsewhere", "A", &["+tcp"]).await,
        vec![IpAddr::from(UPSTREAM).to_string()]
    );

    // A resolver that does not answer: SERVFAIL after the forward timeout.
    let silent = std::net::UdpSocket::bind(SocketAddr::from((UPSTREAM, 0))).unwrap();
    let (_dns2, _t2, at2) = server(
        OURS,
        table(vec![hello()], &[]),
        Upstreams::new(vec![silent.local_addr().unwrap()]),
    )
    .await;
    let started = Instant::now();
    assert_eq!(status(at2, "example.org", "A").await, "SERVFAIL");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Cluster names do not wait on it.
    assert_eq!(
        short(at2, "hello.svc.shoal", "A", &[]).await,
        vec![IpAddr::from(OURS).to_string()]
    );
}
