//! The catalogue state machine of the metadata Raft group: tenants,
//! databases and collections (configuration, dimension, shard list), the
//! catalogue version routers cache by, request-id dedup, digest and
//! snapshots. Pure and deterministic: no clocks, no randomness, no I/O
//! except snapshot files. Wire types live in `common::catalog`.
//!
//! - `state`: the data and its name index.
//! - `apply`: one function per command, all checks before any change.
//! - `read`: the reads, in Chroma's orders.
//! - `digest`: order-independent digest.
//! - `snapshot`: CRC-checked bincode snapshots.
//! - `export`: the catalogue's content for a backup.
//! - `state_machine`: [`CatalogStateMachine`], tying them together.

mod apply;
mod digest;
pub mod error;
mod export;
mod read;
mod replicated;
mod snapshot;
pub mod state;
pub mod state_machine;

#[cfg(test)]
mod tests;

pub use error::CatalogSnapshotError;
pub use state_machine::DEFAULT_DEDUP_WINDOW;
pub use state_machine::{AppliedPosition, CatalogStateMachine};
