//! An order-independent digest of the catalogue, so replicas that hold the
//! same catalogue report the same value however their maps were built.
//!
//! Each tenant, database and collection is hashed over its bincode bytes
//! (bincode 1.3's fixed format; metadata is an ordered map) with FNV-1a 64
//! and a splitmix64 finaliser, both fixed algorithms, so the value is stable
//! across processes and builds. The per-item hashes are added with wrapping
//! arithmetic, which is commutative; the catalogue version is mixed in as one
//! more item.

use serde::Serialize;

use super::state::CatalogState;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(FNV_OFFSET, |h, b| (h ^ *b as u64).wrapping_mul(FNV_PRIME))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of one item; `tag` keeps kinds apart.
fn item_hash<T: Serialize + ?Sized>(tag: u8, item: &T) -> u64 {
    let mut bytes = vec![tag];
    // Serializing these plain types into a Vec cannot fail.
    if let Ok(encoded) = bincode::serialize(item) {
        bytes.extend_from_slice(&encoded);
    }
    splitmix64(fnv1a(&bytes))
}

pub(super) fn digest(state: &CatalogState) -> u64 {
    let mut acc = item_hash(0, &state.version);
    for tenant in &state.tenants {
        acc = acc.wrapping_add(item_hash(1, tenant));
    }
    for ((tenant, name), id) in &state.databases {
        acc = acc.wrapping_add(item_hash(2, &(tenant, name, id)));
    }
    for collection in state.collections.values() {
        acc = acc.wrapping_add(item_hash(3, collection));
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
