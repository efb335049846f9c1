//! The catalogue state machine of the metadata Raft group: applies committed
//! proposals in log order, deterministically, so every replica that applies
//! the same log holds the same catalogue (and reports the same digest).

use std::path::Path;

use common::catalog::{CatalogOutcome, CatalogRead, CatalogReadReply};

use super::error::CatalogSnapshotError;
use super::state::CatalogState;
use super::{digest, snapshot};
use crate::raft::dedup::RequestDedup;
pub use crate::raft::AppliedPosition;

/// How many request ids the catalogue remembers. Catalogue changes are rare;
/// a retry comes within seconds.
pub const DEFAULT_DEDUP_WINDOW: usize = 10_000;

/// Starts as the bootstrap catalogue (default tenant and database).
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogStateMachine {
    pub(super) state: CatalogState,
    pub(super) applied: AppliedPosition,
    pub(super) dedup: RequestDedup<CatalogOutcome>,
}

impl Default for CatalogStateMachine {
    fn default() -> Self {
        Self::with_dedup_window(DEFAULT_DEDUP_WINDOW)
    }
}

impl CatalogStateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    /// A state machine remembering the last `capacity` request ids.
    pub fn with_dedup_window(capacity: usize) -> Self {
        CatalogStateMachine {
            state: CatalogState::default(),
            applied: AppliedPosition::default(),
            dedup: RequestDedup::with_capacity(capacity),
        }
    }

    pub fn read(&self, read: &CatalogRead) -> CatalogReadReply {
        self.state.read(read)
    }

    /// The catalogue version: bumped by every change.
    pub fn version(&self) -> u64 {
        self.state.version()
    }

    /// Order-independent digest of the catalogue (tenants, databases,
    /// collections, version); the applied position and request-id window are
    /// not part of it.
    pub fn digest(&self) -> u64 {
        digest::digest(&self.state)
    }

    /// The whole state as self-checking bytes (what [`Self::write_snapshot`]
    /// writes), e.g. to send inside a Raft snapshot.
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>, CatalogSnapshotError> {
        snapshot::encode(self)
    }

    /// Verifies bytes from [`Self::snapshot_bytes`] and rebuilds the machine.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<Self, CatalogSnapshotError> {
        snapshot::decode(bytes)
    }

    /// Writes a snapshot file atomically (temporary file, fsync, rename,
    /// directory fsync).
    pub fn write_snapshot(&self, path: &Path) -> Result<(), CatalogSnapshotError> {
        snapshot::write_file(self, path)
    }

    /// Reads and verifies a snapshot file; bad bytes give an error, never a panic.
    pub fn read_snapshot(path: &Path) -> Result<Self, CatalogSnapshotError> {
        snapshot::read_file(path)
    }
}
