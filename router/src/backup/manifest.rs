//! `manifest.json` of a backup directory: what was taken, when, and how to check it.

use std::fs;
use std::io::Read;
use std::path::Path;

use common::backup::CollectionCount;
use common::placement::GroupKind;
use serde::{Deserialize, Serialize};

use super::BackupError;

/// The manifest's file name in a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// A manifest larger than this is refused unread (one entry per collection fits easily).
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `common::backup::FORMAT_VERSION` of the files.
    pub format: u32,
    /// `cluster.name` of the backed-up cluster.
    pub cluster: String,
    /// When the backup started, ms since the Unix epoch.
    pub started_unix_ms: u64,
    pub elapsed_ms: u64,
    /// Every group, the catalogue (group 0) first.
    pub groups: Vec<GroupEntry>,
    /// Every collection of the catalogue, with its records over all groups.
    pub collections: Vec<CollectionEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupEntry {
    pub group: u64,
    pub kind: GroupKind,
    /// File name in the backup directory.
    pub file: String,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The log position the group's content was taken at (on its leader).
    pub applied_index: u64,
    pub applied_term: u64,
    pub records: u64,
    /// Sum of the group's record digests, 16 hex digits (the replica digest).
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    pub id: String,
    pub tenant: String,
    pub database: String,
    pub name: String,
    pub records: u64,
    /// Sum of the collection's record digests, 16 hex digits; the same whatever the
    /// number of shards the records are spread over.
    pub digest: String,
}

impl CollectionEntry {
    pub fn count(&self) -> Result<CollectionCount, BackupError> {
        Ok(CollectionCount {
            records: self.records,
            digest: parse_hex(&self.digest)?,
        })
    }
}

pub fn hex64(v: u64) -> String {
    format!("{v:016x}")
}

pub fn parse_hex(s: &str) -> Result<u64, BackupError> {
    u64::from_str_radix(s, 16)
        .map_err(|_| BackupError::Manifest(format!("not a 16-digit hex digest: {s:?}")))
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, BackupError> {
        let path = dir.join(MANIFEST_FILE);
        let file = fs::File::open(&path).map_err(BackupError::io(&path))?;
        let mut text = String::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(BackupError::io(&path))?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(BackupError::Manifest(format!(
                "{} is over {MAX_MANIFEST_BYTES} bytes",
                path.display()
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| BackupError::Manifest(format!("{}: {e}", path.display())))
    }

    /// Written last, atomically: a directory with a manifest holds a complete backup.
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(MANIFEST_FILE);
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| BackupError::Manifest(e.to_string()))?;
        common::fs::write_atomic(&path, &text).map_err(BackupError::io(&path))
    }
}
