//! The shard state machine as a Raft group's [`StateMachine`]: [`ShardCommand`]s in,
//! [`ApplyOutcome`]s out; [`ShardRead`]s answered in steps (see `read.rs`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use common::backup::{BackupItem, CollectionCount};

use common::command::{ApplyOutcome, ShardCommand};
use common::read::{ShardRead, ShardReadError, ShardReadReply};

use super::snapshot::{capture, read_snapshot, write_snapshot};
use super::state_machine::ReadInProgress;
use super::{AppliedPosition, ShardError, ShardStateMachine};
use crate::raft::dedup::RequestDedup;
use crate::raft::state_machine::{BackgroundJob, BackgroundRole, SnapshotWrite};
use crate::raft::StateMachine;

fn read_error(e: ShardError) -> ShardReadError {
    match e {
        ShardError::CollectionNotFound(_) => ShardReadError::NoSuchCollection,
        ShardError::DimensionMismatch { expected, got } => ShardReadError::DimensionMismatch {
            expected: expected as u32,
            got: got as u32,
        },
        other => ShardReadError::Invalid(other.to_string()),
    }
}

impl StateMachine for ShardStateMachine {
    type Command = ShardCommand;
    type Outcome = ApplyOutcome;
    type Read = ShardRead;
    type ReadInProgress = ReadInProgress;
    type ReadReply = ShardReadReply;
    type SnapshotError = ShardError;

    const NAME: &'static str = "shard";

    fn execute(&mut self, command: &ShardCommand) -> ApplyOutcome {
        self.apply_command(command)
    }

    fn applied(&self) -> AppliedPosition {
        self.applied
    }

    fn applied_mut(&mut self) -> (&mut AppliedPosition, &mut RequestDedup<ApplyOutcome>) {
        (&mut self.applied, &mut self.dedup)
    }

    fn rejected(reason: String) -> ApplyOutcome {
        ApplyOutcome::Rejected(reason)
    }

    /// A read within the limits of `common::limits`.
    fn start_read(read: ShardRead) -> Result<ReadInProgress, ShardReadReply> {
        match read.check_limits() {
            Ok(()) => Ok(ReadInProgress::from(read)),
            Err(e) => Err(Err(ShardReadError::Invalid(e.to_string()))),
        }
    }

    fn rejected_read(reason: String) -> ShardReadReply {
        Err(ShardReadError::Invalid(reason))
    }

    fn read_step(&self, read: &mut ReadInProgress) -> Option<ShardReadReply> {
        Some(self.answer_step(read)?.map_err(read_error))
    }

    fn write_snapshot(&self, path: &Path) -> Result<(), ShardError> {
        write_snapshot(self, path).map(|_| ())
    }

    fn capture_snapshot(&self, path: &Path) -> Result<SnapshotWrite<ShardError>, ShardError> {
        let captured = capture(self)?;
        let path = path.to_owned();
        Ok(Box::new(move || captured.write(&path).map(|_| ())))
    }

    fn read_snapshot(path: &Path) -> Result<Self, ShardError> {
        read_snapshot(path)
    }

    fn digest(&self) -> u64 {
        ShardStateMachine::digest(self)
    }

    fn record_count(&self) -> Option<u64> {
        Some(ShardStateMachine::record_count(self) as u64)
    }

    /// The indexer's next chunk; a leader's answers where it linked the chunk, for
    /// its followers (`ShardCommand::LinkHints`, see `shard::indexer`).
    fn background_job(&self, role: BackgroundRole) -> Option<BackgroundJob<ShardCommand>> {
        let (collection, job) = self.index_job(role)?;
        Some(Box::new(move || {
            let links = job.run();
            (!links.is_empty()).then_some(ShardCommand::LinkHints { collection, links })
        }))
    }

    fn background_lag(&self) -> u64 {
        self.index_lag()
    }

    fn background_hinted(&self) -> u64 {
        self.linked_from_hints()
    }

    fn export(
        &self,
        include_records: bool,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<BTreeMap<String, CollectionCount>> {
        ShardStateMachine::export(self, include_records, out)
    }
}
