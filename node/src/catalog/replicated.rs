//! The catalogue as the metadata Raft group's [`StateMachine`]: [`CatalogCommand`]s in,
//! [`CatalogOutcome`]s out; [`CatalogRead`]s answered in one step.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use common::backup::{BackupItem, CollectionCount};

use common::catalog::{
    CatalogCommand, CatalogError, CatalogOutcome, CatalogRead, CatalogReadReply,
};

use super::{AppliedPosition, CatalogSnapshotError, CatalogStateMachine};
use crate::raft::dedup::RequestDedup;
use crate::raft::StateMachine;

impl StateMachine for CatalogStateMachine {
    type Command = CatalogCommand;
    type Outcome = CatalogOutcome;
    type Read = CatalogRead;
    type ReadInProgress = CatalogRead;
    type ReadReply = CatalogReadReply;
    type SnapshotError = CatalogSnapshotError;

    const NAME: &'static str = "catalogue";

    /// Refused commands are remembered too, with their error.
    fn execute(&mut self, command: &CatalogCommand) -> CatalogOutcome {
        self.state.apply_command(command)
    }

    fn applied(&self) -> AppliedPosition {
        self.applied
    }

    fn applied_mut(&mut self) -> (&mut AppliedPosition, &mut RequestDedup<CatalogOutcome>) {
        (&mut self.applied, &mut self.dedup)
    }

    fn rejected(reason: String) -> CatalogOutcome {
        Err(CatalogError::InvalidArgument(reason))
    }

    fn start_read(read: CatalogRead) -> Result<CatalogRead, CatalogReadReply> {
        Ok(read)
    }

    fn rejected_read(reason: String) -> CatalogReadReply {
        Err(CatalogError::InvalidArgument(reason))
    }

    fn read_step(&self, read: &mut CatalogRead) -> Option<CatalogReadReply> {
        Some(self.read(read))
    }

    fn write_snapshot(&self, path: &Path) -> Result<(), CatalogSnapshotError> {
        CatalogStateMachine::write_snapshot(self, path)
    }

    fn read_snapshot(path: &Path) -> Result<Self, CatalogSnapshotError> {
        CatalogStateMachine::read_snapshot(path)
    }

    fn digest(&self) -> u64 {
        CatalogStateMachine::digest(self)
    }

    /// Tenants, databases, collections; no records, so an empty summary.
    fn export(
        &self,
        _include_records: bool,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<BTreeMap<String, CollectionCount>> {
        self.state.export(out)?;
        Ok(BTreeMap::new())
    }
}
