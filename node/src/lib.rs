//! A node process: hosts replicas of many Raft groups (multi-raft), each with its own
//! write-ahead log and state machine.
//!
//! - [`storage`]: the WAL and raft-rs `Storage` over it.
//! - [`raft`]: replica actors driving raft-rs `RawNode`, snapshots, the state machine trait.
//! - [`transport`]: node-to-node Raft batches over HTTP, the chaos fault filter.
//! - [`api`]: the internal API for routers and the admin API.
//! - [`server`]: wiring them into a node process.

pub mod api;
pub mod raft;
pub mod server;
pub mod storage;
pub mod transport;
