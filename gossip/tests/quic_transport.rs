//! The QUIC transport over real sockets on 127.0.0.1: datagrams, requests,
//! pushes, limits and reconnection.
#![cfg(feature = "quic")]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use shoal_gossip::MAX_PACKET_SIZE;
use shoal_gossip::quic::{
    GUARANTEED_DATAGRAM_SIZE, Inbound, JoinToken, QuicConfig, QuicTransport, TransportError,
};
use tokio::time::timeout;

// Every SWIM packet fits a QUIC datagram on any path (checked at compile time).
const _: () = assert!(MAX_PACKET_SIZE <= GUARANTEED_DATAGRAM_SIZE);

const WAIT: Duration = Duration::from_secs(5);

fn token() -> JoinToken {
    JoinToken::from_seed([42; 32])
}

fn config_at(listen: SocketAddr, token: JoinToken) -> QuicConfig {
    let mut config = QuicConfig::new(listen, token);
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(3);
    config
}

fn peer() -> (QuicTransport, Inbound) {
    QuicTransport::bind(config_at("127.0.0.1:0".parse().unwrap(), token())).unwrap()
}

/// Sends `payload` to `to` every 50 ms until `inbound` yields it (SWIM-style
/// retries: the first datagrams may be lost while a connection comes up).
async fn send_until_received(
    from: &QuicTransport,
    to: SocketAddr,
    inbound: &mut Inbound,
    payload: &'static [u8],
) -> SocketAddr {
    timeout(WAIT, async {
        loop {
            from.send_datagram(to, Bytes::from_static(payload)).unwrap();
            if let Ok(Some((remote, _, bytes))) =
                timeout(Duration::from_millis(50), inbound.datagrams.recv()).await
                && bytes == payload
            {
                return remote;
            }
        }
    })
    .await
    .expect("datagram delivered within the wait")
}

#[tokio::test]
async fn two_peers_exchange_datagrams_both_ways() {
    let (a, mut a_in) = peer();
    let (b, mut b_in) = peer();

    // The first send connects on demand; it is queued, not lost.
    a.send_datagram(b.local_addr(), Bytes::from_static(b"ping"))
        .unwrap();
    let (from, _, bytes) = timeout(WAIT, b_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(bytes, Bytes::from_static(b"ping"));
    assert_eq!(from, a.local_addr(), "one port carries everything");

    // B answers on the connection A opened.
    b.send_datagram(from, Bytes::from_static(b"ack")).unwrap();
    let (from, _, bytes) = timeout(WAIT, a_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(bytes, Bytes::from_static(b"ack"));
    assert_eq!(from, b.local_addr());

    // A SWIM-sized packet fits the datagram limit.
    let max = a.max_datagram_size(b.local_addr()).expect("connected");
    println!("max datagram size on loopback: {max} bytes");
    assert!(max >= GUARANTEED_DATAGRAM_SIZE, "max datagram size {max}");
    let big = Bytes::from(vec![7u8; MAX_PACKET_SIZE]);
    a.send_datagram(b.local_addr(), big.clone()).unwrap();
    let (_, _, bytes) = timeout(WAIT, b_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(bytes, big);

    // Too large for a datagram: an error naming the limit, not a panic.
    let err = a
        .send_datagram(b.local_addr(), Bytes::from(vec![0u8; 64 * 1024]))
        .unwrap_err();
    // The limit may have grown since (path MTU discovery), never shrunk.
    assert!(
        matches!(err, TransportError::DatagramTooLarge { size: 65536, max: m, .. } if m >= max),
        "{err}"
    );

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.datagrams_sent, 2);
    assert_eq!(sa.datagrams_received, 1);
    assert_eq!(sb.datagrams_received, 2);
    assert_eq!(sb.datagram_bytes_received, (4 + MAX_PACKET_SIZE) as u64);
    assert_eq!(sa.connections_opened, 1);
    assert_eq!(sb.connections_accepted, 1);
    assert_eq!(sb.connections_opened, 0, "B reused A's connection");
    assert_eq!(a.connected_peers(), vec![b.local_addr()]);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn request_gets_the_reply_from_the_responder() {
    let (a, _a_in) = peer();
    let (b, mut b_in) = peer();
    let server = tokio::spawn(async move {
        let req = b_in.requests.recv().await.unwrap();
        let mut reply = b"digest of ".to_vec();
        reply.extend_from_slice(&req.body);
        req.responder.respond(Bytes::from(reply)).await.unwrap();
        b_in
    });

    let reply = a
        .request(b.local_addr(), Bytes::from_static(b"rc/hello"), 1024)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"digest of rc/hello"));
    let _ = server.await.unwrap();
    assert_eq!(a.stats().requests_completed, 1);
    assert_eq!(b.stats().requests_received, 1);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn oversized_reply_is_rejected_with_an_error() {
    let (a, _a_in) = peer();
    let (b, mut b_in) = peer();
    let server = tokio::spawn(async move {
        let req = b_in.requests.recv().await.unwrap();
        // The requester gives up reading, so the write may or may not fail.
        let _ = req
            .responder
            .respond(Bytes::from(vec![1u8; 64 * 1024]))
            .await;
        b_in
    });

    let err = a
        .request(
            b.local_addr(),
            Bytes::from_static(b"full state please"),
            1024,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::ResponseTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("exceeds the limit of 1024 bytes"));
    let mut b_in = server.await.unwrap();

    // The connection survives: the next request works.
    let server = tokio::spawn(async move {
        let req = b_in.requests.recv().await.unwrap();
        req.responder
            .respond(Bytes::from_static(b"small"))
            .await
            .unwrap();
    });
    let reply = a
        .request(b.local_addr(), Bytes::from_static(b"again"), 1024)
        .await
        .unwrap();
    assert_eq!(reply, Bytes::from_static(b"small"));
    server.await.unwrap();
    assert_eq!(a.stats().requests_failed, 1);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn unanswered_or_oversized_requests_are_declined() {
    let (a, _a_in) = peer();
    let mut config = config_at("127.0.0.1:0".parse().unwrap(), token());
    config.max_request_size = 100;
    let (b, mut b_in) = QuicTransport::bind(config).unwrap();

    // The handler drops the request: the requester learns at once.
    let server = tokio::spawn(async move {
        let req = b_in.requests.recv().await.unwrap();
        drop(req);
        b_in
    });
    let err = a
        .request(b.local_addr(), Bytes::from_static(b"hello?"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Declined { .. }), "{err}");
    let mut b_in = server.await.unwrap();

    // A request above B's limit never reaches B's handler.
    let err = a
        .request(b.local_addr(), Bytes::from(vec![0u8; 1000]), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Declined { .. }), "{err}");
    assert!(b_in.requests.try_recv().is_err());
    assert_eq!(b.stats().streams_dropped_recv, 1);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn frames_of_one_push_arrive_in_order_and_an_oversized_one_ends_the_stream_there() {
    let (a, _a_in) = peer();
    let mut config = config_at("127.0.0.1:0".parse().unwrap(), token());
    config.max_request_size = 1000;
    let (b, mut b_in) = QuicTransport::bind(config).unwrap();
    let frames: Vec<Bytes> = (0..20u8).map(|i| Bytes::from(vec![i; 900])).collect();
    a.push_frames(b.local_addr(), frames.clone()).await.unwrap();
    for frame in &frames {
        let (_, _, body) = timeout(WAIT, b_in.pushes.recv()).await.unwrap().unwrap();
        assert_eq!(&body, frame, "in order, whole");
    }
    // A frame over B's limit: the frames before it arrive, it and what
    // follows do not, and B counts the refusal.
    let hostile = vec![
        Bytes::from_static(b"before"),
        Bytes::from(vec![7u8; 5000]),
        Bytes::from_static(b"after"),
    ];
    let _ = a.push_frames(b.local_addr(), hostile).await;
    let (_, _, body) = timeout(WAIT, b_in.pushes.recv()).await.unwrap().unwrap();
    assert_eq!(body, Bytes::from_static(b"before"));
    assert!(
        timeout(Duration::from_millis(500), b_in.pushes.recv())
            .await
            .is_err(),
        "nothing after the oversized frame"
    );
    assert_eq!(b.stats().streams_dropped_recv, 1);
    assert_eq!(b.stats().pushes_received, 21);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn pushes_arrive_one_way() {
    let (a, _a_in) = peer();
    let (b, mut b_in) = peer();
    a.push(b.local_addr(), Bytes::from_static(b"delta 1"))
        .await
        .unwrap();
    a.push(b.local_addr(), Bytes::from_static(b"delta 2"))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let (from, _, body) = timeout(WAIT, b_in.pushes.recv()).await.unwrap().unwrap();
        assert_eq!(from, a.local_addr());
        got.push(body);
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            Bytes::from_static(b"delta 1"),
            Bytes::from_static(b"delta 2")
        ]
    );
    assert_eq!(a.stats().pushes_sent, 2);
    assert_eq!(b.stats().pushes_received, 2);

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn peer_restarted_on_the_same_port_is_reachable_again() {
    let (a, mut a_in) = peer();
    let (b, mut b_in) = peer();
    let b_addr = b.local_addr();
    send_until_received(&a, b_addr, &mut b_in, b"before").await;

    b.shutdown().await;
    // The port is free once the last handle and background task let go.
    drop((b, b_in));
    // A sees B's close and forgets the connection.
    timeout(WAIT, async {
        while !a.connected_peers().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("A forgets the closed connection");

    let (b2, mut b2_in) = timeout(WAIT, async {
        loop {
            match QuicTransport::bind(config_at(b_addr, token())) {
                Ok(bound) => return bound,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the old port is released after shutdown");
    send_until_received(&a, b_addr, &mut b2_in, b"after").await;
    assert_eq!(a.stats().connections_opened, 2, "A dialled again");

    // And the new B reaches A back over the same connection.
    b2.send_datagram(a.local_addr(), Bytes::from_static(b"back"))
        .unwrap();
    let (_, _, bytes) = timeout(WAIT, a_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(bytes, Bytes::from_static(b"back"));

    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn datagrams_to_an_unreachable_peer_are_dropped_and_counted() {
    let mut config = config_at("127.0.0.1:0".parse().unwrap(), token());
    config.connect_timeout = Duration::from_millis(300);
    config.connect_queue = 4;
    let (a, _a_in) = QuicTransport::bind(config).unwrap();
    // A bound but silent UDP socket: nothing answers the handshake.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = silent.local_addr().unwrap();

    for i in 0..10u8 {
        // Never blocks, never fails: SWIM tolerates loss.
        a.send_datagram(to, Bytes::from(vec![i; 10])).unwrap();
    }
    timeout(WAIT, async {
        while a.stats().handshake_failures == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let stats = a.stats();
    assert_eq!(stats.datagrams_dropped_send, 10, "6 overflowed, 4 failed");
    assert_eq!(stats.datagrams_sent, 0);
    let err = a
        .request(to, Bytes::from_static(b"x"), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    a.shutdown().await;
}

#[tokio::test]
async fn calls_after_shutdown_fail_cleanly() {
    let (a, _a_in) = peer();
    let (b, _b_in) = peer();
    a.shutdown().await;
    let err = a
        .send_datagram(b.local_addr(), Bytes::from_static(b"x"))
        .unwrap_err();
    assert!(matches!(err, TransportError::ShutDown), "{err}");
    let err = a
        .request(b.local_addr(), Bytes::from_static(b"x"), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::ShutDown), "{err}");
    b.shutdown().await;
}

#[tokio::test]
async fn peer_that_crashed_and_restarted_is_reachable_before_the_idle_timeout() {
    let (a, _a_in) = peer();
    // B runs on its own runtime so that it can die without a goodbye: no
    // CONNECTION_CLOSE is sent, and A's cached connection looks alive.
    let b_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (b, mut b_in) = {
        let _guard = b_runtime.enter();
        peer()
    };
    let b_addr = b.local_addr();
    send_until_received(&a, b_addr, &mut b_in, b"before the crash").await;
    b_runtime.shutdown_background();
    drop((b, b_in));
    assert_eq!(a.connected_peers(), vec![b_addr], "A has not noticed");

    let (b2, mut b2_in) = timeout(WAIT, async {
        loop {
            match QuicTransport::bind(config_at(b_addr, token())) {
                Ok(bound) => return bound,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("the crashed peer's port is free");
    // The idle timeout is 30 s; the stateless reset from the new B (same
    // token, same port, same reset key) ends A's stale connection at once.
    send_until_received(
        &a,
        b_addr,
        &mut b2_in,
        b"after the restart, padded to look like real gossip",
    )
    .await;
    assert_eq!(a.stats().connections_opened, 2);

    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn full_inbound_channel_drops_and_counts_instead_of_stalling() {
    let (a, _a_in) = peer();
    let mut config = config_at("127.0.0.1:0".parse().unwrap(), token());
    config.inbound_capacity = 2;
    let (b, mut b_in) = QuicTransport::bind(config).unwrap();

    // B's core is "busy": nobody drains its channel while A sends 10.
    for i in 0..10u8 {
        a.send_datagram(b.local_addr(), Bytes::from(vec![i; 100]))
            .unwrap();
    }
    timeout(WAIT, async {
        loop {
            let s = b.stats();
            if s.datagrams_received + s.datagrams_dropped_recv == 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("all 10 datagrams arrive at B");
    assert_eq!(b.stats().datagrams_received, 2);
    assert_eq!(b.stats().datagrams_dropped_recv, 8);
    // The two kept are intact datagrams from A's ten.
    let first = b_in.datagrams.recv().await.unwrap().2;
    let second = b_in.datagrams.recv().await.unwrap().2;
    assert_ne!(first, second);
    for kept in [first, second] {
        assert_eq!(kept.len(), 100);
        assert!(kept[0] < 10 && kept.iter().all(|&x| x == kept[0]));
    }

    // Once drained, delivery resumes.
    a.send_datagram(b.local_addr(), Bytes::from_static(b"later"))
        .unwrap();
    let (_, _, bytes) = timeout(WAIT, b_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(bytes, Bytes::from_static(b"later"));

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_reply() {
    let (a, _a_in) = peer();
    let (b, mut b_in) = peer();
    let server = tokio::spawn(async move {
        while let Some(req) = b_in.requests.recv().await {
            // Answer out of order, from separate tasks.
            tokio::spawn(async move {
                let mut reply = req.body.to_vec();
                reply.reverse();
                req.responder.respond(Bytes::from(reply)).await.unwrap();
            });
        }
    });

    // All 20 start before any connection exists: they share one dial.
    let calls: Vec<_> = (0..20u32)
        .map(|i| {
            let a = a.clone();
            let to = b.local_addr();
            tokio::spawn(async move {
                let body = format!("request-{i:02}");
                let reply = a.request(to, Bytes::from(body.clone()), 64).await.unwrap();
                let mut expected = body.into_bytes();
                expected.reverse();
                assert_eq!(reply, Bytes::from(expected));
            })
        })
        .collect();
    for call in calls {
        timeout(WAIT, call).await.unwrap().unwrap();
    }
    assert_eq!(a.stats().requests_completed, 20);
    assert_eq!(
        a.stats().connections_opened,
        1,
        "one connection carries all"
    );

    a.shutdown().await;
    b.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn dual_stack_peer_sees_ipv4_peers_by_their_ipv4_address() {
    let (a, mut a_in) = peer();
    // B listens on every address, IPv6 and (mapped) IPv4 alike.
    let (b, mut b_in) = QuicTransport::bind(config_at("[::]:0".parse().unwrap(), token())).unwrap();
    let b_v4: SocketAddr = format!("127.0.0.1:{}", b.local_addr().port())
        .parse()
        .unwrap();

    a.send_datagram(b_v4, Bytes::from_static(b"hello v6 socket"))
        .unwrap();
    let (from, _, _) = timeout(WAIT, b_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(from, a.local_addr(), "not ::ffff:127.0.0.1");
    assert_eq!(b.connected_peers(), vec![a.local_addr()]);

    // B answers to the address it was given, on A's connection.
    b.send_datagram(from, Bytes::from_static(b"hello v4 socket"))
        .unwrap();
    let (from, _, _) = timeout(WAIT, a_in.datagrams.recv()).await.unwrap().unwrap();
    assert_eq!(from, b_v4);
    assert_eq!(b.stats().connections_opened, 0);

    a.shutdown().await;
    b.shutdown().await;
}
