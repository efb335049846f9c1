//! The shard state machine as a Raft group's state machine: bincode of
//! `Proposal` / `ShardRead` in, bincode of `ApplyOutcome` / `ShardReadReply` out.

use std::path::Path;

use common::command::{ApplyOutcome, Proposal};
use common::read::{ShardRead, ShardReadError, ShardReadReply};

use super::snapshot::{read_snapshot, write_snapshot};
use super::state_machine::ReadInProgress;
use super::{AppliedPosition, ShardStateMachine};
use crate::raft::state_machine::{ReadCursor, ReplicatedStateMachine};

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail; an empty reply is
    // reported to the caller as undecodable rather than panicking here.
    bincode::serialize(value).unwrap_or_default()
}

/// The read in `request`, decoded and within the limits of `common::limits`.
fn decode_read(request: &[u8]) -> Result<ShardRead, ShardReadError> {
    let read = bincode::deserialize::<ShardRead>(request)
        .map_err(|e| ShardReadError::Invalid(format!("undecodable shard read: {e}")))?;
    read.check_limits()
        .map_err(|e| ShardReadError::Invalid(e.to_string()))?;
    Ok(read)
}

fn read_error(e: super::ShardError) -> ShardReadError {
    match e {
        super::ShardError::CollectionNotFound(_) => ShardReadError::NoSuchCollection,
        super::ShardError::DimensionMismatch { expected, got } => {
            ShardReadError::DimensionMismatch {
                expected: expected as u32,
                got: got as u32,
            }
        }
        other => ShardReadError::Invalid(other.to_string()),
    }
}

impl ReplicatedStateMachine for ShardStateMachine {
    fn request_id_reader(&self) -> Option<crate::raft::RequestIdReader> {
        Some(common::wire::proposal_request_id)
    }

    fn apply(&mut self, index: u64, term: u64, data: &[u8]) -> Vec<u8> {
        let position = AppliedPosition { index, term };
        let outcome = match bincode::deserialize::<Proposal>(data) {
            Ok(proposal) => ShardStateMachine::apply(self, position, &proposal),
            Err(e) => {
                // Deterministic on every replica: the same bytes fail the same way.
                self.advance(position);
                ApplyOutcome::Rejected(format!("undecodable shard command: {e}"))
            }
        };
        encode(&outcome)
    }

    fn advance(&mut self, index: u64, term: u64) {
        ShardStateMachine::advance(self, AppliedPosition { index, term });
    }

    fn applied(&self) -> (u64, u64) {
        let p = ShardStateMachine::applied(self);
        (p.index, p.term)
    }

    fn read(&self, request: &[u8]) -> Vec<u8> {
        let mut cursor = ReadCursor::default();
        loop {
            if let Some(reply) = self.read_step(request, &mut cursor) {
                return reply;
            }
        }
    }

    /// A read in steps (see `read.rs`): the request is decoded and checked
    /// once, on the first step, and kept in the cursor with its progress.
    fn read_step(&self, request: &[u8], cursor: &mut ReadCursor) -> Option<Vec<u8>> {
        let read = match cursor
            .0
            .as_mut()
            .and_then(|c| c.downcast_mut::<ReadInProgress>())
        {
            Some(read) => read,
            None => match decode_read(request) {
                Ok(read) => cursor
                    .0
                    .insert(Box::new(ReadInProgress::from(read)))
                    .downcast_mut::<ReadInProgress>()?,
                Err(e) => return Some(encode(&ShardReadReply::Err(e))),
            },
        };
        let reply = self.answer_step(read)?.map_err(read_error);
        Some(encode(&reply))
    }

    fn write_snapshot(&self, path: &Path) -> Result<(), String> {
        write_snapshot(self, path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn restore_snapshot(&mut self, path: &Path) -> Result<(), String> {
        *self = read_snapshot(path).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn digest(&self) -> u64 {
        ShardStateMachine::digest(self)
    }

    fn record_count(&self) -> Option<u64> {
        Some(ShardStateMachine::record_count(self) as u64)
    }
}
