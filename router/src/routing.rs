//! Where a collection's records live: which shard group holds an id, how a
//! write is scattered over the groups, and which groups serve a read. Pure
//! functions of the collection's id and shard list (no I/O), so every router
//! agrees and the rules are unit-tested here.

use std::collections::BTreeMap;

use common::catalog::CollectionModel;
use common::hash::shard_index;

/// One collection's spread over its shard groups.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    collection: &'a str,
    /// The Raft groups of the collection's shards, in shard order; never
    /// empty (the catalogue gives every collection at least one shard).
    groups: &'a [u64],
}

impl<'a> Placement<'a> {
    pub fn new(collection: &'a str, groups: &'a [u64]) -> Self {
        Placement { collection, groups }
    }

    pub fn of(model: &'a CollectionModel) -> Self {
        Placement::new(&model.id, &model.shards)
    }

    /// Every group of the collection (reads and deletes without ids).
    pub fn groups(&self) -> &'a [u64] {
        self.groups
    }

    /// The shard group that holds `id`: a stable hash of (collection, id).
    pub fn group_of(&self, id: &str) -> u64 {
        self.groups[shard_index(self.collection, id, self.groups.len())]
    }

    /// Splits `items` over the groups holding their ids, keeping request
    /// order within each group; groups holding none are left out.
    pub fn scatter<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        id: impl Fn(&T) -> &str,
    ) -> BTreeMap<u64, Vec<T>> {
        let mut out: BTreeMap<u64, Vec<T>> = BTreeMap::new();
        for item in items {
            out.entry(self.group_of(id(&item))).or_default().push(item);
        }
        out
    }

    /// Splits ids over the groups holding them.
    pub fn ids_by_group(&self, ids: &[String]) -> BTreeMap<u64, Vec<String>> {
        self.scatter(ids.iter().cloned(), |id| id.as_str())
    }

    /// The groups a read or delete asks, and the ids each holds: with ids,
    /// only the groups holding one; without (`None`), every group for all
    /// of its records.
    pub fn targets(&self, ids: Option<&[String]>) -> Vec<(u64, Option<Vec<String>>)> {
        match ids {
            Some(ids) => self
                .ids_by_group(ids)
                .into_iter()
                .map(|(g, ids)| (g, Some(ids)))
                .collect(),
            None => self.groups.iter().map(|g| (*g, None)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLLECTION: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    const GROUPS: [u64; 3] = [11, 12, 13];

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id-{i}")).collect()
    }

    #[test]
    fn an_id_lives_where_the_stable_hash_puts_it() {
        let placement = Placement::new(COLLECTION, &GROUPS);
        for id in ids(50) {
            let expected = GROUPS[shard_index(COLLECTION, &id, GROUPS.len())];
            assert_eq!(placement.group_of(&id), expected);
        }
        // One shard: everything is there.
        assert_eq!(Placement::new(COLLECTION, &[7]).group_of("x"), 7);
        // The collection is part of the key: the same ids spread differently.
        let other = Placement::new("ffffffff-0000-0000-0000-000000000000", &GROUPS);
        assert!(ids(50)
            .iter()
            .any(|id| other.group_of(id) != placement.group_of(id)));
    }

    #[test]
    fn scatter_keeps_request_order_and_leaves_out_empty_groups() {
        let placement = Placement::new(COLLECTION, &GROUPS);
        let all = ids(40);
        let by_group = placement.ids_by_group(&all);
        assert_eq!(by_group.len(), 3, "40 ids reach every one of 3 groups");
        let mut seen = 0;
        for (group, part) in &by_group {
            assert!(part.iter().all(|id| placement.group_of(id) == *group));
            let positions: Vec<usize> = part
                .iter()
                .map(|id| all.iter().position(|a| a == id).unwrap())
                .collect();
            assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
            seen += part.len();
        }
        assert_eq!(seen, all.len());
        let one = vec!["id-0".to_owned()];
        assert_eq!(placement.ids_by_group(&one).len(), 1);
        assert!(placement.ids_by_group(&[]).is_empty());
    }

    #[test]
    fn reads_ask_the_groups_holding_the_ids_or_every_group() {
        let placement = Placement::new(COLLECTION, &GROUPS);
        let every: Vec<u64> = placement.targets(None).iter().map(|t| t.0).collect();
        assert_eq!(every, GROUPS);
        assert!(placement.targets(None).iter().all(|t| t.1.is_none()));
        let one = vec!["id-3".to_owned()];
        let targets = placement.targets(Some(&one));
        assert_eq!(targets, vec![(placement.group_of("id-3"), Some(one))]);
        assert!(placement.targets(Some(&[])).is_empty());
    }
}
