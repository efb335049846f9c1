//! The cluster map kept by the metadata group: every node that ever registered (its
//! address, its state and its incarnation) and, per group, the nodes holding its replicas
//! as the placement driver last saw them applied. Nodes, routers and the placement driver
//! follow it at run time; the config file only seeds a first start.
//!
//! An *incarnation* is a random id a node draws when it creates its data directory. A
//! node that comes back with another incarnation lost its disk: whatever replicas its
//! earlier incarnation held are gone, and it must rejoin each group as a new member.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Longest `host:port` a node may register.
pub const MAX_NODE_ADDR_BYTES: usize = 256;
/// Most nodes the map holds (a node id per registration; refused beyond).
pub const MAX_NODES: usize = 4096;
/// Most replicas recorded for one group.
pub const MAX_GROUP_REPLICAS: usize = 15;
/// Most groups the map holds.
pub const MAX_GROUPS: usize = 1 << 20;

/// What an operator (or the placement driver) wants of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// A member: may hold replicas and leaders.
    Up,
    /// Being emptied: its replicas and leaders move elsewhere; gets no new ones.
    Draining,
    /// Holds nothing and is out of the cluster; may not register again under this id.
    Removed,
}

/// One node of the cluster map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub id: u64,
    /// `host:port` of its HTTP server (Raft transport and internal API).
    pub addr: String,
    pub state: NodeState,
    /// The incarnation it registered last (see the module docs).
    pub incarnation: u64,
    /// How many times it came back with a new incarnation (lost its disk).
    pub rejoins: u64,
}

/// A shard group the placement driver created at run time (the groups of the config,
/// `1..=shard_count`, are born with the cluster and have no birth record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBirth {
    /// Its first voters, each with the incarnation it had when chosen. Only that
    /// incarnation of a node may bootstrap its replica: a node that lost its disk since
    /// would otherwise vote in the group with an empty log (it joins as a new member
    /// instead, like any replacement).
    pub voters: Vec<(u64, u64)>,
    /// The voter meant to lead it first.
    pub leader: u64,
    /// The group has a leader and every first voter that could bootstrap did: new
    /// collections may be placed on it.
    pub ready: bool,
}

/// The cluster map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    pub nodes: BTreeMap<u64, NodeRecord>,
    /// Group → node ids of its replicas (voters and learners), as last recorded.
    pub groups: BTreeMap<u64, Vec<u64>>,
    /// Bumped by every change of the map (apart from the catalogue's version, so routers'
    /// catalogue caches are not thrown away by membership changes).
    pub version: u64,
    /// Shard groups created at run time, by id.
    pub born: BTreeMap<u64, GroupBirth>,
    /// No group id below this is handed out again (ids are never reused: a node may
    /// still hold a tombstone or a stray message of a group that had the id).
    pub next_group: u64,
    /// The operator paused the placement driver (`POST /admin/placement`): it observes
    /// and reports but changes nothing until resumed.
    pub placement_paused: bool,
    /// Shard groups created at run time and retired since (no collection used them and
    /// the cluster shrank, or their first voters could not form a quorum): out of the
    /// map, their replicas deleted wherever they are still found; no collection may name
    /// them.
    pub retired: BTreeSet<u64>,
}

/// The cluster map as stop 21 and earlier wrote it into catalogue snapshots (before
/// shard groups could be created at run time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMapV1 {
    pub nodes: BTreeMap<u64, NodeRecord>,
    pub groups: BTreeMap<u64, Vec<u64>>,
    pub version: u64,
}

impl From<ClusterMapV1> for ClusterMap {
    fn from(v1: ClusterMapV1) -> Self {
        ClusterMap {
            nodes: v1.nodes,
            groups: v1.groups,
            version: v1.version,
            born: BTreeMap::new(),
            next_group: 0,
            placement_paused: false,
            retired: BTreeSet::new(),
        }
    }
}

/// Why a change of the map was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid node registration: {0}")]
    Invalid(String),
    #[error("node {0} was removed from the cluster; it cannot register again")]
    Removed(u64),
    #[error("node {0} is not registered")]
    UnknownNode(u64),
    #[error("the cluster map is full: {0}")]
    Full(String),
}

/// Whether `addr` looks like `host:port`.
pub fn plausible_addr(addr: &str) -> bool {
    addr.len() <= MAX_NODE_ADDR_BYTES
        && addr
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// What a registration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registration {
    /// A node id seen for the first time.
    New,
    /// The same incarnation again (a restart): the address may have changed.
    Again,
    /// Another incarnation of a known node: it lost its disk.
    NewIncarnation { previous: u64 },
}

impl ClusterMap {
    /// Records that node `id` runs at `addr` as `incarnation`.
    pub fn register(
        &mut self,
        id: u64,
        addr: &str,
        incarnation: u64,
    ) -> Result<Registration, RegistryError> {
        if id == 0 || incarnation == 0 || !plausible_addr(addr) {
            return Err(RegistryError::Invalid(format!(
                "a node needs a non-zero id and incarnation and a host:port address \
                 (at most {MAX_NODE_ADDR_BYTES} bytes); got id {id}, incarnation {incarnation}"
            )));
        }
        let outcome = match self.nodes.get_mut(&id) {
            Some(n) if n.state == NodeState::Removed => return Err(RegistryError::Removed(id)),
            Some(n) => {
                let outcome = if n.incarnation == incarnation {
                    Registration::Again
                } else {
                    n.rejoins += 1;
                    Registration::NewIncarnation {
                        previous: n.incarnation,
                    }
                };
                if outcome == Registration::Again && n.addr == addr {
                    return Ok(outcome);
                }
                n.addr = addr.to_owned();
                n.incarnation = incarnation;
                outcome
            }
            None => {
                if self.nodes.len() >= MAX_NODES {
                    return Err(RegistryError::Full(format!("{MAX_NODES} nodes")));
                }
                self.nodes.insert(
                    id,
                    NodeRecord {
                        id,
                        addr: addr.to_owned(),
                        state: NodeState::Up,
                        incarnation,
                        rejoins: 0,
                    },
                );
                Registration::New
            }
        };
        self.bump();
        Ok(outcome)
    }

    /// Sets node `id`'s state. A removed node stays removed.
    pub fn set_state(&mut self, id: u64, state: NodeState) -> Result<(), RegistryError> {
        let n = self
            .nodes
            .get_mut(&id)
            .ok_or(RegistryError::UnknownNode(id))?;
        if n.state == NodeState::Removed && state != NodeState::Removed {
            return Err(RegistryError::Removed(id));
        }
        if n.state != state {
            n.state = state;
            self.bump();
        }
        Ok(())
    }

    /// Records the replicas of `group` (empty: the group is gone).
    pub fn set_group(&mut self, group: u64, replicas: &[u64]) -> Result<(), RegistryError> {
        if replicas.len() > MAX_GROUP_REPLICAS {
            return Err(RegistryError::Invalid(format!(
                "{} replicas for group {group}, more than {MAX_GROUP_REPLICAS}",
                replicas.len()
            )));
        }
        let mut sorted = replicas.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if replicas.is_empty() {
            if self.groups.remove(&group).is_some() {
                self.bump();
            }
            return Ok(());
        }
        if self.groups.get(&group) == Some(&sorted) {
            return Ok(());
        }
        if !self.groups.contains_key(&group) && self.groups.len() >= MAX_GROUPS {
            return Err(RegistryError::Full(format!("{MAX_GROUPS} groups")));
        }
        self.groups.insert(group, sorted);
        self.bump();
        Ok(())
    }

    /// Allocates a new shard group with `voters` as its first members (each registered
    /// and up), `leader` among them; its id is the lowest free one at or above
    /// `first_free` (the first id the config does not use). The group is recorded with
    /// those replicas and is not ready until [`ClusterMap::mark_group_ready`].
    pub fn create_group(
        &mut self,
        first_free: u64,
        voters: &[u64],
        leader: u64,
    ) -> Result<u64, RegistryError> {
        let mut sorted = voters.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() || sorted.len() != voters.len() || sorted.len() > MAX_GROUP_REPLICAS {
            return Err(RegistryError::Invalid(format!(
                "a new group needs 1 to {MAX_GROUP_REPLICAS} distinct voters, got {voters:?}"
            )));
        }
        if !sorted.contains(&leader) {
            return Err(RegistryError::Invalid(format!(
                "the first leader {leader} is not among the voters {voters:?}"
            )));
        }
        let mut with_incarnation = Vec::with_capacity(sorted.len());
        for &id in &sorted {
            let n = self.nodes.get(&id).ok_or(RegistryError::UnknownNode(id))?;
            if n.state != NodeState::Up {
                return Err(RegistryError::Invalid(format!(
                    "node {id} is {:?}: it takes no new replicas",
                    n.state
                )));
            }
            with_incarnation.push((id, n.incarnation));
        }
        if self.groups.len() >= MAX_GROUPS {
            return Err(RegistryError::Full(format!("{MAX_GROUPS} groups")));
        }
        let above = |k: Option<&u64>| k.map_or(0, |&g| g.saturating_add(1));
        let id = first_free
            .max(self.next_group)
            .max(above(self.groups.keys().next_back()))
            .max(above(self.born.keys().next_back()))
            .max(1);
        if id == u64::MAX {
            return Err(RegistryError::Full("group ids".into()));
        }
        self.born.insert(
            id,
            GroupBirth {
                voters: with_incarnation,
                leader,
                ready: false,
            },
        );
        self.groups.insert(id, sorted);
        self.next_group = id + 1;
        self.bump();
        Ok(id)
    }

    /// Pauses or resumes the placement driver.
    pub fn set_placement_paused(&mut self, paused: bool) {
        if self.placement_paused != paused {
            self.placement_paused = paused;
            self.bump();
        }
    }

    /// Retires a group created at run time: out of the pool and the map for good (the
    /// caller checked that no collection uses it). The config's groups are never retired.
    pub fn retire_group(&mut self, group: u64) -> Result<(), RegistryError> {
        if self.retired.contains(&group) {
            return Ok(());
        }
        if self.born.remove(&group).is_none() {
            return Err(RegistryError::Invalid(format!(
                "group {group} was not created at run time: it cannot be retired"
            )));
        }
        self.groups.remove(&group);
        self.retired.insert(group);
        self.bump();
        Ok(())
    }

    /// Marks a group created at run time ready for new collections.
    pub fn mark_group_ready(&mut self, group: u64) -> Result<(), RegistryError> {
        let birth = self.born.get_mut(&group).ok_or_else(|| {
            RegistryError::Invalid(format!("group {group} was not created at run time"))
        })?;
        if !birth.ready {
            birth.ready = true;
            self.bump();
        }
        Ok(())
    }

    /// The shard groups new collections may be placed on: `initial` (the config's
    /// `1..=shard_count`) and the groups created at run time that are ready, ascending.
    pub fn shard_pool(&self, initial: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut pool: Vec<u64> = initial
            .into_iter()
            .chain(self.born.iter().filter(|(_, b)| b.ready).map(|(&g, _)| g))
            .collect();
        pool.sort_unstable();
        pool.dedup();
        pool
    }

    /// Every shard group there is, ready or not: `initial` and those created at run
    /// time, ascending.
    pub fn all_shard_groups(&self, initial: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut all: Vec<u64> = initial
            .into_iter()
            .chain(self.born.keys().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The address of every node not removed.
    pub fn addresses(&self) -> impl Iterator<Item = (u64, &str)> + '_ {
        self.nodes
            .values()
            .filter(|n| n.state != NodeState::Removed)
            .map(|n| (n.id, n.addr.as_str()))
    }

    /// Whether the map could have been produced by the methods above (a snapshot check).
    pub fn is_consistent(&self) -> bool {
        self.nodes.len() <= MAX_NODES
            && self.groups.len() <= MAX_GROUPS
            && self.nodes.iter().all(|(&id, n)| {
                id == n.id && id != 0 && n.incarnation != 0 && plausible_addr(&n.addr)
            })
            && self
                .groups
                .values()
                .all(|r| !r.is_empty() && r.len() <= MAX_GROUP_REPLICAS)
            && self.born.iter().all(|(&g, b)| {
                g != 0
                    && g < self.next_group
                    && !b.voters.is_empty()
                    && b.voters.len() <= MAX_GROUP_REPLICAS
                    && b.voters.iter().any(|&(n, _)| n == b.leader)
            })
            && self.retired.len() <= MAX_GROUPS
            && self
                .retired
                .iter()
                .all(|g| *g != 0 && *g < self.next_group && !self.born.contains_key(g))
    }

    fn bump(&mut self) {
        self.version = self.version.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_registers_restarts_and_comes_back_as_a_new_incarnation() {
        let mut map = ClusterMap::default();
        assert_eq!(map.register(1, "127.0.0.1:9001", 7), Ok(Registration::New));
        let v = map.version;
        assert_eq!(
            map.register(1, "127.0.0.1:9001", 7),
            Ok(Registration::Again)
        );
        assert_eq!(map.version, v, "a plain restart changes nothing");
        assert_eq!(
            map.register(1, "127.0.0.1:9001", 8),
            Ok(Registration::NewIncarnation { previous: 7 })
        );
        assert_eq!(map.nodes[&1].incarnation, 8);
        assert_eq!(map.nodes[&1].rejoins, 1);
        assert!(map.version > v);
    }

    #[test]
    fn bad_registrations_and_removed_nodes_are_refused() {
        let mut map = ClusterMap::default();
        assert!(map.register(0, "127.0.0.1:9001", 7).is_err());
        assert!(map.register(1, "no-port", 7).is_err());
        assert!(map.register(1, "127.0.0.1:9001", 0).is_err());
        assert!(map
            .register(1, &format!("{}:1", "h".repeat(300)), 7)
            .is_err());
        map.register(1, "127.0.0.1:9001", 7).unwrap();
        map.set_state(1, NodeState::Removed).unwrap();
        assert_eq!(
            map.register(1, "127.0.0.1:9001", 9),
            Err(RegistryError::Removed(1))
        );
        assert_eq!(
            map.set_state(1, NodeState::Up),
            Err(RegistryError::Removed(1))
        );
        assert_eq!(
            map.set_state(2, NodeState::Up),
            Err(RegistryError::UnknownNode(2))
        );
        assert!(map.is_consistent());
    }

    #[test]
    fn group_replicas_are_kept_sorted_and_an_empty_list_forgets_the_group() {
        let mut map = ClusterMap::default();
        map.set_group(3, &[4, 1, 2, 1]).unwrap();
        assert_eq!(map.groups[&3], vec![1, 2, 4]);
        let v = map.version;
        map.set_group(3, &[2, 4, 1]).unwrap();
        assert_eq!(map.version, v);
        map.set_group(3, &[]).unwrap();
        assert!(!map.groups.contains_key(&3));
        assert!(map.set_group(3, &[1; 16]).is_err());
    }

    #[test]
    fn groups_created_at_run_time_get_fresh_ids_and_join_the_pool_once_ready() {
        let mut map = ClusterMap::default();
        for id in 1..=4 {
            map.register(id, &format!("127.0.0.1:900{id}"), 10 + id)
                .unwrap();
        }
        map.set_group(1, &[1, 2, 3]).unwrap();
        // The config's groups 1..=3 are reserved even before the map records them all.
        let g = map.create_group(4, &[4, 1, 2], 4).unwrap();
        assert_eq!(g, 4);
        assert_eq!(map.groups[&4], vec![1, 2, 4]);
        assert_eq!(map.born[&4].voters, vec![(1, 11), (2, 12), (4, 14)]);
        assert_eq!(map.shard_pool(1..=3), vec![1, 2, 3], "not ready yet");
        assert_eq!(map.all_shard_groups(1..=3), vec![1, 2, 3, 4]);
        map.mark_group_ready(4).unwrap();
        assert_eq!(map.shard_pool(1..=3), vec![1, 2, 3, 4]);
        // A group that is gone leaves its id used.
        map.set_group(4, &[]).unwrap();
        assert_eq!(map.create_group(4, &[1, 2, 3], 1), Ok(5));
        assert!(map.is_consistent());

        assert!(map.create_group(4, &[], 1).is_err());
        assert!(map.create_group(4, &[1, 1, 2], 1).is_err());
        assert!(
            map.create_group(4, &[1, 2], 3).is_err(),
            "leader not a voter"
        );
        assert_eq!(
            map.create_group(4, &[1, 9], 1),
            Err(RegistryError::UnknownNode(9))
        );
        map.set_state(3, NodeState::Draining).unwrap();
        assert!(map.create_group(4, &[1, 3], 1).is_err(), "draining node");
        assert!(map.mark_group_ready(2).is_err(), "a config group");
    }

    #[test]
    fn a_retired_group_leaves_the_pool_and_its_id_is_never_used_again() {
        let mut map = ClusterMap::default();
        for id in 1..=3 {
            map.register(id, &format!("127.0.0.1:900{id}"), 10 + id)
                .unwrap();
        }
        let g = map.create_group(3, &[1, 2, 3], 1).unwrap();
        map.mark_group_ready(g).unwrap();
        assert!(map.retire_group(2).is_err(), "a config group stays");
        let version = map.version;
        map.retire_group(g).unwrap();
        assert!(map.version > version);
        assert_eq!(map.shard_pool(1..=2), vec![1, 2]);
        assert_eq!(map.all_shard_groups(1..=2), vec![1, 2]);
        assert!(!map.groups.contains_key(&g));
        assert!(map.retired.contains(&g));
        map.retire_group(g).unwrap();
        assert!(map.mark_group_ready(g).is_err());
        assert_eq!(map.create_group(3, &[1, 2, 3], 1), Ok(g + 1));
        assert!(map.is_consistent());
    }
}
