//! Durable storage of a replica: the write-ahead log and the Raft log storage on it.
//!
//! - [`wal`]: segment files of CRC-framed records, fsync before acknowledging, group
//!   commit, torn-tail recovery, whole-segment deletion after snapshots.
//! - [`raft_log`]: [`RaftLogStorage`], raft-rs's `Storage` trait over the WAL.

pub mod error;
pub mod raft_log;
pub mod wal;

#[cfg(test)]
mod tests;

pub use error::StorageError;
pub use raft_log::{RaftLogStorage, SnapshotSource};
pub use wal::{RecoveryReport, SyncMode, Wal, WalOptions, WalStats};
