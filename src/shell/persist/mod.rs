//! What a peer keeps in `--data-dir`, and how it gets there.
//!
//! - `node.json`: who this node is (id, incarnation, name, join token),
//!   with a format version and a checksum of its content;
//! - `node.key`: the node's signing key ([`node_key`]);
//! - `state.bin`: a snapshot of [`Persisted`] (cluster state and the
//!   members to try at the next start), written about once a second;
//! - `wal.log`: desired-state records written since that snapshot, each
//!   fsynced before the write that made it is acknowledged.
//!
//! [`frame`] fixes the byte layout (magic, format version, checksums);
//! [`writer`] runs the writes off the driver, with group commit.
//!
//! Whole files are replaced atomically (write a temporary file, fsync,
//! rename, fsync the directory), so a crash leaves the old or the new
//! version, never half of one; the log is appended to, and a record a crash
//! cut short is dropped at load (it was never acknowledged). A file that
//! exists but cannot be trusted is reported, not silently replaced: the
//! operator moves it away and the cluster sends the state back.

pub mod frame;
#[cfg(test)]
mod log_recovery_tests;
mod node_key;
pub use node_key::key_seed;
pub mod writer;

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_crdt_state::{Delta, wire};

use crate::peer::Persisted;
pub use writer::{Durability, Writer};

/// Largest state file we agree to load.
const MAX_STATE_BYTES: usize = wire::MAX_FILE_BYTES;

/// Format version of `node.json`.
const IDENTITY_FORMAT: u32 = 1;

/// Who this node is, across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node_id: u64,
    /// Bumped at every start: SWIM tells the new process from the old one.
    pub incarnation: u64,
    pub name: String,
    /// The join token this node started with (the secret). Keep this
    /// directory private.
    pub token: String,
    /// The cluster identity (`shoalcluster1.…`, see
    /// `shoal_gossip::quic::ClusterIdentity`): the cluster id and the API
    /// CA's key seed, fixed when the cluster was created, whatever token
    /// this node joined with. Absent in files written before it existed
    /// (the node's token then names the cluster, as it always did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The join tokens admitted after a rotation (`shoal token rotate`):
    /// what this node needs to rejoin after a restart. Absent until the
    /// cluster rotates (so older files keep their checksum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_secrets: Option<shoal_crdt_state::join_secrets::JoinSecrets>,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot use data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is corrupt ({reason}); move it away to start this node afresh \
         (the cluster sends the state back), or restore it from a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} was written by another Shoal version (state format {found}; this build reads \
         {supported}), which this build cannot convert: run the version that wrote it, or move \
         the file away and the peer takes the cluster's state from the others (a cluster whose \
         peers all move it away starts empty: apply the manifests again)"
    )]
    OtherVersion {
        path: PathBuf,
        found: u8,
        supported: u8,
    },
}

/// `node.json` as written: the identity, its format and its checksum.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdentityFile {
    format: u32,
    identity: NodeIdentity,
    /// xxh3-64 of the identity's compact JSON, in hex.
    checksum: String,
}

fn identity_checksum(identity: &NodeIdentity) -> String {
    let json = serde_json::to_vec(identity).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json))
}

/// The data directory of one peer.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn open(root: &Path) -> Result<DataDir, PersistError> {
        fs::create_dir_all(root).map_err(|source| PersistError::Dir {
            path: root.to_owned(),
            source,
        })?;
        Ok(DataDir {
            root: root.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    fn identity_path(&self) -> PathBuf {
        self.root.join("node.json")
    }

    pub fn state_path(&self) -> PathBuf {
        self.root.join("state.bin")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("wal.log")
    }

    /// The stored identity, if this directory was used before.
    pub fn load_identity(&self) -> Result<Option<NodeIdentity>, PersistError> {
        let path = self.identity_path();
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        decode_identity(&path, &bytes).map(Some)
    }

    pub fn save_identity(&self, identity: &NodeIdentity) -> Result<(), PersistError> {
        let file = IdentityFile {
            format: IDENTITY_FORMAT,
            identity: identity.clone(),
            checksum: identity_checksum(identity),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("identity serializes");
        write_atomically(&self.identity_path(), &bytes, true)
    }

    /// What the peer persisted: the last snapshot with the log replayed
    /// over it; `None` for a directory never used by a peer.
    pub fn load(&self) -> Result<Option<Persisted>, PersistError> {
        let (state_path, log_path) = (self.state_path(), self.log_path());
        let state = read_if_exists(&state_path)?;
        let log = read_if_exists(&log_path)?;
        let (persisted, torn_tail) = decode_files(
            state.as_deref().map(|b| (state_path.as_path(), b)),
            log.as_deref().map(|b| (log_path.as_path(), b)),
        )?;
        if let (Some(log), true) = (&log, torn_tail > 0) {
            cut_torn_tail(&log_path, (log.len() - torn_tail) as u64)?;
        }
        Ok(persisted)
    }

    /// Writes a snapshot at once (tests and tools; the peer uses [`Writer`]).
    pub fn save(&self, persisted: &Persisted) -> Result<(), PersistError> {
        let path = self.state_path();
        let payload = wire::encode(persisted).map_err(|e| PersistError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomically(&path, &frame::state_file(&payload), true)
    }
}

/// `node.json`'s bytes read into the identity they hold, checked.
pub fn decode_identity(path: &Path, bytes: &[u8]) -> Result<NodeIdentity, PersistError> {
    let corrupt = |reason: String| PersistError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let file: IdentityFile = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(format!(
            "{e}; a node.json without \"format\" and \"checksum\" predates this version"
        ))
    })?;
    if file.format != IDENTITY_FORMAT {
        return Err(corrupt(format!(
            "format version {}, this build reads version {IDENTITY_FORMAT}",
            file.format
        )));
    }
    if file.checksum != identity_checksum(&file.identity) {
        return Err(corrupt(
            "checksum mismatch: the file was edited or damaged".into(),
        ));
    }
    Ok(file.identity)
}

/// The bytes of `state.bin` and `wal.log` (each with its path, for errors;
/// `None` where the file does not exist) read into what the peer persisted:
/// the snapshot with the log replayed over it, and how many bytes at the
/// log's end were a torn write (dropped).
pub fn decode_files(
    state: Option<(&Path, &[u8])>,
    log: Option<(&Path, &[u8])>,
) -> Result<(Option<Persisted>, usize), PersistError> {
    let corrupt = |path: &Path, reason: String| PersistError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    // A checksum that holds over a payload of another wire version: a
    // file of another Shoal version, not damage.
    let undecodable = |path: &Path, e: wire::WireError| match e {
        wire::WireError::UnsupportedVersion { found, supported } => PersistError::OtherVersion {
            path: path.to_owned(),
            found,
            supported,
        },
        other => corrupt(path, other.to_string()),
    };
    let snapshot = match state {
        Some((path, bytes)) => {
            let payload = frame::state_payload(bytes).map_err(|e| corrupt(path, e.to_string()))?;
            Some(
                wire::decode::<Persisted>(payload, MAX_STATE_BYTES)
                    .map_err(|e| undecodable(path, e))?,
            )
        }
        None => None,
    };
    let Some((log_path, log)) = log else {
        return Ok((snapshot, 0));
    };
    let records = frame::log_records(log).map_err(|e| corrupt(log_path, e.to_string()))?;
    if records.torn_tail > 0 {
        tracing::warn!(
            path = %log_path.display(),
            kept_records = records.records.len(),
            dropped_bytes = records.torn_tail,
            at_byte = log.len() - records.torn_tail,
            "dropped the end of the log: a write cut short by a crash (never acknowledged)"
        );
    }
    let torn_tail = records.torn_tail;
    if records.records.is_empty() {
        return Ok((snapshot, torn_tail));
    }
    let mut persisted = snapshot.unwrap_or_default();
    for record in records.records {
        // Checksummed, so not damage: a record this build cannot read.
        let delta: Delta = wire::decode(record.payload, MAX_STATE_BYTES).map_err(|e| {
            let where_ = format!("record {} (at byte {})", record.number, record.offset);
            match undecodable(log_path, e) {
                PersistError::Corrupt { path, reason } => PersistError::Corrupt {
                    path,
                    reason: format!("{where_}: {reason}"),
                },
                other => other,
            }
        })?;
        persisted.state.merge_delta(delta);
    }
    Ok((Some(persisted), torn_tail))
}

/// Cuts a torn write off the end of `wal.log` before anything is appended:
/// left in place, the next record would follow the torn bytes, and the next
/// start would read it as damage (or drop it with the torn tail).
fn cut_torn_tail(path: &Path, keep: u64) -> Result<(), PersistError> {
    let error = |source| PersistError::Write {
        path: path.to_owned(),
        source,
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(error)?;
    file.set_len(keep).map_err(error)?;
    file.sync_all().map_err(error)
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PersistError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces `path` with `bytes`: a crash leaves the old or the new file.
/// Without `fsync` (benchmarks only) nothing waits for the disk.
fn write_atomically(path: &Path, bytes: &[u8], fsync: bool) -> Result<(), PersistError> {
    let error = |source| PersistError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    // The identity holds the cluster secret: only the owner may read it.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    if fsync {
        file.sync_all().map_err(error)?;
    }
    fs::rename(&tmp, path).map_err(error)?;
    if fsync && let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use shoal_crdt_state::Hlc;
    use shoal_crdt_state::node::NodeId;
    use shoal_crdt_state::spec::{ContainerSpec, PodTemplate, RcSpec};

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shoal-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn identity() -> NodeIdentity {
        NodeIdentity {
            node_id: 7,
            incarnation: 3,
            name: "n7".into(),
            token: "t".into(),
            join_secrets: None,
            cluster: None,
        }
    }

    /// The records of an `apply` of RC `name` running `image`.
    fn apply(name: &str, image: &str, at: u64) -> Delta {
        let labels = std::collections::BTreeMap::from([("app".to_owned(), name.to_owned())]);
        let spec = RcSpec {
            name: name.into(),
            replicas: 2,
            selector: labels.clone(),
            template: PodTemplate {
                labels,
                containers: vec![ContainerSpec::new("web", image)],
                node_selector: Default::default(),
                restart_policy: Default::default(),
                termination_grace_period_secs: 2,
            },
            update_strategy: Default::default(),
            partition_policy: Default::default(),
            paused: false,
        };
        let mut desired = shoal_crdt_state::DesiredState::new();
        desired.apply(&spec, Hlc::new(at, 0, NodeId(7))).into()
    }

    fn wait_durable(writer: &Writer, seq: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.durability().borrow().durable < seq {
            assert!(Instant::now() < deadline, "seq {seq} never became durable");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn identity_and_state_survive_a_reopen() {
        let dir = temp_dir("roundtrip");
        let data = DataDir::open(&dir).unwrap();
        assert_eq!(data.load_identity().unwrap(), None);
        assert_eq!(data.load().unwrap(), None);
        data.save_identity(&identity()).unwrap();
        let mut persisted = Persisted::default();
        persisted
            .state
            .merge_delta(apply("web", "shoal-test/hello:1.0", 1));
        data.save(&persisted).unwrap();
        let again = DataDir::open(&dir).unwrap();
        assert_eq!(again.load_identity().unwrap(), Some(identity()));
        assert_eq!(again.load().unwrap(), Some(persisted));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("node.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "node.json holds the token: owner-only");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cluster_identity_is_kept_and_absent_from_older_files() {
        let dir = temp_dir("cluster");
        let data = DataDir::open(&dir).unwrap();
        let old = identity();
        let text = serde_json::to_string(&old).unwrap();
        assert!(
            !text.contains("cluster"),
            "older files keep their checksum: {text}"
        );
        let mut new = old;
        new.cluster = Some("shoalcluster1.0011223344556677.".to_owned() + &"ab".repeat(32));
        data.save_identity(&new).unwrap();
        assert_eq!(
            DataDir::open(&dir).unwrap().load_identity().unwrap(),
            Some(new)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_of_another_version_is_refused_as_such_not_as_damage() {
        let dir = temp_dir("version");
        let data = DataDir::open(&dir).unwrap();
        data.save(&Persisted::default()).unwrap();
        // What an older build wrote: intact, checksummed, another wire version.
        let bytes = fs::read(data.state_path()).unwrap();
        let mut payload = frame::state_payload(&bytes).unwrap().to_vec();
        payload[0] = wire::WIRE_VERSION - 1;
        fs::write(data.state_path(), frame::state_file(&payload)).unwrap();
        let err = data.load().unwrap_err().to_string();
        assert!(err.contains("written by another Shoal version"), "{err}");
        assert!(err.contains("run the version that wrote it"), "{err}");
        assert!(!err.contains("corrupt"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_edited_so_that_it_still_decodes_is_refused_with_its_path() {
        let dir = temp_dir("edited");
        let data = DataDir::open(&dir).unwrap();
        let mut persisted = Persisted::default();
        persisted
            .state
            .merge_delta(apply("web", "shoal-test/hello:1.0", 1));
        data.save(&persisted).unwrap();
        // Same length, still valid bincode: another image under the same stamp.
        let bytes = fs::read(data.state_path()).unwrap();
        let at = bytes.windows(3).position(|w| w == b"1.0").unwrap();
        let mut edited = bytes.clone();
        edited[at..at + 3].copy_from_slice(b"6.6");
        fs::write(data.state_path(), &edited).unwrap();
        let err = data.load().unwrap_err().to_string();
        assert!(err.contains("state.bin is corrupt"), "{err}");
        assert!(err.contains("checksum"), "{err}");
        assert!(err.contains("move it away"), "{err}");
        // A file from before checksums is refused, not misread.
        fs::write(data.state_path(), b"\x01garbage").unwrap();
        let err = data.load().unwrap_err().to_string();
        assert!(err.contains("predate checksummed files"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_edited_node_json_is_refused() {
        let dir = temp_dir("identity-edit");
        let data = DataDir::open(&dir).unwrap();
        data.save_identity(&identity()).unwrap();
        let text = fs::read_to_string(dir.join("node.json")).unwrap();
        fs::write(dir.join("node.json"), text.replace("\"n7\"", "\"n8\"")).unwrap();
        let err = data.load_identity().unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn acknowledged_writes_survive_a_crash_before_the_next_snapshot() {
        let dir = temp_dir("wal");
        let data = DataDir::open(&dir).unwrap();
        let writer = Writer::spawn(&data, true).unwrap();
        let mut expected = Persisted::default();
        let first = apply("a", "shoal-test/hello:1.0", 1);
        expected.state.merge_delta(first.clone());
        wait_durable(&writer, writer.snapshot(expected.clone()));
        let mut last = 0;
        for (i, name) in ["b", "c", "d"].into_iter().enumerate() {
            let delta = apply(name, "shoal-test/hello:1.0", 2 + i as u64);
            expected.state.merge_delta(delta.clone());
            last = writer.append(delta);
        }
        wait_durable(&writer, last);
        // Crash: the thread never writes another snapshot.
        drop(writer);
        assert_eq!(data.load().unwrap(), Some(expected.clone()));

        // A record cut short by the crash is dropped, the rest kept.
        let mut log = fs::read(data.log_path()).unwrap();
        let whole = log.len();
        log.extend_from_slice(&frame::log_record(b"half a record")[..9]);
        fs::write(data.log_path(), &log).unwrap();
        assert_eq!(data.load().unwrap(), Some(expected.clone()));

        // The next snapshot holds everything and empties the log.
        let writer = Writer::spawn(&data, true).unwrap();
        wait_durable(&writer, writer.snapshot(expected.clone()));
        writer.close();
        assert!(fs::read(data.log_path()).unwrap().len() < whole);
        assert_eq!(data.load().unwrap(), Some(expected));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_that_cannot_reach_the_disk_is_reported_not_acknowledged() {
        let dir = temp_dir("readonly");
        let data = DataDir::open(&dir).unwrap();
        let writer = Writer::spawn(&data, true).unwrap();
        // The state file's place is taken by a directory: snapshots fail.
        fs::create_dir_all(data.state_path().join("in-the-way")).unwrap();
        let seq = writer.snapshot(Persisted::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = writer.durability().borrow().clone();
            if let Some((upto, why)) = d.failed.clone() {
                assert!(upto >= seq && d.durable < seq, "{d:?}");
                assert!(why.contains("state.bin"), "{why}");
                break;
            }
            assert!(Instant::now() < deadline, "no failure reported");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Once the obstacle is gone the retry succeeds.
        fs::remove_dir_all(data.state_path()).unwrap();
        wait_durable(&writer, seq);
        assert_eq!(writer.durability().borrow().failed, None);
        writer.close();
        fs::remove_dir_all(&dir).unwrap();
    }
}
