//! A node process: hosts replicas of many Raft groups, each with its own
//! write-ahead log, shard state machine and vector indexes.

pub mod dataset;
pub mod shard;
pub mod storage;
