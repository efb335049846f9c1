//! The shard state machine as a Raft group's state machine: bincode of
//! `Proposal` / `ShardRead` in, bincode of `ApplyOutcome` / `ShardReadReply` out.

use std::path::Path;

use common::command::{ApplyOutcome, Proposal};
use common::read::{ShardRead, ShardReadError, ShardReadReply, ShardReadValue};

use super::snapshot::{read_snapshot, write_snapshot};
use super::{AppliedPosition, ShardStateMachine};
use crate::raft::state_machine::ReplicatedStateMachine;

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail; an empty reply is
    // reported to the caller as undecodable rather than panicking here.
    bincode::serialize(value).unwrap_or_default()
}

impl ShardStateMachine {
    fn answer(&self, read: &ShardRead) -> ShardReadReply {
        let err = |e: super::ShardError| match e {
            super::ShardError::CollectionNotFound(_) => ShardReadError::NoSuchCollection,
            super::ShardError::DimensionMismatch { expected, got } => {
                ShardReadError::DimensionMismatch {
                    expected: expected as u32,
                    got: got as u32,
                }
            }
            other => ShardReadError::Invalid(other.to_string()),
        };
        if let Err(e) = read.check_limits() {
            return Err(ShardReadError::Invalid(e.to_string()));
        }
        match read {
            ShardRead::Get(req) => self.get(req).map(ShardReadValue::Records).map_err(err),
            ShardRead::Count(req) => self
                .count(req)
                .map(|n| ShardReadValue::Count(n as u64))
                .map_err(err),
            ShardRead::Query(req) => self.query(req).map(ShardReadValue::Hits).map_err(err),
        }
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
        let reply: ShardReadReply = match bincode::deserialize::<ShardRead>(request) {
            Ok(read) => self.answer(&read),
            Err(e) => Err(ShardReadError::Invalid(format!(
                "undecodable shard read: {e}"
            ))),
        };
        encode(&reply)
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
