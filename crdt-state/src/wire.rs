//! The wire envelope every Shoal message travels in: one version byte, then
//! the value encoded with bincode 2 (serde, standard config).
//!
//! Generic on purpose: state deltas, digests, gossip payloads and sync
//! messages all use it. Decoding treats its input as hostile:
//!
//! - the input may be at most `limit` bytes (checked before any decoding):
//!   [`MAX_MESSAGE_BYTES`] for anything from the network, [`MAX_FILE_BYTES`]
//!   for what a peer reads back from its own disk;
//! - bincode itself runs with a limit proportional to the input: the
//!   smaller of [`CLAIM_PER_BYTE`] times the input's length and the
//!   caller's limit, rounded up to a tier ([`decode_limit`]). bincode
//!   allocates a string of the declared length before reading it, so this
//!   limit is what bounds the memory a hostile length prefix costs: a
//!   100-byte message cannot ask for more than 4 KiB, a 1 KiB file record
//!   no more than 32 KiB, whatever the caller's limit;
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

/// What bincode may claim per input byte. bincode counts ("claims") the
/// in-memory size of what it decodes: 8 bytes for a `u64` that took one
/// varint byte, the declared length of a string before reading it. A valid
/// encoding of Shoal's types claims at most 8 bytes per input byte (a
/// one-byte varint decoded into a `u64`); 16 leaves room for a `u128`.
pub const CLAIM_PER_BYTE: usize = 16;

/// The limits bincode can run with (its limit is a type parameter, so a
/// fixed list): steps of 8, and the network message limit, up to the
/// ceiling. The tier chosen is at most 8 times the input's allowance, so
/// an input costs at most 4 KiB or 128 times its length.
const TIERS: [usize; 7] = [
    4 * 1024,
    32 * 1024,
    256 * 1024,
    2 * 1024 * 1024,
    MAX_MESSAGE_BYTES,
    64 * 1024 * 1024,
    MAX_FILE_BYTES,
];

/// The bincode limit for an input of `input_len` bytes whose caller allows
/// `limit`: the smallest tier holding [`CLAIM_PER_BYTE`] times the input
/// or the caller's limit, whichever is smaller. A tiny message never runs
/// with a large caller limit; a large one never with more than the caller
/// allows (rounded up to a tier).
pub fn decode_limit(input_len: usize, limit: usize) -> usize {
    let want = input_len
        .saturating_mul(CLAIM_PER_BYTE)
        .min(limit)
        .min(MAX_FILE_BYTES);
    TIERS
        .iter()
        .copied()
        .find(|&tier| tier >= want)
        .unwrap_or(MAX_FILE_BYTES)
}

fn tier<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FILE_BYTES>()
}

fn decode_with<T: DeserializeOwned, C: bincode::config::Config>(
    payload: &[u8],
    config: C,
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice::<T, _>(payload, config)
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
    // 106 MB, a 34-byte log record 218 MB): so its limit follows the
    // input's length, not the caller's ceiling.
    let decoded = match decode_limit(bytes.len(), limit) {
        l if l <= TIERS[0] => decode_with::<T, _>(payload, tier::<{ TIERS[0] }>()),
        l if l <= TIERS[1] => decode_with::<T, _>(payload, tier::<{ TIERS[1] }>()),
        l if l <= TIERS[2] => decode_with::<T, _>(payload, tier::<{ TIERS[2] }>()),
        l if l <= TIERS[3] => decode_with::<T, _>(payload, tier::<{ TIERS[3] }>()),
        l if l <= TIERS[4] => decode_with::<T, _>(payload, tier::<{ TIERS[4] }>()),
        l if l <= TIERS[5] => decode_with::<T, _>(payload, tier::<{ TIERS[5] }>()),
        _ => decode_with::<T, _>(payload, config()),
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
