//! `node.key`: the node's ed25519 signing key (its seed, in hex), made
//! from the OS's randomness at first start and readable by the owner only.
//! Its public half is what the node id is bound to in the cluster (see
//! `shoal_crdt_state::identity`): a node that loses this file cannot sign
//! as its id any more, and must be deleted (`shoal node delete`) to join
//! again under it, or start afresh under a new id.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ring::rand::{SecureRandom, SystemRandom};

use super::{DataDir, PersistError, read_if_exists, write_atomically};
use crate::peer::NodeKeys;

/// First line of the file: says what it is and its format.
const HEADER: &str = "shoal node key v1 (ed25519 seed, hex); keep private";

impl DataDir {
    fn node_key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// The node's signing key, created on first use.
    pub fn node_key(&self) -> Result<NodeKeys, PersistError> {
        Ok(NodeKeys::from_seed(&self.node_key_seed()?))
    }

    /// The seed of the node's signing key, created on first use (the QUIC
    /// certificates are made for the same key).
    pub fn node_key_seed(&self) -> Result<[u8; 32], PersistError> {
        let path = self.node_key_path();
        let corrupt = |reason: String| PersistError::Corrupt {
            path: path.clone(),
            reason,
        };
        let Some(bytes) = read_if_exists(&path)? else {
            let mut seed = [0u8; 32];
            SystemRandom::new()
                .fill(&mut seed)
                .map_err(|_| corrupt("the OS gave no randomness to make a key".into()))?;
            let text = format!("{HEADER}\n{}\n", hex(&seed));
            write_atomically(&path, text.as_bytes(), true)?;
            return Ok(seed);
        };
        let mode = fs::metadata(&path)
            .map_err(|source| PersistError::Read {
                path: path.clone(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(corrupt(format!(
                "mode {:o} lets others read the node's private key; `chmod 600` it if no one \
                 else did, or delete the node and start afresh",
                mode & 0o777
            )));
        }
        key_seed(&bytes).map_err(corrupt)
    }
}

/// The seed `node.key`'s text holds, or why it holds none.
pub fn key_seed(bytes: &[u8]) -> Result<[u8; 32], String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not text".to_string())?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("first line is not {HEADER:?}"));
    }
    lines
        .next()
        .and_then(|l| unhex(l.trim()))
        .ok_or_else(|| "second line is not 64 hex digits".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use shoal_crdt_state::identity::RecordSigner;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("shoal-node-key-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_node_key_is_made_once_private_and_read_back() {
        let dir = temp_dir("roundtrip");
        let data = DataDir::open(&dir).unwrap();
        let first = data.node_key().unwrap();
        let mode = fs::metadata(data.node_key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(data.node_key().unwrap().public_key(), first.public_key());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_readable_or_damaged_node_key_is_refused_with_its_path() {
        let dir = temp_dir("refused");
        let data = DataDir::open(&dir).unwrap();
        data.node_key().unwrap();
        let path = data.node_key_path();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = data.node_key().unwrap_err().to_string();
        assert!(e.contains("node.key") && e.contains("chmod 600"), "{e}");
        fs::write(&path, format!("{HEADER}\nnot hex\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = data.node_key().unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
