//! Pieces every replicated state machine (shard and catalogue) shares:
//! the applied log position, exactly-once request ids, and the stable hash
//! replica digests are built from.

pub mod dedup;
pub use common::hash;

pub use dedup::RequestDedup;

use serde::{Deserialize, Serialize};

/// The log position up to which commands have been applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedPosition {
    pub index: u64,
    pub term: u64,
}
