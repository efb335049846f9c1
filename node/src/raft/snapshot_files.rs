//! A replica's state-machine snapshots on disk: `{group dir}/snap/{index:020}.snap`.
//!
//! A file is written under a temporary name, fsynced, renamed into place and the directory
//! fsynced, so a visible `.snap` file is always complete. The Raft log is compacted (or a
//! received snapshot installed) only after its file is durable, and older files are deleted
//! only after that, so a crash at any point leaves a file at the log's snapshot index.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::state_machine::{EncodedStateMachine, SnapshotError, SnapshotWrite};

const SUFFIX: &str = ".snap";
/// Temporary names: one per writer, since the replica actor (a snapshot received from the
/// leader) and the apply thread (a snapshot of its own) may write at the same time.
const TMP_RECEIVED: &str = "received.tmp";
const TMP_LOCAL: &str = "local.tmp";
const TMP_SUFFIX: &str = ".tmp";

/// A captured snapshot whose file is not written yet (see [`SnapshotFiles::capture`]).
pub struct PendingSnapshot {
    files: SnapshotFiles,
    index: u64,
    tmp: PathBuf,
    write: SnapshotWrite<SnapshotError>,
}

impl PendingSnapshot {
    /// Writes the file and publishes it as the snapshot file for its index.
    pub fn write(self) -> Result<PathBuf, String> {
        (self.write)().map_err(|e| e.to_string())?;
        self.files.publish(&self.tmp, self.index)
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl SnapshotFiles {
    /// Opens (creating) the directory and removes leftover temporary files.
    pub fn open(dir: &Path) -> io::Result<Self> {
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            // The directory's own entry must survive a power cut as the files
            // in it do (`publish` fsyncs only this directory): the WAL is
            // compacted on the strength of the snapshots it holds.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                common::fs::sync_dir(parent)?;
            }
        }
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(SnapshotFiles {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{index:020}{SUFFIX}"))
    }

    /// Indexes of the complete snapshot files, ascending.
    pub fn list(&self) -> Vec<u64> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<u64> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(SUFFIX)?.parse().ok()
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The newest file whose index is in `lo..=hi`.
    pub fn newest_within(&self, lo: u64, hi: u64) -> Option<u64> {
        self.list()
            .into_iter()
            .rev()
            .find(|i| (lo..=hi).contains(i))
    }

    /// Writes the state machine's snapshot as the file for `index` (tests: the apply
    /// thread captures under the lock and writes apart, see `apply.rs`).
    #[cfg(test)]
    pub fn write_from(&self, index: u64, sm: &dyn EncodedStateMachine) -> Result<PathBuf, String> {
        self.capture(index, sm)?.write()
    }

    /// Captures the state machine's snapshot for `index` (under the caller's lock of it);
    /// [`PendingSnapshot::write`] writes the file later, without that lock. One at a time:
    /// they share the temporary name.
    pub fn capture(
        &self,
        index: u64,
        sm: &dyn EncodedStateMachine,
    ) -> Result<PendingSnapshot, String> {
        let tmp = self.dir.join(TMP_LOCAL);
        let write = sm.capture_snapshot(&tmp).map_err(|e| e.to_string())?;
        Ok(PendingSnapshot {
            files: self.clone(),
            index,
            tmp,
            write,
        })
    }

    /// Writes received snapshot bytes as the file for `index`.
    pub fn write_bytes(&self, index: u64, data: &[u8]) -> Result<PathBuf, String> {
        let tmp = self.dir.join(TMP_RECEIVED);
        let mut f = File::create(&tmp)
            .map(common::synced_file::SyncedFile::new)
            .map_err(|e| io_err(&tmp, e))?;
        // Synced through the handle that wrote (the lose-unsynced storage
        // mode keeps unsynced bytes per handle).
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err(&tmp, e))?;
        drop(f);
        self.publish(&tmp, index)
    }

    fn publish(&self, tmp: &Path, index: u64) -> Result<PathBuf, String> {
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(tmp, e))?;
        let path = self.path(index);
        common::fs::rename_durably(tmp, &path).map_err(|e| io_err(&path, e))?;
        Ok(path)
    }

    /// The bytes of the file for `index`, if it exists.
    pub fn read(&self, index: u64) -> Option<Vec<u8>> {
        fs::read(self.path(index)).ok()
    }

    /// Deletes every file older than the one for `index` (newer ones may be in use: the
    /// apply thread writes its next snapshot while the log is compacted to the last).
    pub fn retain_from(&self, index: u64) {
        self.remove_where(|i| i < index);
    }

    /// Deletes every file but the one for `index`.
    pub fn retain_only(&self, index: u64) {
        self.remove_where(|i| i != index);
    }

    fn remove_where(&self, doomed: impl Fn(u64) -> bool) {
        for i in self.list() {
            if doomed(i) {
                let p = self.path(i);
                if let Err(e) = fs::remove_file(&p) {
                    tracing::warn!(path = %p.display(), error = %e, "cannot delete old snapshot");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::Encoded;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Bytes a leader sends as a snapshot are written as a file and restored into the
        /// group's state machine: arbitrary bytes are an error, never a panic, for every
        /// kind of state machine.
        #[test]
        fn arbitrary_received_snapshot_bytes_restore_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let files = SnapshotFiles::open(&dir.path().join("snap")).unwrap();
            let path = files.write_bytes(1, &bytes).unwrap();
            let machines: Vec<Box<dyn EncodedStateMachine>> = vec![
                Box::new(Encoded(crate::kv::KvStateMachine::new())),
                Box::new(Encoded(crate::shard::ShardStateMachine::new())),
                Box::new(Encoded(crate::catalog::CatalogStateMachine::new())),
            ];
            for mut sm in machines {
                let _ = sm.restore_snapshot(&path);
            }
        }
    }

    #[test]
    fn files_are_listed_chosen_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(&dir.path().join("snap")).unwrap();
        assert!(files.list().is_empty());
        files.write_bytes(5, b"five").unwrap();
        files.write_bytes(12, b"twelve").unwrap();
        fs::write(files.dir().join(TMP_RECEIVED), b"partial").unwrap();
        fs::write(files.dir().join(TMP_LOCAL), b"partial").unwrap();
        fs::write(files.dir().join("junk"), b"x").unwrap();
        let files = SnapshotFiles::open(files.dir()).unwrap();
        assert!(!files.dir().join(TMP_RECEIVED).exists());
        assert!(!files.dir().join(TMP_LOCAL).exists());
        assert_eq!(files.list(), vec![5, 12]);
        assert_eq!(files.newest_within(0, 11), Some(5));
        assert_eq!(files.newest_within(6, 20), Some(12));
        assert_eq!(files.newest_within(13, 20), None);
        assert_eq!(files.read(12).as_deref(), Some(&b"twelve"[..]));
        files.write_bytes(20, b"twenty").unwrap();
        files.retain_from(12);
        assert_eq!(files.list(), vec![12, 20]);
        files.retain_only(12);
        assert_eq!(files.list(), vec![12]);
    }
}
