//! End-to-end tests through the router (Chroma's v2 HTTP API) against a real
//! cluster of `node` processes. The library is the harness; the tests are in
//! `tests/`, one binary per area. Node-level multi-process tests live in
//! `node/tests/`.

pub mod checks;
pub mod cluster;
pub mod data;
pub mod http;

pub use checks::Checks;
pub use cluster::{Cluster, ClusterOptions, RouterOptions};
pub use http::{f32_list, num_list, query_slice, rows, str_list, Client, Resp, Row, DEFAULT_DB};

/// A collection name unique within a test run (tests share a cluster).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
