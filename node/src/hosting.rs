//! Which replicas this node hosts beyond what placement gives it at start: replicas
//! created at run time (a [`CREATED_FILE`] marker in their group directory, so a restart
//! reopens them) and replicas removed from their group (a tombstone beside the directory,
//! [`crate::raft::replica::tombstone_path`], so a restart does not reopen them and a late
//! message creates nothing: this node never creates a replica on a message, only on an
//! explicit `POST /admin/replicas`).
//!
//! A replica created here starts empty, with no configuration: it does not vote (see
//! [`crate::raft::inbound`]) and waits for the group's leader, after an `add_learner`, to
//! send it the log or a snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::config::RaftSection;
use common::placement;
use common::wire::ReplicaState;
use parking_lot::Mutex;

use crate::raft::replica::tombstone_path;
use crate::raft::{Replica, ReplicaParams, Replicas, StateMachineFactory};
use crate::storage::{RaftLogs, StorageError};
use crate::transport::Transport;

/// Marks a group directory whose replica was created at run time.
pub const CREATED_FILE: &str = "created";
/// The marker's line naming the conf change index that added the replica.
const JOINED_AT: &str = "joined_at";

/// The `joined_at` of a marker (0 when it names none).
fn joined_at(marker: &[u8]) -> u64 {
    String::from_utf8_lossy(marker)
        .lines()
        .find_map(|l| l.strip_prefix(JOINED_AT)?.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the replica: {0}")]
    Open(String),
    #[error("raft log: {0}")]
    Log(#[from] StorageError),
    /// The bootstrap of a run-time group was refused (see [`Host::bootstrap`]).
    #[error("{0}")]
    Refused(String),
}

/// Opens this node's replicas: from placement at start, created empty at run time.
pub struct Host {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub raft: RaftSection,
    pub logs: RaftLogs,
    pub transfer_check: Duration,
    pub state_machines: StateMachineFactory,
    pub transport: Arc<Transport>,
    pub replicas: Arc<Replicas>,
    /// Serializes run-time creations.
    creating: Mutex<()>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |source| HostError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Host {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_id: u64,
        data_dir: PathBuf,
        raft: RaftSection,
        logs: RaftLogs,
        transfer_check: Duration,
        state_machines: StateMachineFactory,
        transport: Arc<Transport>,
        replicas: Arc<Replicas>,
    ) -> Self {
        Host {
            node_id,
            data_dir,
            raft,
            logs,
            transfer_check,
            state_machines,
            transport,
            replicas,
            creating: Mutex::new(()),
        }
    }

    pub fn group_dir(&self, group: u64) -> PathBuf {
        self.data_dir.join(format!("group-{group}"))
    }

    /// How to open this node's replica of `group`; `voters` bootstrap an empty log (none
    /// for a replica created at run time).
    pub fn params(
        &self,
        group: u64,
        voters: Vec<u64>,
        preferred_leader: Option<u64>,
        joined_at: u64,
    ) -> ReplicaParams {
        ReplicaParams {
            node_id: self.node_id,
            group,
            kind: placement::group_kind(group),
            dir: self.group_dir(group),
            voters,
            preferred_leader,
            joined_at,
            raft: self.raft.clone(),
            logs: self.logs.clone(),
            transfer_check: self.transfer_check,
        }
    }

    /// Whether this node's replica of `group` was removed from the group.
    pub fn is_removed(&self, group: u64) -> bool {
        tombstone_path(&self.data_dir, group).exists()
    }

    /// Groups whose replica was created at run time and not removed since, ascending,
    /// with the index of the conf change that added each (see
    /// [`ReplicaParams::joined_at`]).
    pub fn created_groups(&self) -> Vec<(u64, u64)> {
        let Ok(dir) = std::fs::read_dir(&self.data_dir) else {
            return Vec::new();
        };
        let mut groups: Vec<(u64, u64)> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("group-")?.parse().ok())
            .filter(|&g| !self.is_removed(g))
            .filter_map(|g| {
                let marker = std::fs::read(self.group_dir(g).join(CREATED_FILE)).ok()?;
                Some((g, joined_at(&marker)))
            })
            .collect();
        groups.sort_unstable();
        groups
    }

    /// Hosts a new, empty replica of `group` and starts it; nothing if one runs already.
    /// A tombstone of an earlier replica is lifted, and so is a failed replica (lost data,
    /// a damaged log): the caller, the group's operator or placement driver, removed it
    /// from the group first and decided this node joins again as a new member.
    pub fn create(&self, group: u64, joined_at: u64) -> Result<bool, HostError> {
        let _one = self.creating.lock();
        let failed = self.failure(group);
        if self.replicas.hosts(group) && failed.is_none() {
            return Ok(false);
        }
        let dir = self.group_dir(group);
        if let Some(reason) = failed {
            tracing::warn!(group, %reason, "replacing the failed replica with an empty one");
            self.replicas.forget(group);
            self.discard_log(group)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
        }
        let tombstone = tombstone_path(&self.data_dir, group);
        if tombstone.exists() {
            // Leftovers of the removed replica (a crash while deleting): never reused.
            self.discard_log(group)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            std::fs::remove_file(&tombstone).map_err(io(&tombstone))?;
            common::fs::sync_dir(&self.data_dir).map_err(io(&self.data_dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let marker = dir.join(CREATED_FILE);
        let text = format!("created at run time\n{JOINED_AT} {joined_at}\n");
        common::fs::write_atomic(&marker, text.as_bytes()).map_err(io(&marker))?;
        let replica = self.open(self.params(group, Vec::new(), None, joined_at))?;
        self.replicas
            .insert(replica.start(placement::group_kind(group)));
        tracing::info!(group, "empty replica created; waiting for the leader's log");
        Ok(true)
    }

    /// Hosts a first voter of a shard group created at run time: the replica bootstraps
    /// the group's first configuration (`voters`) and may vote at once; nothing if it
    /// runs already. Refused where this node held a replica of `group` before (a
    /// tombstone: it was removed and may only come back as a new member, added by the
    /// leader) or when `voters` leaves this node out. The caller checked that this node
    /// still has the incarnation it had when the group was created.
    pub fn bootstrap(&self, group: u64, voters: Vec<u64>, leader: u64) -> Result<bool, HostError> {
        let _one = self.creating.lock();
        if !voters.contains(&self.node_id) {
            return Err(HostError::Refused(format!(
                "node {} is not among group {group}'s first voters {voters:?}",
                self.node_id
            )));
        }
        if self.is_removed(group) {
            return Err(HostError::Refused(format!(
                "this node's replica of group {group} was removed; it cannot bootstrap it again"
            )));
        }
        if self.replicas.hosts(group) || self.failure(group).is_some() {
            return Ok(false);
        }
        let dir = self.group_dir(group);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        // The marker first: a crash before the bootstrap entries are written reopens an
        // empty replica that waits for the leader's log (it never voted, so it may).
        let marker = dir.join(CREATED_FILE);
        let text = format!("bootstrapped at run time with voters {voters:?}\n{JOINED_AT} 0\n");
        common::fs::write_atomic(&marker, text.as_bytes()).map_err(io(&marker))?;
        let replica = self.open(self.params(group, voters, Some(leader), 0))?;
        self.replicas
            .insert(replica.start(placement::group_kind(group)));
        tracing::info!(group, "replica of a new group bootstrapped");
        Ok(true)
    }

    /// Why this node's replica of `group` failed (lost data, a damaged log), if it did:
    /// it stopped on the failure, or never started.
    pub fn failure(&self, group: u64) -> Option<String> {
        self.replicas
            .get(group)
            .and_then(|h| h.failure())
            .or_else(|| {
                self.replicas
                    .stopped(group)
                    .filter(|s| s.state == ReplicaState::Failed)
                    .map(|s| s.reason)
            })
    }

    /// Deletes this node's failed replica of `group` the way a removed replica goes:
    /// tombstone first (a restart must not reopen the damaged data), then its data. No
    /// actor runs to do it, so it is done here, before answering. `false` when the
    /// replica did not fail (a running one is destroyed by its own actor).
    pub fn destroy_failed(&self, group: u64) -> Result<bool, HostError> {
        let _one = self.creating.lock();
        let Some(reason) = self.failure(group) else {
            return Ok(false);
        };
        let tombstone = tombstone_path(&self.data_dir, group);
        common::fs::write_atomic(&tombstone, b"removed\n").map_err(io(&tombstone))?;
        self.replicas.forget(group);
        self.discard_log(group)?;
        let dir = self.group_dir(group);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        common::fs::sync_dir(&self.data_dir).map_err(io(&self.data_dir))?;
        tracing::warn!(group, %reason, "failed replica deleted; tombstone left");
        Ok(true)
    }

    /// Forgets the Raft log of this node's replica of `group`, which is gone for good
    /// (in the node's shared log; a replica's own WAL goes with its directory).
    fn discard_log(&self, group: u64) -> Result<(), HostError> {
        Ok(self.logs.discard(group)?)
    }

    /// Forgets what the node's shared log holds of replicas removed before the node
    /// stopped (a crash between the tombstone and the discard); otherwise their records
    /// would keep the log's segments for ever.
    pub fn discard_removed_logs(&self) {
        for group in self.logs.unopened_groups() {
            if self.is_removed(group) {
                match self.logs.discard(group) {
                    Ok(()) => tracing::info!(group, "removed replica's log discarded"),
                    Err(e) => {
                        tracing::error!(group, error = %e, "cannot discard a removed replica's log")
                    }
                }
            }
        }
    }

    /// Opens a replica (not started).
    pub fn open(&self, params: ReplicaParams) -> Result<Replica, HostError> {
        let sm = (self.state_machines)(params.group, params.kind);
        Replica::open(params, sm, self.transport.clone())
            .map_err(|e| HostError::Open(e.to_string()))
    }
}
