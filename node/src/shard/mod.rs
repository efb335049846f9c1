//! One shard replica's state: the state machine that applies committed
//! commands, per-collection records and vector indexes, the read path, the
//! replica digest, snapshots, and the content of a backup (`export`).

pub mod collection;
pub mod digest;
pub mod error;
pub mod export;
pub mod index;
pub mod indexer;
pub mod metadata_index;
mod packing;
pub mod read;
pub mod replicated;
pub mod snapshot;
pub mod state_machine;

pub use error::ShardError;
pub use state_machine::{AppliedPosition, ShardStateMachine};

#[cfg(test)]
mod tests;
