//! The wire envelope every Shoal message travels in: one version byte, then
//! the value encoded with bincode 2 (serde, standard config).
//!
//! Generic on purpose: state deltas, digests, gossip payloads and sync
//! messages all use it. Decoding treats its input as hostile:
//!
//! - the input may be at most `limit` bytes (checked before any decoding):
//!   [`MAX_MESSAGE_BYTES`] for anything from the network, [`MAX_FILE_BYTES`]
//!   for what a peer reads back from its own disk;
//! - bincode itself runs with the caller's limit (rounded up to a tier, at
//!   most [`MAX_FILE_BYTES`]): it allocates a string of the declared length
//!   before reading it, so a declared length bounds what one message can
//!   make a receiver allocate only through that limit;
//! - an unknown version byte, bytes after the value, truncation or garbage
//!   all come back as a [`WireError`] saying which — never a panic.
//!
//! Bump [`WIRE_VERSION`] whenever an encoded type changes shape; a peer that
//! receives a version it does not know rejects the message with a message
//! telling the operator to upgrade.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The envelope version this build writes and reads.
///
/// 2: digests carry content hashes besides stamps and versions.
/// 3: services in the desired state, its deltas and digests; container
///    ports carry their names.
/// 4: node records list the images each node holds and the service
///    listeners it cannot open.
/// 5: update strategies carry percentages, minReadySeconds, the progress
///    deadline and auto-rollback; pod statuses say whether a pod is
///    available (ready for minReadySeconds) and why it stalled a rollout;
///    RC records carry a paused register and revision numbers (bodies and
///    history entries); digests the paused register.
///    sync pushes say which piece of a split transfer they are; digests
///    carry the garbage-collection horizon, node records their
///    collection acknowledgement.
/// 6: the desired state, its deltas and digests carry API tokens.
///    Node records carry their node's signature; node decisions carry
///    the node's key binding, digests its hash.
///    Service bodies say whether endpoints get a PROXY protocol header.
///    RC and service bodies carry the text `kubectl apply` last sent; pod
///    statuses say when the node started the pod.
pub const WIRE_VERSION: u8 = 6;

/// The one size limit of everything peers send each other: a sync message
/// (one piece of a transfer), a request, a pushed frame. Big transfers
/// (a joiner's full state) are split into pieces well below it (see
/// `shoal::peer::sync_message`), so it bounds the memory one message can
/// cost a receiver, not the size of the state. A digest travels whole:
/// at about 40 bytes per record, 8 MiB is some 200,000 records.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The limit of what a peer reads back from its own disk (a checkpoint of
/// the whole state), and the hard ceiling of every decode.
pub const MAX_FILE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty message: expected a version byte and a payload")]
    Empty,
    #[error(
        "message has wire version {found}, this build speaks version {supported}: \
         run the same Shoal version on every peer"
    )]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("malformed message: {extra} unexpected bytes after the payload")]
    TrailingBytes { extra: usize },
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Decode limits below the ceiling: a small request, a broadcast or
/// request, a network message.
const TIERS: [usize; 3] = [4 * 1024, 64 * 1024, MAX_MESSAGE_BYTES];

fn tier<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FILE_BYTES>()
}

/// Encode `value` in the current envelope.
///
/// Fails only for a value whose `Serialize` impl errors (or a value larger
/// than [`MAX_FILE_BYTES`]), never for Shoal's state types of sane size.
/// Whoever sends it to a peer checks it against [`MAX_MESSAGE_BYTES`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![WIRE_VERSION];
    let payload = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The length of `value`'s encoding in the envelope, without building it
/// (to split a transfer into pieces); 0 for a value that cannot encode.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    let mut size = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(value, &mut size, config()) {
        Ok(()) => 1 + size.bytes_written,
        Err(_) => 0,
    }
}

/// Decode one value from a whole message of at most `limit` bytes (at most
/// [`MAX_FILE_BYTES`], whatever the caller passes).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, WireError> {
    let limit = limit.min(MAX_FILE_BYTES);
    if bytes.len() > limit {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (&version, payload) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion {
            found: version,
            supported: WIRE_VERSION,
        });
    }
    // bincode allocates a string or byte vector of the length the input
    // declares before it reads it (found by fuzzing: a 9-byte message held
    // 106 MB), up to its limit: so the limit is the caller's, rounded up to
    // a tier, not the ceiling.
    let decoded = if limit <= TIERS[0] {
        bincode::serde::decode_from_slice::<T, _>(payload, tier::<{ TIERS[0] }>())
    } else if limit <= TIERS[1] {
        bincode::serde::decode_from_slice::<T, _>(payload, tier::<{ TIERS[1] }>())
    } else if limit <= TIERS[2] {
        bincode::serde::decode_from_slice::<T, _>(payload, tier::<{ TIERS[2] }>())
    } else {
        bincode::serde::decode_from_slice::<T, _>(payload, config())
    };
    let (value, used) = decoded.map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != payload.len() {
        return Err(WireError::TrailingBytes {
            extra: payload.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_past_the_callers_limit_is_refused_before_allocating() {
        // Found by fuzzing (fuzz/regressions/image_request): version, an
        // empty string, then one declared 106 MB long; it held 106 MB.
        let input = [0x06, 0x00, 0xfc, 0x00, 0xfc, 0x5b, 0x06, 0x00, 0xfc];
        let err = decode::<(String, String)>(&input, 4096).unwrap_err();
        assert!(
            matches!(&err, WireError::Malformed(m) if m.contains("Limit")),
            "{err}"
        );
    }
}
