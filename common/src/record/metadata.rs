//! [`Metadata`]: a record's (or a collection's) metadata as a vector of entries sorted
//! by key.
//!
//! Why not a `BTreeMap`: a shard holds one of these per record, and a `BTreeMap` with
//! two keys allocates a whole leaf node for eleven (~640 bytes); at a million records
//! per node that was a fifth of its memory. A record has a handful of keys, so a sorted
//! vector found by binary search is as fast and costs its entries only. It iterates in
//! key order as the map did (the replica digest and every response rely on that), and
//! serializes exactly as a map (bincode: length, then the pairs in key order), so
//! snapshots and Raft entries written with the `BTreeMap` read back unchanged.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::MetadataValue;

/// Metadata: keys to values, unique keys, iterated in key order.
#[derive(Clone, Default, PartialEq)]
pub struct Metadata {
    /// Sorted by key, no two equal keys.
    entries: Vec<(String, MetadataValue)>,
}

impl Metadata {
    pub fn new() -> Self {
        Metadata::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: String, value: MetadataValue) -> Option<MetadataValue> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<MetadataValue> {
        self.position(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// Gives back the spare capacity inserts left (a stored record keeps its metadata
    /// for its whole life).
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &MetadataValue> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// From entries in any order; of equal keys the last one wins (as inserting them
    /// one by one into a map would).
    fn from_unsorted(mut entries: Vec<(String, MetadataValue)>) -> Self {
        // A stable sort keeps equal keys in arrival order, so keeping the last of each
        // run keeps the one inserted last.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, MetadataValue)> = Vec::with_capacity(entries.len());
        for e in entries {
            match out.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => out.push(e),
            }
        }
        out.shrink_to_fit();
        Metadata { entries: out }
    }
}

/// The entries of a [`Metadata`] in key order, as `(&key, &value)` like a map's.
pub struct Iter<'a>(std::slice::Iter<'a, (String, MetadataValue)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a MetadataValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a String, &'a MetadataValue);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for Metadata {
    type Item = (String, MetadataValue);
    type IntoIter = std::vec::IntoIter<(String, MetadataValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, MetadataValue)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, MetadataValue)>>(iter: I) -> Self {
        Metadata::from_unsorted(iter.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, MetadataValue); N]> for Metadata {
    fn from(entries: [(String, MetadataValue); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl Extend<(String, MetadataValue)> for Metadata {
    fn extend<I: IntoIterator<Item = (String, MetadataValue)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// Tests only: it panics on an absent key (as a map's `Index` does), and metadata comes
/// from the network; code uses `get`.
#[cfg(test)]
impl std::ops::Index<&str> for Metadata {
    type Output = MetadataValue;

    fn index(&self, key: &str) -> &MetadataValue {
        self.get(key).expect("no entry for the key in the metadata")
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;

        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Metadata;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of metadata keys to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Metadata, A::Error> {
                // The size hint comes from the input: cap it (serde's own rule for maps)
                // so a hostile length cannot reserve memory the input does not back.
                let hint = access.size_hint().unwrap_or(0).min(4096);
                let mut entries = Vec::with_capacity(hint);
                while let Some(entry) = access.next_entry::<String, MetadataValue>()? {
                    entries.push(entry);
                }
                Ok(Metadata::from_unsorted(entries))
            }
        }

        deserializer.deserialize_map(MetadataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bincode::Options;

    use super::*;

    fn int(i: i64) -> MetadataValue {
        MetadataValue::Int(i)
    }

    #[test]
    fn behaves_as_a_sorted_map() {
        let mut m = Metadata::new();
        assert_eq!(m.insert("b".into(), int(2)), None);
        assert_eq!(m.insert("a".into(), int(1)), None);
        assert_eq!(m.insert("c".into(), int(3)), None);
        assert_eq!(m.insert("b".into(), int(20)), Some(int(2)));
        assert_eq!(
            m.keys().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(m.get("b"), Some(&int(20)));
        assert_eq!(m.get("d"), None);
        assert_eq!(m.remove("a"), Some(int(1)));
        assert_eq!(m.remove("a"), None);
        assert_eq!(m.len(), 2);
        assert!(m.contains_key("c") && !m.contains_key("a"));
    }

    #[test]
    fn collecting_keeps_the_last_of_equal_keys() {
        let m: Metadata = [
            ("k".to_owned(), int(1)),
            ("a".to_owned(), int(0)),
            ("k".to_owned(), int(2)),
        ]
        .into();
        assert_eq!(m.len(), 2);
        assert_eq!(m["k"], int(2));
    }

    /// Snapshots and log entries written when metadata was a `BTreeMap` must read back,
    /// and new ones must be byte-for-byte what the map wrote.
    #[test]
    fn serializes_exactly_as_the_btreemap_did() {
        let pairs = [
            ("zeta".to_owned(), MetadataValue::Str("z".into())),
            ("alpha".to_owned(), MetadataValue::Bool(true)),
            ("mid".to_owned(), MetadataValue::FloatList(vec![1.5, -2.0])),
        ];
        let map: BTreeMap<String, MetadataValue> = pairs.clone().into_iter().collect();
        let ours: Metadata = pairs.into();
        let bc = bincode::DefaultOptions::new();
        let map_bytes = bc.serialize(&map).unwrap();
        assert_eq!(bc.serialize(&ours).unwrap(), map_bytes);
        let back: Metadata = bc.deserialize(&map_bytes).unwrap();
        assert_eq!(back, ours);
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
    }

    #[test]
    fn deserializing_duplicate_keys_keeps_the_last() {
        let m: Metadata = serde_json::from_str(r#"{"a": {"Int": 1}, "a": {"Int": 2}}"#).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"], int(2));
    }

    #[test]
    fn a_hostile_length_prefix_reserves_nothing_it_cannot_read() {
        // bincode: a map claiming u64::MAX entries followed by nothing.
        let bytes = bincode::DefaultOptions::new().serialize(&u64::MAX).unwrap();
        let r: Result<Metadata, _> = bincode::DefaultOptions::new().deserialize(&bytes);
        assert!(r.is_err());
    }
}
