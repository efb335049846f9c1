//! The catalogue as the metadata Raft group's state machine: bincode of
//! `CatalogProposal` / `CatalogRead` in, bincode of `CatalogOutcome` /
//! `CatalogReadReply` out.

use std::path::Path;

use common::catalog::{
    CatalogError, CatalogOutcome, CatalogProposal, CatalogRead, CatalogReadReply,
};

use super::CatalogStateMachine;
use crate::raft::state_machine::ReplicatedStateMachine;

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail; an empty reply is
    // reported to the caller as undecodable rather than panicking here.
    bincode::serialize(value).unwrap_or_default()
}

impl ReplicatedStateMachine for CatalogStateMachine {
    fn request_id_reader(&self) -> Option<crate::raft::RequestIdReader> {
        Some(common::wire::proposal_request_id)
    }

    fn apply(&mut self, index: u64, term: u64, data: &[u8]) -> Vec<u8> {
        let outcome: CatalogOutcome = match bincode::deserialize::<CatalogProposal>(data) {
            Ok(proposal) => CatalogStateMachine::apply(self, index, term, &proposal),
            Err(e) => {
                CatalogStateMachine::advance(self, index, term);
                Err(CatalogError::InvalidArgument(format!(
                    "undecodable catalogue command: {e}"
                )))
            }
        };
        encode(&outcome)
    }

    fn advance(&mut self, index: u64, term: u64) {
        CatalogStateMachine::advance(self, index, term);
    }

    fn applied(&self) -> (u64, u64) {
        let p = CatalogStateMachine::applied(self);
        (p.index, p.term)
    }

    fn read(&self, request: &[u8]) -> Vec<u8> {
        let reply: CatalogReadReply = match bincode::deserialize::<CatalogRead>(request) {
            Ok(read) => CatalogStateMachine::read(self, &read),
            Err(e) => Err(CatalogError::InvalidArgument(format!(
                "undecodable catalogue read: {e}"
            ))),
        };
        encode(&reply)
    }

    fn write_snapshot(&self, path: &Path) -> Result<(), String> {
        CatalogStateMachine::write_snapshot(self, path).map_err(|e| e.to_string())
    }

    fn restore_snapshot(&mut self, path: &Path) -> Result<(), String> {
        *self = CatalogStateMachine::read_snapshot(path).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn digest(&self) -> u64 {
        CatalogStateMachine::digest(self)
    }
}
