//! Errors of the vector index.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The directory holds no persisted index (no manifest).
    #[error("no persisted index in {0}")]
    Missing(PathBuf),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A persisted file failed validation (size, checksum, structure).
    #[error("persisted index is corrupt: {0}")]
    Corrupt(String),
    /// The persisted index is valid but was built for another configuration,
    /// dimension, platform or hnsw_rs version.
    #[error("persisted index does not match: {0}")]
    Mismatch(String),
    /// hnsw_rs returned an error or panicked.
    #[error("hnsw_rs failed: {0}")]
    Hnsw(String),
    #[error("vector has dimension {got}, the index expects {expected}")]
    Dimension { expected: usize, got: usize },
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }
}
