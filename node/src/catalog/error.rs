use thiserror::Error;

/// Errors of writing and reading catalogue snapshots. (Refused commands and
/// reads are not errors of the node: they are `CatalogError` replies.)
#[derive(Debug, Error)]
pub enum CatalogSnapshotError {
    #[error("catalogue snapshot I/O at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("catalogue snapshot is corrupt: {0}")]
    Corrupt(String),
}
