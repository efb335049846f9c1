//! The one error type of the storage layer.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the WAL or in the Raft log storage built on it.
///
/// A torn tail of the last WAL segment (an append a crash interrupted) is *not* an error:
/// recovery cuts it and reports it (see [`crate::storage::wal::RecoveryReport`]). Any
/// other damage is [`StorageError::Damaged`].
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call on `path` failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The WAL holds damage a crash cannot explain (see [`crate::storage::wal::recovery`]):
    /// fsynced records may be lost, so the log is not opened and nothing is changed.
    #[error("WAL damaged: {} at offset {offset}: {reason}", path.display())]
    Damaged {
        path: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A record could not be encoded (should never happen for well-formed messages).
    #[error("cannot encode WAL record: {0}")]
    Encode(String),

    /// One record is larger than a frame may be.
    #[error("WAL record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { size: usize, limit: usize },

    /// An earlier write or fsync failed. After a failed fsync the state of the page cache is
    /// unknown, so the WAL refuses every further write; reopen it to recover.
    #[error("WAL is unusable after an earlier failure: {0}")]
    Poisoned(String),

    /// The WAL replayed cleanly frame by frame, but the records do not describe a
    /// consistent Raft log (e.g. entries missing before the first retained one).
    #[error("WAL content is inconsistent: {0}")]
    Inconsistent(String),

    /// Entries handed to `append` do not have consecutive indexes.
    #[error("entries to append are not consecutive: index {got} follows {prev}")]
    NonConsecutive { prev: u64, got: u64 },

    /// Entries handed to `append` would leave a hole after the last index.
    #[error("append would leave a gap: last index {last}, first appended {first}")]
    LogGap { last: u64, first: u64 },

    /// `compact` was asked to forget entries that are not in the log.
    #[error("cannot compact to {index}: last index is {last}")]
    CompactBeyondLast { index: u64, last: u64 },

    /// `compact` got snapshot metadata whose term does not match the log.
    #[error(
        "snapshot metadata at index {index} has term {meta_term}, the log has term {log_term}"
    )]
    SnapshotTermMismatch {
        index: u64,
        meta_term: u64,
        log_term: u64,
    },

    /// A group appended to the node's shared log without being open in it (after it was
    /// discarded: the record would bring the group back at the next open).
    #[error("group {0} is not open in the node log")]
    GroupNotOpen(u64),

    /// `install_snapshot` got a snapshot no newer than the one already held.
    #[error("snapshot at index {index} is not newer than the current one at {current}")]
    SnapshotOutOfDate { index: u64, current: u64 },
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.into();
        move |source| StorageError::Io { path, source }
    }
}

impl From<StorageError> for raft::Error {
    fn from(e: StorageError) -> raft::Error {
        match e {
            StorageError::SnapshotOutOfDate { .. } => {
                raft::Error::Store(raft::StorageError::SnapshotOutOfDate)
            }
            other => raft::Error::Store(raft::StorageError::Other(Box::new(other))),
        }
    }
}
