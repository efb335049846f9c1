//! Node tests' layer over the workspace's process cluster
//! (`tests::cluster`): node processes only (no router), the `node` binary
//! Cargo built for this package, one cluster at a time; [`kv`] runs the KV
//! test state machine and adds its client calls.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod kv;

pub use tests::cluster::{election_timeout, Cluster, ClusterOptions, NodeProgram};

/// Tests share two cores: run one cluster at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three nodes, two shard groups, the real state machines (the catalogue and
/// shards), no router.
pub fn options() -> ClusterOptions {
    ClusterOptions {
        shard_count: 2,
        // The node's budget for requests without a timeout header.
        request_timeout_ms: 3_000,
        node_program: NodeProgram {
            path: Some(env!("CARGO_BIN_EXE_node").into()),
            // raft-rs's elections in the log tails of failure messages.
            log_filter: "info,raft=info".into(),
            ..NodeProgram::default()
        },
        routers: Vec::new(),
        ..ClusterOptions::default()
    }
}
