//! A node process: hosts replicas of many Raft groups, each with its own
//! write-ahead log, shard state machine and vector indexes, plus the
//! metadata group's catalogue.

pub mod catalog;
pub mod dataset;
pub mod replicated;
pub mod shard;
pub mod storage;
