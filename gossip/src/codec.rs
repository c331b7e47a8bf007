//! foca's wire format on bincode 2 (foca 2 ships no bincode codec).
//!
//! foca hands us its `Header` and `Member` values; we mirror them in small
//! serde types we own, so the wire format is ours to version and does not
//! depend on foca's optional serde feature. Every decode runs under an
//! explicit byte limit, so a hostile length prefix cannot make us allocate.

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};
use serde::{Deserialize, Serialize};

use crate::identity::PeerIdentity;
use shoal_crdt_state::node::NodeId;

/// Largest datagram Membership emits or accepts, envelope byte included.
/// Below the QUIC datagram payload limit (about 1,150–1,350 bytes), so one
/// SWIM packet always fits one QUIC datagram.
pub const MAX_PACKET_SIZE: usize = 1150;

/// Decode limit for one header or member (a header holds three identities).
const ITEM_LIMIT: usize = 256;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<ITEM_LIMIT>()
}

/// Why a foca item could not be encoded or decoded. Decode errors come from
/// the network: foca drops the packet and its state is unaffected.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("could not encode SWIM item: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("malformed SWIM item from the network (packet dropped): {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("SWIM item of {needed} bytes does not fit the {remaining} bytes left in the packet")]
    NoSpace { needed: usize, remaining: usize },
}

#[derive(Serialize, Deserialize)]
struct WireHeader {
    src: PeerIdentity,
    src_incarnation: u16,
    dst: PeerIdentity,
    message: WireMessage,
}

#[derive(Serialize, Deserialize)]
enum WireMessage {
    Ping(u8),
    Ack(u8),
    PingReq {
        target: PeerIdentity,
        probe_number: u8,
    },
    IndirectPing {
        origin: PeerIdentity,
        probe_number: u8,
    },
    IndirectAck {
        target: PeerIdentity,
        probe_number: u8,
    },
    ForwardedAck {
        origin: PeerIdentity,
        probe_number: u8,
    },
    Announce,
    Feed,
    Gossip,
    Broadcast,
    TurnUndead,
}

/// A member as it travels in piggybacked updates and roster chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireMember {
    pub(crate) id: PeerIdentity,
    pub(crate) incarnation: u16,
    pub(crate) state: u8,
}

impl WireMember {
    pub(crate) fn from_member(member: &Member<PeerIdentity>) -> Self {
        let state = match member.state() {
            State::Alive => 0,
            State::Suspect => 1,
            State::Down => 2,
        };
        Self {
            id: *member.id(),
            incarnation: member.incarnation(),
            state,
        }
    }

    pub(crate) fn into_member(self) -> Result<Member<PeerIdentity>, CodecError> {
        let state = match self.state {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            other => {
                return Err(CodecError::Decode(
                    bincode::error::DecodeError::UnexpectedVariant {
                        type_name: "member state",
                        allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 2 },
                        found: u32::from(other),
                    },
                ));
            }
        };
        Ok(Member::new(self.id, self.incarnation, state))
    }
}

fn to_wire(message: &Message<PeerIdentity>) -> WireMessage {
    match message {
        Message::Ping(n) => WireMessage::Ping(*n),
        Message::Ack(n) => WireMessage::Ack(*n),
        Message::PingReq {
            target,
            probe_number,
        } => WireMessage::PingReq {
            target: *target,
            probe_number: *probe_number,
        },
        Message::IndirectPing {
            origin,
            probe_number,
        } => WireMessage::IndirectPing {
            origin: *origin,
            probe_number: *probe_number,
        },
        Message::IndirectAck {
            target,
            probe_number,
        } => WireMessage::IndirectAck {
            target: *target,
            probe_number: *probe_number,
        },
        Message::ForwardedAck {
            origin,
            probe_number,
        } => WireMessage::ForwardedAck {
            origin: *origin,
            probe_number: *probe_number,
        },
        Message::Announce => WireMessage::Announce,
        Message::Feed => WireMessage::Feed,
        Message::Gossip => WireMessage::Gossip,
        Message::Broadcast => WireMessage::Broadcast,
        Message::TurnUndead => WireMessage::TurnUndead,
    }
}

fn from_wire(message: WireMessage) -> Message<PeerIdentity> {
    match message {
        WireMessage::Ping(n) => Message::Ping(n),
        WireMessage::Ack(n) => Message::Ack(n),
        WireMessage::PingReq {
            target,
            probe_number,
        } => Message::PingReq {
            target,
            probe_number,
        },
        WireMessage::IndirectPing {
            origin,
            probe_number,
        } => Message::IndirectPing {
            origin,
            probe_number,
        },
        WireMessage::IndirectAck {
            target,
            probe_number,
        } => Message::IndirectAck {
            target,
            probe_number,
        },
        WireMessage::ForwardedAck {
            origin,
            probe_number,
        } => Message::ForwardedAck {
            origin,
            probe_number,
        },
        WireMessage::Announce => Message::Announce,
        WireMessage::Feed => Message::Feed,
        WireMessage::Gossip => Message::Gossip,
        WireMessage::Broadcast => Message::Broadcast,
        WireMessage::TurnUndead => Message::TurnUndead,
    }
}

/// Encodes `value` whole into `buf`, or leaves `buf` untouched (foca
/// requires a clean buffer when an item does not fit).
fn put_item<T: Serialize>(value: &T, mut buf: impl BufMut) -> Result<(), CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, bincode_config())?;
    if bytes.len() > buf.remaining_mut() {
        return Err(CodecError::NoSpace {
            needed: bytes.len(),
            remaining: buf.remaining_mut(),
        });
    }
    buf.put_slice(&bytes);
    Ok(())
}

fn take_item<T: serde::de::DeserializeOwned>(mut buf: impl Buf) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(buf.chunk(), bincode_config())?;
    buf.advance(used);
    Ok(value)
}

/// The node id a SWIM packet's header names as its sender (`body`: the
/// packet after its envelope byte); `None` if the header does not decode.
pub(crate) fn packet_sender(body: &[u8]) -> Option<NodeId> {
    take_item::<WireHeader>(body).ok().map(|h| h.src.node)
}

/// foca's [`foca::Codec`] on bincode 2. Stateless; one per `Foca`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BincodeCodec;

impl foca::Codec<PeerIdentity> for BincodeCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<PeerIdentity>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        let wire = WireHeader {
            src: header.src,
            src_incarnation: header.src_incarnation,
            dst: header.dst,
            message: to_wire(&header.message),
        };
        put_item(&wire, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<PeerIdentity>, CodecError> {
        let wire: WireHeader = take_item(buf)?;
        Ok(Header {
            src: wire.src,
            src_incarnation: wire.src_incarnation,
            dst: wire.dst,
            message: from_wire(wire.message),
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<PeerIdentity>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        put_item(&WireMember::from_member(member), buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<PeerIdentity>, CodecError> {
        take_item::<WireMember>(buf)?.into_member()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Codec;

    fn id(n: u64) -> PeerIdentity {
        PeerIdentity::new(NodeId(n), format!("[::1]:{}", 7000 + n).parse().unwrap(), n)
    }

    #[test]
    fn header_and_member_round_trip() {
        let header = Header {
            src: id(1),
            src_incarnation: 9,
            dst: id(2),
            message: Message::PingReq {
                target: id(3),
                probe_number: 4,
            },
        };
        let member = Member::new(id(3), 2, State::Suspect);
        let mut buf = Vec::new();
        BincodeCodec.encode_header(&header, &mut buf).unwrap();
        BincodeCodec.encode_member(&member, &mut buf).unwrap();
        let mut slice = &buf[..];
        assert_eq!(BincodeCodec.decode_header(&mut slice).unwrap(), header);
        assert_eq!(BincodeCodec.decode_member(&mut slice).unwrap(), member);
        assert!(slice.is_empty(), "decoders must consume exactly one item");
    }

    #[test]
    fn an_item_that_does_not_fit_leaves_the_buffer_clean() {
        let mut backing = Vec::new();
        let mut buf = (&mut backing).limit(5);
        let err = BincodeCodec
            .encode_member(&Member::alive(id(1)), &mut buf)
            .unwrap_err();
        assert!(matches!(err, CodecError::NoSpace { .. }));
        assert!(backing.is_empty());
    }

    #[test]
    fn garbage_and_truncated_input_is_rejected_not_panicked_on() {
        let mut buf = Vec::new();
        BincodeCodec
            .encode_member(&Member::alive(id(1)), &mut buf)
            .unwrap();
        for cut in 0..buf.len() {
            assert!(BincodeCodec.decode_member(&buf[..cut]).is_err());
        }
        let bad_state = {
            let mut b = buf.clone();
            *b.last_mut().unwrap() = 7;
            b
        };
        assert!(BincodeCodec.decode_member(&bad_state[..]).is_err());
        assert!(BincodeCodec.decode_header(&[0xff; 40][..]).is_err());
    }
}
