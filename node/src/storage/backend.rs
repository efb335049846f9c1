//! Where a replica's log records go: a WAL of its own (`raft.log = "group"`) or the
//! node's shared log (`raft.log = "node"`, [`NodeLog`]). [`super::RaftLogStorage`] is the
//! same over both; only writing, reading back and deleting differ.

use std::sync::Arc;

use super::node_log::NodeLog;
use super::wal::{FramePos, Record, Wal, WalStats};
use super::StorageError;

// One per replica, never moved after it is made: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Backend {
    Own(Wal),
    Node { log: Arc<NodeLog>, group: u64 },
}

impl Backend {
    /// Appends durably; returns where the first record's frame starts.
    pub(super) fn append_at(&self, records: Vec<Record>) -> Result<FramePos, StorageError> {
        match self {
            Backend::Own(wal) => wal.append_at(&records),
            Backend::Node { log, group } => log.append(*group, records),
        }
    }

    pub(super) fn read_frame(&self, at: FramePos) -> Result<Record, StorageError> {
        match self {
            Backend::Own(wal) => wal.read_frame(at),
            Backend::Node { log, group } => log.read_frame(*group, at),
        }
    }

    /// Starts a new segment where that lets older ones go sooner (an own WAL; the shared
    /// log is not rolled for one group). Returns the active segment afterwards.
    pub(super) fn roll(&self) -> Result<u64, StorageError> {
        match self {
            Backend::Own(wal) => wal.roll(),
            Backend::Node { log, group } => Ok(log.active_segment_of(*group)),
        }
    }

    /// The replica needs nothing before segment `seq` any more: an own WAL deletes those
    /// segments now; the shared log deletes them once no other group needs them either.
    pub(super) fn release_before(&self, seq: u64) -> Result<(), StorageError> {
        match self {
            Backend::Own(wal) => wal.purge_before(seq).map(|_| ()),
            Backend::Node { log, group } => {
                log.release(*group, seq);
                Ok(())
            }
        }
    }

    pub(super) fn segments(&self) -> Vec<u64> {
        match self {
            Backend::Own(wal) => wal.segments(),
            Backend::Node { log, group } => log.segments_of(*group),
        }
    }

    pub(super) fn active_segment(&self) -> u64 {
        match self {
            Backend::Own(wal) => wal.active_segment(),
            Backend::Node { log, group } => log.active_segment_of(*group),
        }
    }

    pub(super) fn stats(&self) -> WalStats {
        match self {
            Backend::Own(wal) => wal.stats(),
            Backend::Node { log, .. } => log.stats(),
        }
    }
}
