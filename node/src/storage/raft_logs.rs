//! Where a node's replicas keep their Raft logs (`raft.log`): a WAL each, in its group
//! directory's `wal/`, or all in the node's shared log ([`NodeLog`], `raft-log/` in the
//! node's data directory). Opening a replica's log, asking whether a replica has one (the
//! amnesia guard) and forgetting a removed replica's log go through here, so nothing
//! else in the node depends on the layout.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::config::RaftLogLayout;

use super::wal::segment;
use super::{NodeLog, NodeLogOptions, RaftLogStorage, StorageError, WalOptions};

/// The node's shared log, in its data directory.
pub const NODE_LOG_DIR: &str = "raft-log";
/// A replica's own WAL, in its group directory.
pub const GROUP_WAL_DIR: &str = "wal";

/// A node's Raft logs, in the layout its config names.
#[derive(Clone)]
pub enum RaftLogs {
    /// A WAL per replica.
    PerGroup(WalOptions),
    /// One log for every replica of the node.
    Node(Arc<NodeLog>),
}

impl std::fmt::Debug for RaftLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RaftLogs::PerGroup(wal) => f.debug_tuple("PerGroup").field(wal).finish(),
            RaftLogs::Node(log) => f.debug_tuple("Node").field(&log.segments()).finish(),
        }
    }
}

impl RaftLogs {
    /// Opens the logs of the node whose data directory is `data_dir`. Refused when the
    /// directory holds logs of the other layout: a replica opened over them would find
    /// no log, and look like one that lost its data.
    pub fn open(
        data_dir: &Path,
        layout: RaftLogLayout,
        wal: WalOptions,
    ) -> Result<RaftLogs, StorageError> {
        let node_dir = data_dir.join(NODE_LOG_DIR);
        match layout {
            RaftLogLayout::Group => {
                if super::node_log::holds_records(&node_dir) {
                    return Err(other_layout(&node_dir, "node", "group"));
                }
                Ok(RaftLogs::PerGroup(wal))
            }
            RaftLogLayout::Node => {
                if let Some(wal_dir) = group_wals(data_dir).find(|d| segment::any_records(d)) {
                    return Err(other_layout(&wal_dir, "group", "node"));
                }
                let opts = NodeLogOptions {
                    wal,
                    ..NodeLogOptions::default()
                };
                Ok(RaftLogs::Node(NodeLog::open(&node_dir, opts)?))
            }
        }
    }

    /// Opens `group`'s log; its replica's directory is `group_dir`.
    pub fn open_group(&self, group: u64, group_dir: &Path) -> Result<RaftLogStorage, StorageError> {
        match self {
            RaftLogs::PerGroup(wal) => RaftLogStorage::open(&group_dir.join(GROUP_WAL_DIR), *wal),
            RaftLogs::Node(log) => RaftLogStorage::open_in(log, group),
        }
    }

    /// Whether `group` has a log with anything in it (none: a first start, a crash
    /// before the bootstrap record was durable, or lost data).
    pub fn has_log(&self, group: u64, group_dir: &Path) -> bool {
        match self {
            RaftLogs::PerGroup(_) => segment::any_records(&group_dir.join(GROUP_WAL_DIR)),
            RaftLogs::Node(log) => log.has_records(group),
        }
    }

    /// Forgets `group`'s log for good (its replica was removed, or is replaced by an
    /// empty one). A replica's own WAL goes with its directory: nothing to do here.
    pub fn discard(&self, group: u64) -> Result<(), StorageError> {
        match self {
            RaftLogs::PerGroup(_) => Ok(()),
            RaftLogs::Node(log) => log.discard(group),
        }
    }

    /// Groups with records in the log that no replica opened (yet).
    pub fn unopened_groups(&self) -> Vec<u64> {
        match self {
            RaftLogs::PerGroup(_) => Vec::new(),
            RaftLogs::Node(log) => log.unopened_groups(),
        }
    }
}

/// The per-replica WAL directories under a node's data directory.
fn group_wals(data_dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("group-"))
        .map(|e| e.path().join(GROUP_WAL_DIR))
}

fn other_layout(found: &Path, was: &str, asked: &str) -> StorageError {
    StorageError::Inconsistent(format!(
        "{} holds Raft log records of layout raft.log = \"{was}\", but the config says \
         \"{asked}\": a data directory keeps the layout it was created with (set it back, \
         or start this node on an empty data directory)",
        found.display()
    ))
}
