//! An order-independent digest of a shard's records, so replicas that hold
//! the same records report the same value whatever order they applied or
//! indexed them in (architecture.md, promise 5).
//!
//! Each record is hashed over a canonical byte form (FNV-1a 64 then a
//! splitmix64 finaliser, both fixed algorithms, so the value is stable across
//! processes and builds); the per-record hashes are added with wrapping
//! arithmetic, which is commutative.

use common::record::Metadata;

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

fn put_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The contribution of one record of `collection` to the shard digest.
pub fn record_hash(
    collection: &str,
    id: &str,
    embedding: &[f32],
    metadata: Option<&Metadata>,
    document: Option<&str>,
    uri: Option<&str>,
) -> u64 {
    let mut buf = Vec::with_capacity(64 + embedding.len() * 4);
    put_str(&mut buf, Some(collection));
    put_str(&mut buf, Some(id));
    buf.extend_from_slice(&(embedding.len() as u64).to_le_bytes());
    for x in embedding {
        buf.extend_from_slice(&x.to_bits().to_le_bytes());
    }
    match metadata {
        None => buf.push(0),
        Some(m) => {
            buf.push(1);
            buf.extend_from_slice(&(m.len() as u64).to_le_bytes());
            for (k, v) in m {
                put_str(&mut buf, Some(k));
                v.write_canonical(&mut buf);
            }
        }
    }
    put_str(&mut buf, document);
    put_str(&mut buf, uri);
    splitmix64(fnv1a(&buf))
}

/// Combines per-record hashes; commutative and associative.
pub fn combine(acc: u64, record: u64) -> u64 {
    acc.wrapping_add(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_sensitive_to_content() {
        let a = record_hash("c", "a", &[1.0, 2.0], None, Some("x"), None);
        let b = record_hash("c", "b", &[1.0, 2.0], None, Some("x"), None);
        assert_eq!(combine(combine(0, a), b), combine(combine(0, b), a));
        assert_ne!(a, b);
        assert_ne!(a, record_hash("c", "a", &[1.0, 2.5], None, Some("x"), None));
        assert_ne!(a, record_hash("c", "a", &[1.0, 2.0], None, None, None));
        assert_ne!(a, record_hash("d", "a", &[1.0, 2.0], None, Some("x"), None));
    }
}
