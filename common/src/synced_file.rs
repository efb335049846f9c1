//! A file whose written bytes may be lost until they are fsynced: the
//! power-loss fault of issue 12. With `NODE_FAULT_STORAGE=lose-unsynced` in a
//! node's environment, bytes written to a [`SyncedFile`] stay in the process's
//! memory and reach the file (the OS page cache) only on
//! [`SyncedFile::sync_data`] / [`SyncedFile::sync_all`], which then fsync. A
//! kill -9 of the process (or dropping the file unsynced) therefore loses
//! exactly the bytes a power cut would lose, while a normal kill -9 loses
//! nothing (the page cache survives the process). Off (the default), a write
//! goes straight to the file: the only cost is one branch on a flag read
//! once.
//!
//! Scope: the node's WAL segments (the data every acknowledged write depends
//! on) and the snapshot files written through [`crate::fs::AtomicFile`] and
//! `node/src/raft/snapshot_files.rs`. Renames and creates are not held back:
//! every one the node relies on is followed by a directory fsync
//! (`crate::fs::rename_durably`, WAL segment creation and purge), so a power
//! cut cannot undo one that a write depends on.

use std::fs::File;
use std::io::{self, Write};
use std::sync::OnceLock;

/// The environment variable that selects the storage fault mode.
pub const FAULT_STORAGE_ENV: &str = "NODE_FAULT_STORAGE";
/// Its one value: keep unsynced bytes in memory.
pub const LOSE_UNSYNCED: &str = "lose-unsynced";

/// The mode the environment asks for: `Ok(true)` for lose-unsynced,
/// `Ok(false)` when unset or empty, an error naming the variable for any other
/// value (a chaos run that thinks it cuts power but does not would prove
/// nothing). The node checks it at start and refuses to run on an error.
pub fn mode_from_env() -> Result<bool, String> {
    match std::env::var(FAULT_STORAGE_ENV) {
        Ok(v) if v == LOSE_UNSYNCED => Ok(true),
        Ok(v) if v.is_empty() => Ok(false),
        Ok(v) => Err(format!(
            "{FAULT_STORAGE_ENV}={v}: the only value is `{LOSE_UNSYNCED}`"
        )),
        Err(_) => Ok(false),
    }
}

/// Whether this process runs in the lose-unsynced mode (read once; a bad
/// value, which the node refuses at start, counts as off).
pub fn lose_unsynced() -> bool {
    static MODE: OnceLock<bool> = OnceLock::new();
    *MODE.get_or_init(|| mode_from_env().unwrap_or(false))
}

/// A file opened for writing (see the module docs).
#[derive(Debug)]
pub struct SyncedFile {
    file: File,
    /// `Some` in the lose-unsynced mode: bytes written since the last sync.
    unsynced: Option<Vec<u8>>,
}

impl SyncedFile {
    /// Wraps `file` in the process's mode.
    pub fn new(file: File) -> SyncedFile {
        SyncedFile::with_mode(file, lose_unsynced())
    }

    /// Wraps `file`, holding unsynced bytes in memory when `lose_unsynced`.
    pub fn with_mode(file: File, lose_unsynced: bool) -> SyncedFile {
        SyncedFile {
            file,
            unsynced: lose_unsynced.then(Vec::new),
        }
    }

    /// Writes what is held back (if anything) to the file, then `fdatasync`.
    pub fn sync_data(&mut self) -> io::Result<()> {
        self.release()?;
        self.file.sync_data()
    }

    /// Writes what is held back (if anything) to the file, then `fsync`.
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.release()?;
        self.file.sync_all()
    }

    /// Truncates the file to `len` bytes, dropping what is held back (the
    /// callers truncate to a synced length after a failed write).
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        if let Some(buf) = &mut self.unsynced {
            buf.clear();
        }
        self.file.set_len(len)
    }

    /// The file's metadata (what has reached the file).
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.file.metadata()
    }

    fn release(&mut self) -> io::Result<()> {
        if let Some(buf) = &mut self.unsynced {
            if !buf.is_empty() {
                self.file.write_all(buf)?;
                buf.clear();
            }
        }
        Ok(())
    }
}

impl Write for SyncedFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &mut self.unsynced {
            Some(buf) => {
                buf.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            None => self.file.write(bytes),
        }
    }

    /// Not a sync: held-back bytes stay held back (as the page cache keeps
    /// flushed bytes until an fsync).
    fn flush(&mut self) -> io::Result<()> {
        match self.unsynced {
            Some(_) => Ok(()),
            None => self.file.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Child side of [`kill_9_loses_exactly_the_unsynced_bytes`]: writes
    /// `synced` then syncs, writes `unsynced` and does not, says so on
    /// stdout, and waits to be killed.
    #[test]
    #[ignore = "run by kill_9_loses_exactly_the_unsynced_bytes as its child"]
    fn power_cut_child() {
        let Some(path) = std::env::var_os("SYNCED_FILE_CHILD_PATH") else {
            return;
        };
        let file = File::create(path).unwrap();
        let mut f = SyncedFile::new(file);
        f.write_all(b"synced;").unwrap();
        f.sync_data().unwrap();
        f.write_all(b"unsynced").unwrap();
        f.flush().unwrap();
        println!("READY");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    /// A real process in each mode, killed -9 after a synced and an unsynced
    /// write: lose-unsynced keeps only the synced bytes, the default keeps
    /// both (the page cache outlives the process).
    #[test]
    fn kill_9_loses_exactly_the_unsynced_bytes() {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        for (mode, expected) in [
            (LOSE_UNSYNCED, &b"synced;"[..]),
            ("", &b"synced;unsynced"[..]),
        ] {
            let path = dir.path().join(format!("file-{mode}"));
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "synced_file::tests::power_cut_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env("SYNCED_FILE_CHILD_PATH", &path)
                .env(FAULT_STORAGE_ENV, mode)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let out = BufReader::new(child.stdout.take().unwrap());
            let ready = out
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains("READY"));
            assert!(ready, "child did not get to its writes");
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), expected, "mode {mode:?}");
        }
    }

    #[test]
    fn truncation_drops_held_back_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = SyncedFile::with_mode(File::create(&path).unwrap(), true);
        f.write_all(b"kept").unwrap();
        f.sync_all().unwrap();
        f.write_all(b"lost").unwrap();
        f.set_len(4).unwrap();
        f.sync_all().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    }
}
