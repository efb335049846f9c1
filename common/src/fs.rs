//! Replacing a file atomically and durably: the new content goes to
//! `<name>.tmp` beside the target, is fsynced, renamed over the target, and
//! the directory is fsynced. A crash at any point leaves the old file or the
//! new one, never a torn one, and once the call returns the new file survives
//! a power loss. Every snapshot, manifest and marker file a node keeps is
//! written this way.
//!
//! Errors are plain `io::Error`s; callers wrap them in their own error type
//! with the target's path.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::synced_file::SyncedFile;

/// Writes `bytes` as the new content of `path`, atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit().map(drop)
}

/// fsyncs a directory, so that a rename, a new file or a removal in it is
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames the complete, fsynced file `from` to `to` and fsyncs the
/// directory of `to`, so the rename survives a power loss.
pub fn rename_durably(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

/// A file written in pieces (buffered) that replaces `path` only on
/// [`AtomicFile::commit`]; dropped before that, it removes its temp file and
/// leaves `path` as it was.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    /// `None` once committed.
    out: Option<BufWriter<SyncedFile>>,
}

impl AtomicFile {
    /// Starts the replacement of `path` (a leftover temp file of a crashed
    /// write is truncated).
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let tmp = tmp_path(path);
        let file = File::create(&tmp)?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(BufWriter::new(SyncedFile::new(file))),
        })
    }

    /// Makes the written content the file at `path`: flush, fsync, rename,
    /// fsync of the directory. Returns the file's length.
    pub fn commit(mut self) -> io::Result<u64> {
        let out = self.out.take().expect("an AtomicFile is committed once");
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let len = file.metadata()?.len();
        drop(file);
        rename_durably(&self.tmp, &self.path)?;
        Ok(len)
    }

    fn out(&mut self) -> &mut BufWriter<SyncedFile> {
        self.out
            .as_mut()
            .expect("commit consumes the AtomicFile, so it is open here")
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            // Not committed (an error on the way): the target stays as it was.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `<name>.tmp` beside `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name: OsString = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_creates_then_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"first version, long").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first version, long");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(dir.path()), ["state"]);
    }

    #[test]
    fn a_leftover_temp_file_of_a_crashed_write_is_overwritten_not_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(dir.path().join("state.tmp"), vec![b'x'; 4096]).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["state"]);
    }

    #[test]
    fn streamed_writes_commit_with_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let mut file = AtomicFile::create(&path).unwrap();
        for i in 0..1000u32 {
            file.write_all(&i.to_le_bytes()).unwrap();
        }
        // Nothing is visible before the commit.
        assert!(!path.exists());
        assert_eq!(file.commit().unwrap(), 4000);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 4000);
        assert_eq!(&bytes[4..8], &1u32.to_le_bytes());
        assert_eq!(names(dir.path()), ["snap"]);
    }

    #[test]
    fn dropped_without_commit_keeps_the_old_file_and_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        fs::write(&path, b"old").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"half of a new").unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["snap"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("state");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn the_temp_file_sits_beside_the_target() {
        assert_eq!(tmp_path(Path::new("state")), PathBuf::from("state.tmp"));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            tmp_path(&dir.path().join("MANIFEST")),
            dir.path().join("MANIFEST.tmp")
        );
    }
}
