//! Mid-log corruption of one replica: bytes flipped inside a stopped node's
//! WAL for one group (with `raft.log = "node"`, in the node's shared log: the
//! node then refuses to start, as no frame says whose it was), where a crash cannot tear (not the tail), as bit rot or
//! a bad disk block would. The node's WAL recovery must refuse the log (CRC
//! per frame) and the replica must stay failed, serving and replicating
//! nothing, while the group goes on on its other replicas. Heal: none on the
//! node (the replica stays failed until the data dir is replaced); the group
//! heals by its majority.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use common::config::RaftLogLayout;

use super::FaultError;
use crate::Cluster;

/// Bytes flipped (XOR 0xff) at the chosen offset.
const FLIPPED: usize = 16;
/// Bytes of a WAL segment's header (never touched: damage inside a frame is
/// what a CRC must catch).
const HEADER_LEN: u64 = 16;

/// Where [`Cluster::corrupt_wal`] flipped bytes.
#[derive(Debug, Clone)]
pub struct Corruption {
    pub file: PathBuf,
    pub offset: u64,
    pub len: usize,
    /// The segments the group's WAL had (the file is never the last one
    /// when there are two or more).
    pub segments: usize,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flipped {} bytes of {} at offset {}",
            self.len,
            self.file.display(),
            self.offset
        )
    }
}

impl Cluster {
    /// Node `id`'s WAL directory for `group`: with `raft.log = "node"`, the
    /// node log's fullest lane (damage in any lane stops the whole node).
    pub fn wal_dir(&self, id: u64, group: u64) -> PathBuf {
        let data_dir = self.config.node_data_dir(id);
        match self.config.raft.log {
            RaftLogLayout::Node => {
                let log = data_dir.join("raft-log");
                let lanes = std::fs::read_dir(&log).into_iter().flatten().flatten();
                lanes
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("lane-"))
                    })
                    .max_by_key(|p| dir_bytes(p))
                    .unwrap_or_else(|| log.join("lane-0"))
            }
            RaftLogLayout::Group => data_dir.join(format!("group-{group}")).join("wal"),
        }
    }

    /// Flips [`FLIPPED`] bytes in the middle of node `id`'s WAL for `group`:
    /// in the oldest segment when there are several (a sealed, fsynced one),
    /// else in the middle of the only one. The node must be stopped
    /// ([`Cluster::kill_node`]); restart it with [`Cluster::spawn_node`].
    pub fn corrupt_wal(&self, id: u64, group: u64) -> Result<Corruption, FaultError> {
        if self.is_running(id) {
            return Err(FaultError::Invalid(format!(
                "node {id} is running: stop it before corrupting its WAL"
            )));
        }
        let dir = self.wal_dir(id, group);
        let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        segments.sort();
        let Some(file) = segments.first().cloned() else {
            return Err(FaultError::Invalid(format!(
                "no WAL segment in {}",
                dir.display()
            )));
        };
        let mut f = OpenOptions::new().read(true).write(true).open(&file)?;
        let len = f.metadata()?.len();
        if len < HEADER_LEN + 4 * FLIPPED as u64 {
            return Err(FaultError::Invalid(format!(
                "{} holds {len} bytes: too few frames to corrupt the middle",
                file.display()
            )));
        }
        let offset = HEADER_LEN + (len - HEADER_LEN) / 2;
        let mut bytes = [0u8; FLIPPED];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut bytes)?;
        for b in &mut bytes {
            *b ^= 0xff;
        }
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        Ok(Corruption {
            file,
            offset,
            len: FLIPPED,
            segments: segments.len(),
        })
    }
}

/// Bytes of the files directly in `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
