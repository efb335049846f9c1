//! Durable storage of a replica: the write-ahead log and the Raft log storage on it.
//!
//! - [`wal`]: segment files of CRC-framed records, fsync before acknowledging, group
//!   commit, torn-tail recovery (other damage is refused), whole-segment deletion after
//!   snapshots.
//! - [`raft_log`]: [`RaftLogStorage`], raft-rs's `Storage` trait over the WAL.
//! - [`node_log`]: one WAL for every group of a node (`raft.log = "node"`), records
//!   tagged with their group, instead of a WAL per replica.
//! - [`raft_logs`]: the layout a node's config names, what the rest of the node opens
//!   replicas' logs through.
//! - `log_entries`: the log's entries in memory, applied ones past a byte budget read
//!   back from the WAL instead.
//!
//! # On disk
//! `{dir}/{seq:016}.wal`, consecutive `seq` from 1. Each segment: a 16-byte header
//! (`b"VWAL"`, version `1u32` LE, `seq` u64 LE), then frames
//! `[len u32 LE][crc32 u32 LE][payload]`, CRC (crc32fast) over the payload. The payload is
//! a bincode-encoded record ([`wal::Record`]): an entry batch (with an optional hard state,
//! atomically), a hard state, a conf state, or snapshot metadata (compaction or installed
//! snapshot) carrying the full hard and conf state. Raft messages inside are protobuf
//! bytes. A new segment starts when a write would take the active one past
//! `segment_bytes`.
//!
//! # Durability
//! An append returns after `write` + `sync_data` (with [`SyncMode::Fsync`]); creating or
//! deleting a segment fsyncs the directory. Recovery: see [`wal::recovery`]. Compaction
//! writes its record (fsync) before deleting the segments it frees, oldest first.

mod backend;
pub mod error;
mod log_entries;
pub mod node_log;
pub mod raft_log;
pub mod raft_logs;
pub mod wal;

#[cfg(test)]
mod tests;

pub use error::StorageError;
pub use node_log::{NodeLog, NodeLogOptions};
pub use raft_log::{RaftLogStorage, SnapshotSource};
pub use raft_logs::RaftLogs;
pub use wal::{RecoveryReport, SyncMode, Wal, WalOptions, WalStats};
