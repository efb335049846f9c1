//! A stable 64-bit hash: FNV-1a 64 then a splitmix64 finaliser, both fixed
//! algorithms, so the value is the same across processes and builds (std's
//! hashers promise neither). Replica digests add these per-item hashes with
//! wrapping arithmetic, which is order-independent; the router places records
//! on shards with [`shard_index`].

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

/// The well-mixed stable hash of `bytes`.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    splitmix64(fnv1a(bytes))
}

/// Combines item hashes into a digest; commutative and associative.
pub fn combine(acc: u64, item: u64) -> u64 {
    acc.wrapping_add(item)
}

/// The position in a collection's shard list of the shard that holds
/// `record_id`: a hash of (collection, id), so a collection's records spread
/// over all its shards and every router agrees. `shard_count` must be > 0.
pub fn shard_index(collection_id: &str, record_id: &str, shard_count: usize) -> usize {
    let mut bytes = Vec::with_capacity(collection_id.len() + record_id.len() + 1);
    bytes.extend_from_slice(collection_id.as_bytes());
    // A separator no UUID contains, so ("ab", "c") and ("a", "bc") differ.
    bytes.push(0);
    bytes.extend_from_slice(record_id.as_bytes());
    (stable_hash(&bytes) % shard_count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_order_independence() {
        // Pinned so a change of algorithm is noticed: digests must not drift.
        assert_eq!(fnv1a(b""), FNV_OFFSET);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        let (a, b) = (stable_hash(b"a"), stable_hash(b"b"));
        assert_eq!(combine(combine(0, a), b), combine(combine(0, b), a));
    }

    #[test]
    fn records_spread_evenly_and_placement_is_pinned() {
        let collection = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let mut counts = [0usize; 3];
        for i in 0..30_000 {
            counts[shard_index(collection, &format!("id-{i}"), 3)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        // Placement decides where existing data lives: it must never change.
        let pinned: Vec<usize> = (0..8)
            .map(|i| shard_index(collection, &format!("id-{i}"), 5))
            .collect();
        assert_eq!(pinned, PINNED_PLACEMENT);
        assert_eq!(shard_index(collection, "x", 1), 0);
    }

    const PINNED_PLACEMENT: [usize; 8] = [0, 2, 2, 1, 0, 1, 4, 4];
}
