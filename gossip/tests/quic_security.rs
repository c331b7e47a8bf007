//! Cluster membership by token: a peer with another token can neither join,
//! read, nor inject; malformed tokens are refused with a clear reason.
#![cfg(feature = "quic")]

use std::time::Duration;

use bytes::Bytes;
use shoal_gossip::quic::{
    Inbound, JoinToken, QuicConfig, QuicTransport, TokenError, TransportError,
};
use tokio::time::timeout;

fn peer_with(token: JoinToken) -> (QuicTransport, Inbound) {
    let mut config = QuicConfig::new("127.0.0.1:0".parse().unwrap(), token);
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(3);
    QuicTransport::bind(config).unwrap()
}

/// Waits until `cond` holds, polling (handshake failures are counted
/// asynchronously by the dial and accept tasks).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    timeout(Duration::from_secs(5), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

#[tokio::test]
async fn peer_with_another_token_cannot_connect_read_or_inject() {
    let (member, mut member_in) = peer_with(JoinToken::from_seed([1; 32]));
    let (intruder, mut intruder_in) = peer_with(JoinToken::from_seed([2; 32]));

    // The member cannot reach the intruder: the request fails with a
    // handshake error (each side distrusts the other's certificate).
    let err = member
        .request(intruder.local_addr(), Bytes::from_static(b"state?"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    println!("member -> intruder: {err}");

    // The intruder cannot inject: nothing it sends is delivered.
    for _ in 0..5 {
        intruder
            .send_datagram(member.local_addr(), Bytes::from_static(b"fake alive"))
            .unwrap();
    }
    let err = intruder
        .request(
            member.local_addr(),
            Bytes::from_static(b"give me state"),
            1024,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("same join token"),
        "the message points at the likely cause: {err}"
    );
    eventually("the intruder's dials fail", || {
        intruder.stats().handshake_failures >= 1
    })
    .await;
    eventually("the member refuses the intruder", || {
        member.stats().handshake_failures >= 1
    })
    .await;

    assert!(
        timeout(Duration::from_millis(300), member_in.datagrams.recv())
            .await
            .is_err(),
        "no datagram from the intruder reaches the member"
    );
    assert!(member_in.requests.try_recv().is_err());
    assert!(intruder_in.requests.try_recv().is_err());
    assert!(intruder_in.datagrams.try_recv().is_err());
    assert_eq!(member.stats().datagrams_received, 0);
    assert_eq!(member.stats().connections_accepted, 0);
    assert_eq!(intruder.stats().connections_opened, 0);
    assert!(member.connected_peers().is_empty());

    member.shutdown().await;
    intruder.shutdown().await;
}

#[tokio::test]
async fn peers_holding_the_same_token_string_trust_each_other() {
    // The joiner parses the token the founder printed.
    let founder_token = JoinToken::from_seed([9; 32]);
    let printed = founder_token.to_string();
    let joiner_token: JoinToken = printed.parse().unwrap();
    let (founder, mut founder_in) = peer_with(founder_token);
    let (joiner, _joiner_in) = peer_with(joiner_token);
    assert_eq!(founder.cluster_id(), joiner.cluster_id());

    joiner
        .send_datagram(founder.local_addr(), Bytes::from_static(b"join"))
        .unwrap();
    let (_, _, bytes) = timeout(Duration::from_secs(5), founder_in.datagrams.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, Bytes::from_static(b"join"));

    founder.shutdown().await;
    joiner.shutdown().await;
}

#[test]
fn malformed_tokens_are_rejected_with_a_clear_reason() {
    let good = JoinToken::from_seed([5; 32]).to_string();
    let parts: Vec<&str> = good.split('.').collect();
    let (id, secret) = (parts[1], parts[2]);

    let cases: Vec<(String, TokenError, &str)> = vec![
        (String::new(), TokenError::Shape { parts: 1 }, "3 parts"),
        (
            "hello".into(),
            TokenError::Shape { parts: 1 },
            "shoal1.<cluster-id>.<secret>",
        ),
        (
            format!("shoal1.{id}"),
            TokenError::Shape { parts: 2 },
            "found 2 part(s)",
        ),
        (
            format!("shoal2.{id}.{secret}"),
            TokenError::Version {
                found: "shoal2".into(),
            },
            "unsupported join token version `shoal2`",
        ),
        (
            format!("shoal1.{}.{secret}", &id[..10]),
            TokenError::ClusterId { len: 10 },
            "16 hex characters",
        ),
        (
            format!("shoal1.{id}.{}", &secret[..63]),
            TokenError::Secret { len: 63 },
            "64 hex characters",
        ),
        (
            format!("shoal1.{id}.{}zz", &secret[..62]),
            TokenError::Secret { len: 64 },
            "64 hex characters",
        ),
        (
            // One character of the secret changed: the checksum catches it.
            format!(
                "shoal1.{id}.{}{}",
                if secret.starts_with('0') { '1' } else { '0' },
                &secret[1..]
            ),
            TokenError::Checksum,
            "typo",
        ),
    ];
    for (input, expected, message_part) in cases {
        let err = input.parse::<JoinToken>().unwrap_err();
        assert_eq!(err, expected, "input {input:?}");
        let message = err.to_string();
        assert!(message.contains(message_part), "{input:?}: {message}");
        assert!(
            !message.contains(&secret[..16]),
            "never echo the secret: {message}"
        );
    }

    // Surrounding whitespace (a copy-paste with a newline) is tolerated.
    assert_eq!(
        format!("  {good}\n")
            .parse::<JoinToken>()
            .unwrap()
            .to_string(),
        good
    );
}
