//! The cluster config a test cluster runs on: short Raft timeouts, every node
//! and the router on a free loopback port, data under the cluster's temp dir.

use std::path::Path;

use common::config::PlacementSection;

use super::{free_port, ClusterOptions, ELECTION_TICKS, TICK_MS};
use crate::faults::netns::{Member, NetLab};

/// A node's port inside its own namespace (any port is free there).
const NETNS_NODE_PORT: u16 = 7000;

/// The config's TOML text for `opts`, with data in `data_dir`; with a `lab`,
/// every node listens on its namespace's address.
pub(super) fn text(opts: &ClusterOptions, data_dir: &Path, lab: Option<&NetLab>) -> String {
    let mut raft =
        format!("tick_ms = {TICK_MS}\nelection_ticks = {ELECTION_TICKS}\nheartbeat_ticks = 2\n");
    if let Some(n) = opts.snapshot_interval_entries {
        raft += &format!("snapshot_interval_entries = {n}\n");
    }
    if let Some(bytes) = opts.wal_segment_bytes {
        raft += &format!("wal_segment_bytes = {bytes}\n");
    }
    if let Some(bytes) = opts.entry_cache_bytes {
        raft += &format!("entry_cache_bytes = {bytes}\n");
    }
    if let Some(layout) = &opts.raft_log {
        raft += &format!("log = \"{layout}\"\n");
    }
    let mut router = format!(
        "listen = \"127.0.0.1:{}\"\nrequest_timeout_ms = {}\n",
        free_port(),
        opts.request_timeout_ms
    );
    if let Some(max) = opts.max_batch_size {
        router += &format!("max_batch_size = {max}\n");
    }
    let mut text = format!(
        "[cluster]\nname = \"test\"\ndata_dir = \"{}\"\nreplication_factor = {}\nshard_count = {}\n\n\
         [raft]\n{raft}\n[router]\n{router}\n",
        data_dir.display(),
        opts.replication_factor,
        opts.shard_count,
    );
    let placement = opts.placement.clone().unwrap_or(PlacementSection {
        enabled: false,
        ..PlacementSection::default()
    });
    text += &format!(
        "[placement]\nenabled = {}\ntick_ms = {}\ndown_after_secs = {}\nmove_interval_ms = {}\n\n",
        placement.enabled, placement.tick_ms, placement.down_after_secs, placement.move_interval_ms
    );
    for id in 1..=opts.nodes + opts.join_nodes {
        let addr = match lab {
            Some(lab) => format!("{}:{NETNS_NODE_PORT}", lab.ip(Member::Node(id as u64))),
            None => format!("127.0.0.1:{}", free_port()),
        };
        let join = if id > opts.nodes { "join = true\n" } else { "" };
        text += &format!("[[nodes]]\nid = {id}\naddr = \"{addr}\"\n{join}\n");
    }
    text
}
