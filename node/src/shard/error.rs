use thiserror::Error;

use super::index::IndexError;

/// Errors of the shard layer: reads against it and its snapshots.
#[derive(Debug, Error)]
pub enum ShardError {
    #[error("Collection {0} does not exist on this shard")]
    CollectionNotFound(String),
    #[error("Collection expecting embedding with dimension of {expected}, got {got}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("snapshot I/O at {path}: {source}")]
    SnapshotIo {
        path: String,
        source: std::io::Error,
    },
    #[error("snapshot is corrupt: {0}")]
    SnapshotCorrupt(String),
    #[error("vector index: {0}")]
    Index(#[from] IndexError),
}
