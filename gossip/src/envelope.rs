//! The first byte of every membership datagram: what follows and in which
//! version. Lets SWIM packets and roster transfers share one transport.

use bytes::Buf;

use shoal_crdt_state::node::NodeId;

use crate::codec::{CodecError, MAX_PACKET_SIZE, WireMember};

/// A foca SWIM packet (format of `codec.rs`, version 1).
pub(crate) const KIND_SWIM: u8 = 0x01;
/// "Send me your member list": sent by a joiner to its seed.
pub(crate) const KIND_ROSTER_REQUEST: u8 = 0x02;
/// One chunk of a member list, answering a roster request.
pub(crate) const KIND_ROSTER: u8 = 0x03;
/// A member digest for anti-entropy (`sync.rs`); answered with roster
/// chunks of the buckets that differ.
pub(crate) const KIND_DIGEST: u8 = 0x04;
/// "You are suspected" (one encoded `WireMember`), sent by the prober
/// whose probe failed straight to the suspect, so that a live suspect
/// refutes at once instead of waiting for the rumour to reach it.
pub(crate) const KIND_SUSPECT: u8 = 0x05;

/// The node a membership datagram names as its sender: a SWIM packet's
/// header does; roster requests, roster chunks, digests and suspect
/// notices name none (what they carry about members is relayed content).
/// The shell compares it with the node id the datagram's connection
/// authenticated.
pub fn datagram_sender(bytes: &[u8]) -> Option<NodeId> {
    match bytes.split_first() {
        Some((&KIND_SWIM, body)) => crate::codec::packet_sender(body),
        _ => None,
    }
}

/// Encodes a suspect notice.
pub(crate) fn suspect_notice(member: &WireMember) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![KIND_SUSPECT];
    out.extend(bincode::serde::encode_to_vec(member, config())?);
    Ok(out)
}

/// Decodes a suspect notice body (envelope byte removed).
pub(crate) fn decode_suspect_notice(body: &[u8]) -> Result<WireMember, CodecError> {
    let (member, used) = bincode::serde::decode_from_slice(body, config())?;
    if used != body.len() {
        return Err(CodecError::Decode(
            bincode::error::DecodeError::OtherString(format!(
                "{} trailing bytes after a suspect notice",
                body.len() - used
            )),
        ));
    }
    Ok(member)
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_PACKET_SIZE>()
}

/// Packs members into datagrams of at most [`MAX_PACKET_SIZE`] bytes.
/// Why: foca's `Feed` answers a join with one packet (about 40 members), and
/// the rest of a 1,000-peer roster would otherwise trickle in over minutes.
pub(crate) fn roster_chunks(members: &[WireMember]) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut chunks = Vec::new();
    let mut current: Vec<u8> = vec![KIND_ROSTER];
    for member in members {
        let item = bincode::serde::encode_to_vec(member, config())?;
        if current.len() + item.len() > MAX_PACKET_SIZE {
            chunks.push(std::mem::replace(&mut current, vec![KIND_ROSTER]));
        }
        current.extend_from_slice(&item);
    }
    if current.len() > 1 {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Decodes the members of one roster chunk (envelope byte already removed).
pub(crate) fn decode_roster(mut body: &[u8]) -> Result<Vec<WireMember>, CodecError> {
    let mut members = Vec::new();
    while body.has_remaining() {
        let (member, used) = bincode::serde::decode_from_slice(body, config())?;
        body.advance(used);
        members.push(member);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PeerIdentity;

    #[test]
    fn a_large_roster_splits_into_datagrams_that_fit_and_decode_back() {
        let members: Vec<WireMember> = (0..500u64)
            .map(|i| WireMember {
                id: PeerIdentity::new(
                    NodeId(u64::MAX - i),
                    format!("10.0.{}.{}:7946", i / 256, i % 256)
                        .parse()
                        .unwrap(),
                    i,
                ),
                incarnation: 3,
                state: (i % 3) as u8,
            })
            .collect();
        let chunks = roster_chunks(&members).unwrap();
        assert!(chunks.len() > 1);
        let mut back = Vec::new();
        for chunk in &chunks {
            assert!(chunk.len() <= MAX_PACKET_SIZE);
            assert_eq!(chunk[0], KIND_ROSTER);
            back.extend(decode_roster(&chunk[1..]).unwrap());
        }
        assert_eq!(back.len(), members.len());
        assert_eq!(back[499].id, members[499].id);
    }

    #[test]
    fn only_a_swim_packet_names_its_sender() {
        use foca::Codec;
        let me = PeerIdentity::new(NodeId(42), "10.0.0.42:7946".parse().unwrap(), 3);
        let header = foca::Header {
            src: me,
            src_incarnation: 0,
            dst: PeerIdentity::seed("10.0.0.1:7946".parse().unwrap()),
            message: foca::Message::Ping(7),
        };
        let mut packet = vec![KIND_SWIM];
        crate::codec::BincodeCodec
            .encode_header(&header, &mut packet)
            .unwrap();
        assert_eq!(datagram_sender(&packet), Some(NodeId(42)));
        assert_eq!(datagram_sender(&packet[..packet.len() - 1]), None);
        assert_eq!(datagram_sender(&[KIND_ROSTER_REQUEST]), None);
        let notice = suspect_notice(&WireMember {
            id: me,
            incarnation: 0,
            state: 1,
        })
        .unwrap();
        assert_eq!(datagram_sender(&notice), None, "names the suspect");
        assert_eq!(datagram_sender(&[]), None);
    }

    #[test]
    fn truncated_roster_is_an_error() {
        let members = vec![WireMember {
            id: PeerIdentity::seed("10.0.0.1:1".parse().unwrap()),
            incarnation: 0,
            state: 0,
        }];
        let chunk = &roster_chunks(&members).unwrap()[0];
        assert!(decode_roster(&chunk[1..chunk.len() - 1]).is_err());
    }
}
