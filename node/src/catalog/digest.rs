//! An order-independent digest of the catalogue, so replicas that hold the
//! same catalogue report the same value however their maps were built.
//!
//! Each tenant, database and collection is hashed over its bincode bytes
//! (bincode 1.3's fixed format; metadata is an ordered map) with the stable
//! hash of `common::hash`; item hashes are added, which is commutative;
//! the catalogue version is mixed in as one more item, and so are the
//! cluster map's nodes, groups and version.

use serde::Serialize;

use super::state::CatalogState;

use common::hash::{combine, stable_hash};

/// The hash of one item; `tag` keeps kinds apart.
fn item_hash<T: Serialize + ?Sized>(tag: u8, item: &T) -> u64 {
    let mut bytes = vec![tag];
    // Serializing these plain types into a Vec cannot fail.
    if let Ok(encoded) = bincode::serialize(item) {
        bytes.extend_from_slice(&encoded);
    }
    stable_hash(&bytes)
}

pub(super) fn digest(state: &CatalogState) -> u64 {
    let mut acc = item_hash(0, &state.version);
    for tenant in &state.tenants {
        acc = combine(acc, item_hash(1, tenant));
    }
    for ((tenant, name), id) in &state.databases {
        acc = combine(acc, item_hash(2, &(tenant, name, id)));
    }
    for collection in state.collections.values() {
        acc = combine(acc, item_hash(3, collection));
    }
    acc = combine(acc, item_hash(4, &state.map.version));
    for node in state.map.nodes.values() {
        acc = combine(acc, item_hash(5, node));
    }
    for group in &state.map.groups {
        acc = combine(acc, item_hash(6, &group));
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_of_different_kinds_hash_apart() {
        assert_ne!(item_hash(1, "abc"), item_hash(2, "abc"));
        assert_ne!(item_hash(1, "abc"), item_hash(1, "abd"));
        assert_eq!(item_hash(1, "abc"), item_hash(1, "abc"));
    }
}
