//! The on-disk framing of Shoal's data files: what a file is, in which
//! format version, and a checksum of every payload.
//!
//! ```text
//! state.bin  = magic "SHOALST\0" | format u32 | length u64 | xxh3-64 u64 | payload
//! wal.log    = magic "SHOALWL\0" | format u32 | record*
//! record     = length u32 | xxh3-64 u64 | payload
//! ```
//!
//! All integers little-endian. A payload is a `wire` envelope (version
//! byte + bincode), so its own shape is versioned too. The checksum turns
//! a file edited or damaged in place into a refusal naming the file,
//! instead of a peer that silently runs something else than the cluster.

use xxhash_rust::xxh3::xxh3_64;

/// The format version this build writes and reads.
pub const FORMAT: u32 = 1;

/// Which data file; each has its own magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    State,
    Log,
}

impl FileKind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            FileKind::State => b"SHOALST\0",
            FileKind::Log => b"SHOALWL\0",
        }
    }
}

const HEADER_LEN: usize = 12;
const STATE_PREFIX_LEN: usize = HEADER_LEN + 16;
const RECORD_PREFIX_LEN: usize = 12;

/// Why a file's bytes cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a Shoal data file of this kind (it may predate checksummed files)")]
    BadMagic,
    #[error("format version {found}, this build reads version {FORMAT}")]
    UnknownFormat { found: u32 },
    #[error("truncated: {have} bytes where at least {need} were expected")]
    Truncated { need: usize, have: usize },
    #[error("checksum mismatch: the file was edited or damaged")]
    Checksum,
    #[error(
        "record {record} (at byte {offset}) fails its checksum and more data follows it: \
         the file was edited or damaged, not cut short by a crash"
    )]
    RecordChecksum { record: usize, offset: usize },
    #[error(
        "record {record} (at byte {offset}) declares {len} bytes, more than a record can hold \
         ({MAX_RECORD_BYTES}): the file was edited or damaged"
    )]
    RecordTooLarge {
        record: usize,
        offset: usize,
        len: usize,
    },
}

/// The largest record the log accepts; a length prefix above it is
/// damage, not a record a crash cut short (the writer never writes one).
pub const MAX_RECORD_BYTES: usize = shoal_crdt_state::wire::MAX_FILE_BYTES;

/// The header every file starts with.
pub fn header(kind: FileKind) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(kind.magic());
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out
}

/// Checks the header; returns what follows it.
pub fn check_header(kind: FileKind, bytes: &[u8]) -> Result<&[u8], FrameError> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != kind.magic() {
        return Err(FrameError::BadMagic);
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if found != FORMAT {
        return Err(FrameError::UnknownFormat { found });
    }
    Ok(&bytes[HEADER_LEN..])
}

/// A whole state file around `payload`.
pub fn state_file(payload: &[u8]) -> Vec<u8> {
    let mut out = header(FileKind::State);
    out.reserve(16 + payload.len());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The checked payload of a state file.
pub fn state_payload(bytes: &[u8]) -> Result<&[u8], FrameError> {
    let body = check_header(FileKind::State, bytes)?;
    if bytes.len() < STATE_PREFIX_LEN {
        return Err(FrameError::Truncated {
            need: STATE_PREFIX_LEN,
            have: bytes.len(),
        });
    }
    let len = u64::from_le_bytes(body[..8].try_into().unwrap_or_default());
    let sum = u64::from_le_bytes(body[8..16].try_into().unwrap_or_default());
    let payload = &body[16..];
    if payload.len() as u64 != len {
        return Err(FrameError::Truncated {
            need: STATE_PREFIX_LEN.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)),
            have: bytes.len(),
        });
    }
    if xxh3_64(payload) != sum {
        return Err(FrameError::Checksum);
    }
    Ok(payload)
}

/// One log record around `payload`.
pub fn log_record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_PREFIX_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// One record of a log file, with where it sits (for errors that point at
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// 1 for the first record.
    pub number: usize,
    /// Byte offset of its length prefix in the file.
    pub offset: usize,
    pub payload: &'a [u8],
}

/// The records of a log file (after its header), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecords<'a> {
    pub records: Vec<LogRecord<'a>>,
    /// Bytes after the last whole record: a write a crash interrupted. It
    /// was never acknowledged (acknowledgement waits for the fsync).
    pub torn_tail: usize,
}

/// Splits a log file into its records. A record that is cut short, or
/// fails its checksum, is a torn tail when nothing but zeros follows it
/// (a crash during the last append: the file may have grown before its
/// data reached the disk); followed by data, it is an error naming the
/// record and its byte offset.
pub fn log_records(bytes: &[u8]) -> Result<LogRecords<'_>, FrameError> {
    let mut rest = check_header(FileKind::Log, bytes)?;
    let mut records = Vec::new();
    let torn = |records, rest: &[u8]| {
        Ok(LogRecords {
            records,
            torn_tail: rest.len(),
        })
    };
    while !rest.is_empty() {
        let (number, offset) = (records.len() + 1, bytes.len() - rest.len());
        if rest.len() < RECORD_PREFIX_LEN {
            return torn(records, rest);
        }
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(FrameError::RecordTooLarge {
                record: number,
                offset,
                len,
            });
        }
        if rest.len() - RECORD_PREFIX_LEN < len {
            return torn(records, rest);
        }
        let sum = u64::from_le_bytes(rest[4..12].try_into().unwrap_or_default());
        let payload = &rest[RECORD_PREFIX_LEN..RECORD_PREFIX_LEN + len];
        let after = &rest[RECORD_PREFIX_LEN + len..];
        if xxh3_64(payload) != sum {
            if after.iter().all(|&b| b == 0) {
                // The last record, half written when the power went.
                return torn(records, rest);
            }
            return Err(FrameError::RecordChecksum {
                record: number,
                offset,
            });
        }
        records.push(LogRecord {
            number,
            offset,
            payload,
        });
        rest = after;
    }
    Ok(LogRecords {
        records,
        torn_tail: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_round_trips_and_any_flipped_byte_is_caught() {
        let file = state_file(b"the cluster state");
        assert_eq!(state_payload(&file), Ok(&b"the cluster state"[..]));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x20;
            assert!(state_payload(&bad).is_err(), "flip at byte {i} went unseen");
        }
        assert_eq!(
            state_payload(&file[..file.len() - 1]),
            Err(FrameError::Truncated {
                need: file.len(),
                have: file.len() - 1
            })
        );
    }

    #[test]
    fn files_of_another_kind_or_format_are_refused() {
        let mut file = state_file(b"x");
        assert_eq!(
            check_header(FileKind::Log, &file),
            Err(FrameError::BadMagic)
        );
        file[8] = 9;
        assert_eq!(
            state_payload(&file),
            Err(FrameError::UnknownFormat { found: 9 })
        );
        assert_eq!(state_payload(b"\x01legacy"), Err(FrameError::BadMagic));
    }

    #[test]
    fn a_torn_last_record_is_dropped_but_damage_in_the_middle_is_refused() {
        let mut log = header(FileKind::Log);
        log.extend(log_record(b"one"));
        log.extend(log_record(b"two"));
        let whole = log.clone();
        assert_eq!(payloads(&whole), vec![&b"one"[..], &b"two"[..]]);
        // Cut anywhere inside the second record: the first survives.
        let first_end = HEADER_LEN + RECORD_PREFIX_LEN + 3;
        for cut in first_end..whole.len() {
            let torn = log_records(&whole[..cut]).unwrap();
            let kept: Vec<&[u8]> = torn.records.iter().map(|r| r.payload).collect();
            assert_eq!(kept, vec![&b"one"[..]], "cut at {cut}");
            assert_eq!(torn.torn_tail, cut - first_end);
        }
        // The last record's payload garbled: torn, not fatal.
        *log.last_mut().unwrap() ^= 1;
        assert_eq!(payloads(&log), vec![&b"one"[..]]);
        // The first record garbled while another follows: refused, named.
        let mut bad = whole.clone();
        bad[first_end - 1] ^= 1;
        assert_eq!(
            log_records(&bad),
            Err(FrameError::RecordChecksum {
                record: 1,
                offset: HEADER_LEN
            })
        );
    }

    fn payloads(log: &[u8]) -> Vec<&[u8]> {
        let records = log_records(log).unwrap().records;
        records.iter().map(|r| r.payload).collect()
    }

    #[test]
    fn a_last_record_padded_with_zeros_is_torn_and_a_huge_length_is_damage() {
        let mut log = header(FileKind::Log);
        log.extend(log_record(b"one"));
        let second = log.len();
        // The file grew for the second record but its bytes never landed.
        log.extend(vec![0u8; 40]);
        let records = log_records(&log).unwrap();
        assert_eq!(records.records.len(), 1);
        assert_eq!(records.torn_tail, 40);
        // A length prefix no record can have, with data after it.
        let mut huge = log[..second].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[7; 30]);
        let err = log_records(&huge).unwrap_err();
        assert_eq!(
            err,
            FrameError::RecordTooLarge {
                record: 2,
                offset: second,
                len: u32::MAX as usize
            }
        );
        assert!(
            err.to_string().contains(&format!("at byte {second}")),
            "{err}"
        );
    }
}
