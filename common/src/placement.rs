//! Where Raft groups and records live.
//!
//! **The first placement** is computed from the cluster config alone, so that every node
//! and every router derive the same answer at a first start. Group 0 is the metadata
//! (catalog) group; groups `1..=shard_count` are the shard groups the cluster is born
//! with. Group `g` is replicated on `replication_factor` consecutive nodes in config
//! order, starting at index `g mod n` (wrapping); the first of them is the group's
//! preferred leader. Nodes added later (`join` in the config) take no part in it.
//! Afterwards replicas move (the placement driver) and the cluster map records where they
//! are.
//!
//! **Groups grow with the cluster.** The placement driver keeps
//! `ceil(shard_count x usable nodes / initial nodes)` shard groups (at least
//! `shard_count`): a node that joins brings its share of groups, and so of leaders. A
//! group created at run time gets the next unused id (never reused), its first voters
//! and their incarnations are recorded in the cluster map (`crate::registry::GroupBirth`),
//! each of them bootstraps the same first configuration, and once it has a leader it is
//! *ready*: part of the pool new collections are placed on. When nodes leave, a group
//! created at run time that no collection uses is retired (its id is never used again).
//!
//! **Records to groups.** A collection is spread over `shard_count` groups chosen when
//! it is created ([`shards_for_collection`]: consecutive groups of the ready pool from a
//! position drawn from its id) and kept in its catalogue entry; a record goes to
//! `shards[hash(collection, id) mod shards.len()]` ([`crate::hash::shard_index`]). The
//! list never changes, so records never move between groups: growth shows in where new
//! collections go and in replicas and leaders spreading over more nodes. Thousands of
//! small collections share the pool's groups (a collection is a catalogue entry, not a
//! Raft group), and groups with nothing to do hibernate.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::config::ClusterConfig;

/// The Raft group that holds the catalog (tenants, databases, collections).
pub const METADATA_GROUP: u64 = 0;

/// What a Raft group replicates.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    Metadata,
    Shard,
}

/// The kind of `group` (any group other than [`METADATA_GROUP`] is a shard group).
pub fn group_kind(group: u64) -> GroupKind {
    if group == METADATA_GROUP {
        GroupKind::Metadata
    } else {
        GroupKind::Shard
    }
}

/// Every group of the cluster: the metadata group, then the shard groups.
pub fn groups(config: &ClusterConfig) -> RangeInclusive<u64> {
    METADATA_GROUP..=config.cluster.shard_count as u64
}

/// The shard groups, `1..=shard_count`.
pub fn shard_groups(config: &ClusterConfig) -> RangeInclusive<u64> {
    1..=config.cluster.shard_count as u64
}

/// Whether `group` exists in this cluster.
pub fn is_group(config: &ClusterConfig, group: u64) -> bool {
    groups(config).contains(&group)
}

/// The node ids holding a replica of `group`, preferred leader first. Empty for a group
/// that does not exist.
pub fn replicas(config: &ClusterConfig, group: u64) -> Vec<u64> {
    if !is_group(config, group) {
        return Vec::new();
    }
    let initial: Vec<u64> = config.initial_nodes().map(|n| n.id).collect();
    let n = initial.len();
    let rf = config.cluster.replication_factor.min(n);
    let start = (group % n as u64) as usize;
    (0..rf).map(|i| initial[(start + i) % n]).collect()
}

/// The node that should lead `group` when it is up and caught up.
pub fn preferred_leader(config: &ClusterConfig, group: u64) -> Option<u64> {
    replicas(config, group).first().copied()
}

/// The groups node `node` hosts a replica of, ascending.
pub fn hosted_groups(config: &ClusterConfig, node: u64) -> Vec<u64> {
    groups(config)
        .filter(|&g| replicas(config, g).contains(&node))
        .collect()
}

/// The shard groups a new collection is spread over: `count` of the `pool` (ascending),
/// consecutive from a position drawn from the collection's id, so collections spread
/// evenly over a pool that grew with the cluster while each keeps a fixed fan-out; the
/// whole pool when it has no more than `count`.
pub fn shards_for_collection(pool: &[u64], count: usize, collection_id: &str) -> Vec<u64> {
    if pool.len() <= count {
        return pool.to_vec();
    }
    let start = (crate::hash::stable_hash(collection_id.as_bytes()) % pool.len() as u64) as usize;
    let mut chosen: Vec<u64> = (0..count).map(|i| pool[(start + i) % pool.len()]).collect();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(nodes: usize, rf: usize, shards: usize) -> ClusterConfig {
        let mut text = format!(
            "[cluster]\nname = \"t\"\ndata_dir = \"d\"\nreplication_factor = {rf}\nshard_count = {shards}\n"
        );
        for i in 0..nodes {
            // Ids deliberately not equal to positions: placement follows config order.
            text += &format!(
                "[[nodes]]\nid = {}\naddr = \"127.0.0.1:{}\"\n",
                10 + i * 3,
                9000 + i
            );
        }
        ClusterConfig::parse(&text).expect("valid test config")
    }

    #[test]
    fn three_nodes_host_every_group() {
        let c = config(3, 3, 3);
        assert_eq!(groups(&c).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(shard_groups(&c).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(replicas(&c, 0), vec![10, 13, 16]);
        assert_eq!(replicas(&c, 1), vec![13, 16, 10]);
        assert_eq!(replicas(&c, 2), vec![16, 10, 13]);
        assert_eq!(replicas(&c, 3), vec![10, 13, 16]);
        assert_eq!(preferred_leader(&c, 2), Some(16));
        assert_eq!(hosted_groups(&c, 13), vec![0, 1, 2, 3]);
        assert!(replicas(&c, 4).is_empty());
        assert_eq!(group_kind(0), GroupKind::Metadata);
        assert_eq!(group_kind(3), GroupKind::Shard);
    }

    #[test]
    fn nodes_that_joined_later_take_no_part_in_the_first_placement() {
        let mut c = config(3, 3, 3);
        let before: Vec<_> = groups(&c).map(|g| replicas(&c, g)).collect();
        let text = toml::to_string(&c).unwrap()
            + "[[nodes]]\nid = 40\naddr = \"127.0.0.1:9040\"\njoin = true\n";
        c = ClusterConfig::parse(&text).unwrap();
        assert_eq!(
            groups(&c).map(|g| replicas(&c, g)).collect::<Vec<_>>(),
            before
        );
        assert!(hosted_groups(&c, 40).is_empty());
    }

    #[test]
    fn five_nodes_spread_replicas_and_leaders() {
        let c = config(5, 3, 5);
        assert_eq!(replicas(&c, 0), vec![10, 13, 16]);
        assert_eq!(replicas(&c, 4), vec![22, 10, 13]);
        assert_eq!(replicas(&c, 5), vec![10, 13, 16]);
        let leaders: Vec<_> = shard_groups(&c)
            .filter_map(|g| preferred_leader(&c, g))
            .collect();
        assert_eq!(leaders, vec![13, 16, 19, 22, 10]);
        for node in [10, 13, 16, 19, 22] {
            assert!(!hosted_groups(&c, node).is_empty());
        }
        assert_eq!(hosted_groups(&c, 19), vec![1, 2, 3]);
    }

    #[test]
    fn a_collection_takes_count_consecutive_groups_of_the_pool() {
        assert_eq!(shards_for_collection(&[1, 2, 3], 3, "c"), vec![1, 2, 3]);
        assert_eq!(shards_for_collection(&[1, 2], 3, "c"), vec![1, 2]);
        let pool = [1, 2, 3, 4, 5, 6];
        let mut uses = [0usize; 7];
        for i in 0..600 {
            let chosen = shards_for_collection(&pool, 3, &format!("collection-{i}"));
            assert_eq!(chosen.len(), 3);
            assert!(chosen.windows(2).all(|w| w[0] < w[1]), "{chosen:?}");
            for g in chosen {
                uses[g as usize] += 1;
            }
        }
        // 300 uses per group expected; every group well used.
        assert!(uses[1..].iter().all(|&u| u > 200), "{uses:?}");
    }
}
