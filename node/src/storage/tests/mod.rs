//! Storage tests on real files: Raft `Storage` semantics, restart, crash recovery and
//! group commit.

mod concurrency;
mod conf_changes;
mod crash;
mod entry_cache;
mod node_log;
mod raft_logs;
mod raw_node;
mod restart;
mod semantics;
mod support;
