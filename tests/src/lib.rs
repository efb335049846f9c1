//! End-to-end tests through the router (Chroma's v2 HTTP API) against a real
//! cluster of `node` processes. The library is the harness; the tests are in
//! `tests/`, one binary per area (system + tenants + databases, collections,
//! record writes, record reads and filters, errors, two routers, shard
//! failure). Node-level multi-process tests live in `node/tests/` and run on
//! the same [`cluster`] (node's dev-dependency on this crate); node's shard
//! tests and benchmark take their vectors from [`vectors`].
//!
//! Layout of a test: one test function starts one cluster (about a second:
//! 3 nodes, 50 ms Raft ticks, routers on free ports) and runs many named
//! checks on it with [`Checks`], each on its own collections. nextest runs
//! every test function in its own process, so a cluster shared per binary
//! would be started once per test anyway; a few large functions keep the
//! number of clusters (and the tier's wall time) low while `Checks` still
//! reports every failing part by name.
//!
//! Needs the `node` and `router` binaries built in the same profile
//! (`cargo build --workspace --bins`; `scripts/test` does it). Set
//! `KEEP_CLUSTER=1` to keep a failed test's cluster dir (config, data, logs).

pub mod browser;
pub mod chaos_run;
pub mod checker;
pub mod checks;
pub mod cluster;
pub mod data;
pub mod faults;
pub mod history;
pub mod http;
pub mod nemesis;
pub mod vectors;
pub mod workload;

pub use checks::Checks;
pub use cluster::{Cluster, ClusterOptions, RouterOptions};
pub use http::{f32_list, num_list, query_slice, rows, str_list, Client, Resp, Row, DEFAULT_DB};

/// A collection name unique within a test process (checks share a cluster).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
