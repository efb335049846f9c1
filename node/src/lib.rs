//! A node process: hosts replicas of many Raft groups (multi-raft), each with its own
//! write-ahead log and state machine (shard records and vector indexes, or the metadata
//! group's catalogue).
//!
//! - [`storage`]: the WAL and raft-rs `Storage` over it.
//! - [`raft`]: replica actors driving raft-rs `RawNode`, snapshots, the state machine trait.
//! - [`transport`]: node-to-node Raft batches over HTTP, the chaos fault filter.
//! - [`api`]: the internal API for routers and the admin API.
//! - [`server`]: wiring them into a node process; [`hosting`]: replicas created and
//!   removed at run time.
//! - [`membership`]: registering in the cluster map and following it.
//! - [`placement`]: the placement driver (replication, replacement, draining, balance).
//! - [`metrics`]: the node's Prometheus metrics (served by `api::metrics`).
//! - [`panic_guard`]: runs code whose panic must stop one replica, not the process.
//! - [`shard`], [`catalog`]: the state machines of shard groups and of the metadata group.

pub mod api;
pub mod catalog;
pub mod hosting;
pub mod identity;
#[cfg(feature = "test-kv")]
pub mod kv;
pub mod membership;
pub mod metrics;
pub mod panic_guard;
pub mod placement;
pub mod priority;
pub mod raft;
pub mod server;
pub mod shard;
pub mod storage;
pub mod transport;
