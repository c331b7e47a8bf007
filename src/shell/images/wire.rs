//! What a peer sends to ask for an image, and the first byte of the answer.
//!
//! A fetch travels as a transport request like state sync does, told apart
//! by a magic prefix (sync messages start with their wire version byte).
//! The answer is one status byte, then either the image archive as the
//! holder's engine exports it (after [`SIZED`], preceded by the image's
//! size in the holder's engine, 8 bytes big-endian, for progress), or why
//! the holder refuses.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use shoal_crdt_state::wire::{self, WireError};

const MAGIC: &[u8; 8] = b"SHOALIMG";

/// Longest fetch request accepted (a reference and an ID).
const MAX_REQUEST: usize = 4096;

/// The answer's first byte: the archive follows.
pub const ARCHIVE: u8 = 0;
/// The answer's first byte: a refusal (UTF-8 reason) follows.
pub const REFUSED: u8 = 1;
/// The answer's first byte: the holder is at its upload cap; ask another.
pub const BUSY: u8 = 2;
/// The answer's first byte: the image's size (u64, big-endian, an estimate
/// of the archive's), then the archive follows.
pub const SIZED: u8 = 3;

/// The head of a [`SIZED`] answer.
pub fn sized_head(size: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(9);
    out.extend_from_slice(&[SIZED]);
    out.extend_from_slice(&size.to_be_bytes());
    out.freeze()
}

/// The size a [`SIZED`] answer starts with, once `head` holds its 9 bytes.
pub fn size_of_sized(head: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = head.get(1..9)?.try_into().ok()?;
    (head[0] == SIZED).then(|| u64::from_be_bytes(bytes))
}

/// "Send me `reference`, which you hold as `id`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    pub reference: String,
    pub id: String,
}

impl FetchRequest {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::from(&MAGIC[..]);
        out.extend_from_slice(&wire::encode(self).expect("a fetch request encodes"));
        out.freeze()
    }

    /// `None` when `body` is not a fetch request (a sync message).
    pub fn decode(body: &[u8]) -> Option<Result<FetchRequest, WireError>> {
        let rest = body.strip_prefix(&MAGIC[..])?;
        Some(wire::decode(rest, MAX_REQUEST))
    }
}

/// The whole answer of a holder that refuses (`REFUSED` or `BUSY`).
pub fn refusal(status: u8, reason: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + reason.len());
    out.extend_from_slice(&[status]);
    out.extend_from_slice(reason.as_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_and_sync_messages_are_not_requests() {
        let request = FetchRequest {
            reference: "shoal-test/hello:1.0".into(),
            id: "sha256:abc".into(),
        };
        assert_eq!(FetchRequest::decode(&request.encode()), Some(Ok(request)));
        assert_eq!(FetchRequest::decode(&[wire::WIRE_VERSION, 1, 2]), None);
    }

    #[test]
    fn a_sized_head_carries_its_size() {
        let head = sized_head(201_000_000);
        assert_eq!(head.len(), 9);
        assert_eq!(size_of_sized(&head), Some(201_000_000));
        assert_eq!(size_of_sized(&head[..8]), None);
    }

    #[test]
    fn truncated_or_oversized_requests_are_errors() {
        let request = FetchRequest {
            reference: "x".into(),
            id: "y".into(),
        };
        let body = request.encode();
        assert!(matches!(
            FetchRequest::decode(&body[..body.len() - 1]),
            Some(Err(_))
        ));
        let huge = FetchRequest {
            reference: "x".repeat(MAX_REQUEST),
            id: "y".into(),
        };
        assert!(matches!(FetchRequest::decode(&huge.encode()), Some(Err(_))));
    }
}
