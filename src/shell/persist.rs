//! What a peer keeps in `--data-dir`: its identity and the cluster state.
//!
//! Files are written atomically (write a temporary file, fsync, rename,
//! fsync the directory), so a crash leaves the old or the new version, never
//! half of one. A file that exists but cannot be read is reported, not
//! silently replaced: the operator decides to move it away.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_crdt_state::{ClusterState, wire};

/// Largest state file we agree to load.
const MAX_STATE_BYTES: usize = 256 * 1024 * 1024;

/// Who this node is, across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node_id: u64,
    /// Bumped at every start: SWIM tells the new process from the old one.
    pub incarnation: u64,
    pub name: String,
    /// The cluster's join token (the secret): keep this directory private.
    pub token: String,
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

    fn state_path(&self) -> PathBuf {
        self.root.join("state.bin")
    }

    /// The stored identity, if this directory was used before.
    pub fn load_identity(&self) -> Result<Option<NodeIdentity>, PersistError> {
        let path = self.identity_path();
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PersistError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    pub fn save_identity(&self, identity: &NodeIdentity) -> Result<(), PersistError> {
        let bytes = serde_json::to_vec_pretty(identity).expect("identity serializes");
        write_atomically(&self.identity_path(), &bytes)
    }

    /// The stored cluster state, if any.
    pub fn load_state(&self) -> Result<Option<ClusterState>, PersistError> {
        let path = self.state_path();
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        wire::decode(&bytes, MAX_STATE_BYTES)
            .map(Some)
            .map_err(|e| PersistError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    pub fn save_state(&self, state: &ClusterState) -> Result<(), PersistError> {
        let path = self.state_path();
        let bytes = wire::encode(state).map_err(|e| PersistError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_atomically(&path, &bytes)
    }
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

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
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
    file.sync_all().map_err(error)?;
    fs::rename(&tmp, path).map_err(error)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shoal-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn identity_and_state_survive_a_reopen() {
        let dir = temp_dir("roundtrip");
        let data = DataDir::open(&dir).unwrap();
        assert_eq!(data.load_identity().unwrap(), None);
        let id = NodeIdentity {
            node_id: 7,
            incarnation: 3,
            name: "n7".into(),
            token: "t".into(),
        };
        data.save_identity(&id).unwrap();
        data.save_state(&ClusterState::new()).unwrap();
        let again = DataDir::open(&dir).unwrap();
        assert_eq!(again.load_identity().unwrap(), Some(id));
        assert_eq!(again.load_state().unwrap(), Some(ClusterState::new()));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("node.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "node.json holds the token: owner-only");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_state_is_reported_with_its_path() {
        let dir = temp_dir("corrupt");
        let data = DataDir::open(&dir).unwrap();
        fs::write(dir.join("state.bin"), b"\x01garbage").unwrap();
        let err = data.load_state().unwrap_err().to_string();
        assert!(err.contains("state.bin is corrupt"), "{err}");
        assert!(err.contains("move it away"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
