//! Generated records and an in-test oracle: brute-force distances and an
//! independent evaluation of `where` / `where_document`, written from
//! http-api.md and Chroma 1.5.9's semantics (not from `common::filter`, which
//! is what the router runs and so cannot be its own reference).
//!
//! One deliberate choice follows the README's "Filter semantics": a record
//! that lacks the field matches `$ne`, `$nin` and `$not_contains`, and a
//! record without a document matches `$not_contains` / `$not_regex`, as in
//! Chroma 1.5.9 (http-api.md says otherwise; the README records why we follow
//! Chroma).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// One record as the test knows it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub id: String,
    pub embedding: Vec<f32>,
    pub metadata: Option<Map<String, Value>>,
    pub document: Option<String>,
}

pub fn random_embedding(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// `n` records `{prefix}-{i:04}` with varied metadata: ints, floats,
/// strings, bools, string and int arrays, fields missing on some records,
/// no metadata at all on some, no document on some.
pub fn dataset(prefix: &str, n: usize, dim: usize, seed: u64) -> Vec<Rec> {
    const COLORS: [&str; 4] = ["red", "green", "blue", "black"];
    const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "epsilon", "Zeta"];
    const TAGS: [&str; 4] = ["a", "b", "c", "d"];
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let metadata = (i % 17 != 0).then(|| {
                let mut m = Map::new();
                m.insert("i".into(), json!(i));
                if i % 11 != 0 {
                    m.insert("m".into(), json!(i % 5));
                }
                if i % 13 != 0 {
                    // Distinct tenths plus a quarter: exact in binary, so
                    // boundaries like 5.25 compare exactly.
                    m.insert("f".into(), json!((i * 37 % 100) as f64 / 10.0 + 0.25));
                }
                if i % 9 != 0 {
                    m.insert("color".into(), json!(COLORS[i % 4]));
                }
                m.insert("flag".into(), json!(i % 3 == 0));
                if i % 4 != 1 {
                    let bits = i % 15 + 1;
                    let tags: Vec<&str> = (0..4)
                        .filter(|b| bits & (1 << b) != 0)
                        .map(|b| TAGS[b])
                        .collect();
                    m.insert("tags".into(), json!(tags));
                }
                if i % 6 != 0 {
                    m.insert("nums".into(), json!([i % 7, i % 10]));
                }
                m
            });
            let document = (i % 10 != 0)
                .then(|| format!("doc {i} {} {}", WORDS[i % 6], WORDS[(i / 6 + i % 4) % 6]));
            Rec {
                id: format!("{prefix}-{i:04}"),
                embedding: random_embedding(&mut rng, dim),
                metadata,
                document,
            }
        })
        .collect()
}

/// An `add` body for records that all have metadata and documents, or all
/// lack one of them (the missing list is left out of the body, so the
/// request does not depend on null entries inside lists).
pub fn add_body(recs: &[Rec]) -> Value {
    let mut body = json!({
        "ids": recs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        "embeddings": recs.iter().map(|r| r.embedding.clone()).collect::<Vec<_>>(),
    });
    if recs.iter().all(|r| r.metadata.is_some()) {
        body["metadatas"] = json!(recs.iter().map(|r| r.metadata.clone()).collect::<Vec<_>>());
    }
    if recs.iter().all(|r| r.document.is_some()) {
        body["documents"] = json!(recs.iter().map(|r| r.document.clone()).collect::<Vec<_>>());
    }
    body
}

/// Splits records into `add` bodies by which of metadata/document they have.
pub fn add_bodies(recs: &[Rec]) -> Vec<Value> {
    let mut groups: [Vec<Rec>; 4] = Default::default();
    for r in recs {
        let k = usize::from(r.metadata.is_some()) * 2 + usize::from(r.document.is_some());
        groups[k].push(r.clone());
    }
    groups
        .iter()
        .filter(|g| !g.is_empty())
        .flat_map(|g| g.chunks(100).map(add_body).collect::<Vec<_>>())
        .collect()
}

// ---- filters ----

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn cmp_num(field: Option<&Value>, operand: &Value, op: fn(f64, f64) -> bool) -> bool {
    match (
        field.filter(|v| v.is_number()).and_then(Value::as_f64),
        operand.as_f64(),
    ) {
        (Some(x), Some(y)) => op(x, y),
        _ => false,
    }
}

/// Whether `metadata` matches a (valid) `where` filter.
pub fn where_matches(filter: &Value, metadata: Option<&Map<String, Value>>) -> bool {
    let obj = filter.as_object().expect("where is an object");
    let (key, value) = obj.iter().next().expect("where has one key");
    match key.as_str() {
        "$and" => value
            .as_array()
            .expect("$and list")
            .iter()
            .all(|w| where_matches(w, metadata)),
        "$or" => value
            .as_array()
            .expect("$or list")
            .iter()
            .any(|w| where_matches(w, metadata)),
        field => {
            let fv = metadata.and_then(|m| m.get(field));
            let (op, operand) = match value.as_object() {
                Some(o) => {
                    let (op, operand) = o.iter().next().expect("operator");
                    (op.as_str(), operand)
                }
                None => ("$eq", value),
            };
            let contains = |v: &Value| {
                fv.and_then(Value::as_array)
                    .is_some_and(|items| items.iter().any(|x| json_eq(x, v)))
            };
            match op {
                "$eq" => fv.is_some_and(|f| json_eq(f, operand)),
                "$ne" => !fv.is_some_and(|f| json_eq(f, operand)),
                "$gt" => cmp_num(fv, operand, |x, y| x > y),
                "$gte" => cmp_num(fv, operand, |x, y| x >= y),
                "$lt" => cmp_num(fv, operand, |x, y| x < y),
                "$lte" => cmp_num(fv, operand, |x, y| x <= y),
                "$in" => fv.is_some_and(|f| {
                    operand
                        .as_array()
                        .expect("$in list")
                        .iter()
                        .any(|v| json_eq(f, v))
                }),
                "$nin" => !fv.is_some_and(|f| {
                    operand
                        .as_array()
                        .expect("$nin list")
                        .iter()
                        .any(|v| json_eq(f, v))
                }),
                "$contains" => contains(operand),
                "$not_contains" => !contains(operand),
                other => panic!("oracle: unknown operator {other}"),
            }
        }
    }
}

/// Whether `document` matches a (valid) `where_document` filter.
pub fn document_matches(filter: &Value, document: Option<&str>) -> bool {
    let obj = filter.as_object().expect("where_document is an object");
    let (key, value) = obj.iter().next().expect("where_document has one key");
    let text = || value.as_str().expect("string operand");
    let regex = || regex::Regex::new(text()).expect("valid regex");
    match key.as_str() {
        "$and" => value
            .as_array()
            .expect("$and list")
            .iter()
            .all(|w| document_matches(w, document)),
        "$or" => value
            .as_array()
            .expect("$or list")
            .iter()
            .any(|w| document_matches(w, document)),
        "$contains" => document.is_some_and(|d| d.contains(text())),
        "$not_contains" => !document.is_some_and(|d| d.contains(text())),
        "$regex" => document.is_some_and(|d| regex().is_match(d)),
        "$not_regex" => !document.is_some_and(|d| regex().is_match(d)),
        other => panic!("oracle: unknown document operator {other}"),
    }
}

/// Whether a record matches optional `where` and `where_document` filters.
pub fn record_matches(r: &Rec, filter: Option<&Value>, doc_filter: Option<&Value>) -> bool {
    filter.is_none_or(|w| where_matches(w, r.metadata.as_ref()))
        && doc_filter.is_none_or(|w| document_matches(w, r.document.as_deref()))
}

/// `where` filters over [`dataset`]'s fields: every operator, implicit and
/// explicit equality, nesting, missing fields, int/float mixing.
pub fn where_filters() -> Vec<Value> {
    vec![
        json!({"color": "red"}),
        json!({"color": {"$eq": "blue"}}),
        json!({"color": {"$ne": "red"}}),
        json!({"m": {"$gt": 2}}),
        json!({"m": {"$gte": 2}}),
        json!({"f": {"$lt": 3.5}}),
        json!({"f": {"$lte": 5.25}}),
        json!({"f": {"$gt": 2}}),
        json!({"i": {"$lt": 100.5}}),
        json!({"i": {"$in": [1, 5, 50, 150, 199, 1000]}}),
        json!({"color": {"$in": ["green", "black"]}}),
        json!({"color": {"$nin": ["red", "green"]}}),
        json!({"i": {"$nin": [0, 1, 2]}}),
        json!({"tags": {"$contains": "a"}}),
        json!({"tags": {"$not_contains": "b"}}),
        json!({"nums": {"$contains": 3}}),
        json!({"flag": true}),
        json!({"flag": {"$ne": true}}),
        json!({"m": {"$ne": 0}}),
        json!({"color": "purple"}),
        json!({"$and": [{"m": {"$gte": 1}}, {"color": "blue"}]}),
        json!({"$or": [{"color": "red"}, {"f": {"$gt": 9.0}}]}),
        json!({"$or": [
            {"$and": [{"m": 0}, {"flag": false}]},
            {"$and": [{"tags": {"$contains": "c"}}, {"i": {"$lt": 40}}]}
        ]}),
        json!({"$and": [
            {"$or": [{"m": 1}, {"m": 3}]},
            {"$or": [{"color": {"$ne": "black"}}, {"nums": {"$contains": 0}}]},
            {"i": {"$gte": 10}}
        ]}),
    ]
}

/// `where_document` filters over [`dataset`]'s documents.
pub fn document_filters() -> Vec<Value> {
    vec![
        json!({"$contains": "alpha"}),
        json!({"$not_contains": "beta"}),
        json!({"$contains": "zeta"}),
        json!({"$regex": "^doc 1[0-9] "}),
        json!({"$regex": "(?i)zeta"}),
        json!({"$not_regex": "gamma|delta"}),
        json!({"$and": [{"$contains": "alpha"}, {"$not_contains": "gamma"}]}),
        json!({"$or": [{"$contains": "Zeta"}, {"$regex": "epsilon$"}]}),
        json!({"$or": [
            {"$and": [{"$contains": "doc 1"}, {"$not_regex": "alpha"}]},
            {"$contains": "delta gamma"}
        ]}),
    ]
}

// ---- distances ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    L2,
    Cosine,
    Ip,
}

impl Space {
    pub fn name(self) -> &'static str {
        match self {
            Space::L2 => "l2",
            Space::Cosine => "cosine",
            Space::Ip => "ip",
        }
    }
}

/// http-api.md's distances: l2 squared, cosine 1 - cos, ip 1 - dot (in f64).
pub fn distance(space: Space, a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    match space {
        Space::L2 => a
            .iter()
            .zip(b)
            .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
            .sum(),
        Space::Ip => 1.0 - dot,
        Space::Cosine => {
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            1.0 - dot / (na * nb)
        }
    }
}

/// Exact top-`k` of `recs` for `query` among records passing the filters,
/// ascending by distance.
pub fn brute_force(
    recs: &[Rec],
    space: Space,
    query: &[f32],
    k: usize,
    filter: Option<&Value>,
    doc_filter: Option<&Value>,
) -> Vec<(String, f64)> {
    let mut all: Vec<(String, f64)> = recs
        .iter()
        .filter(|r| record_matches(r, filter, doc_filter))
        .map(|r| (r.id.clone(), distance(space, &r.embedding, query)))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Tolerance for comparing a server's f32 distance with an f64 reference.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

/// Asserts that (`ids`, `distances`) is an exact top-k: same length as
/// `expected`, each reported distance equal to the true distance of its id and
/// to the expected distance at that rank (so ties may swap ids, nothing else).
#[track_caller]
pub fn assert_top_k(
    what: &str,
    recs: &[Rec],
    space: Space,
    query: &[f32],
    ids: &[String],
    distances: &[f64],
    expected: &[(String, f64)],
) {
    let exp_ids: Vec<&str> = expected.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        ids.len(),
        expected.len(),
        "{what}: got {} results {ids:?}, expected {} {exp_ids:?}",
        ids.len(),
        expected.len()
    );
    assert_eq!(
        ids.len(),
        distances.len(),
        "{what}: ids and distances differ in length"
    );
    let mut seen = std::collections::BTreeSet::new();
    for (rank, (id, d)) in ids.iter().zip(distances).enumerate() {
        assert!(seen.insert(id), "{what}: id {id} returned twice");
        let rec = recs
            .iter()
            .find(|r| &r.id == id)
            .unwrap_or_else(|| panic!("{what}: unknown id {id}"));
        let truth = distance(space, &rec.embedding, query);
        assert!(
            close(*d, truth),
            "{what}: rank {rank} id {id} reported distance {d}, true {space:?} distance {truth}"
        );
        assert!(
            close(*d, expected[rank].1),
            "{what}: rank {rank} got {id} at {d}, brute force has {} at {}\n got {ids:?}\n exp {exp_ids:?}",
            expected[rank].0,
            expected[rank].1
        );
    }
}

// ---- base64 embeddings ----

/// Standard base64 (with padding) of the little-endian f32 bytes, the form
/// the Chroma client sends when pre-flight says `supports_base64_encoding`.
pub fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64(&bytes)
}

pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    #[test]
    fn oracle_follows_chroma_on_missing_fields() {
        let m: Map<String, Value> = serde_json::from_value(json!({"a": 1, "t": ["x"]})).unwrap();
        assert!(where_matches(&json!({"b": {"$ne": 1}}), Some(&m)));
        assert!(where_matches(&json!({"b": {"$nin": [1]}}), Some(&m)));
        assert!(!where_matches(&json!({"b": {"$eq": 1}}), Some(&m)));
        assert!(where_matches(&json!({"a": {"$gte": 1.0}}), Some(&m)));
        assert!(where_matches(&json!({"t": {"$contains": "x"}}), Some(&m)));
        assert!(where_matches(&json!({"t": {"$not_contains": "y"}}), None));
        assert!(document_matches(&json!({"$not_regex": "x"}), None));
        assert!(!document_matches(&json!({"$regex": "x"}), None));
    }

    /// The end-to-end filter checks are only as good as their filters: each
    /// must select a proper, non-empty part of the dataset (except the one
    /// meant to match nothing), or a broken operator could pass unnoticed.
    #[test]
    fn filters_split_the_dataset() {
        let recs = dataset("f", 200, 8, 42);
        for w in where_filters() {
            let n = recs
                .iter()
                .filter(|r| record_matches(r, Some(&w), None))
                .count();
            if w == json!({"color": "purple"}) {
                assert_eq!(n, 0);
            } else {
                assert!((1..200).contains(&n), "where {w} matches {n} of 200");
            }
        }
        for d in document_filters() {
            let n = recs
                .iter()
                .filter(|r| record_matches(r, None, Some(&d)))
                .count();
            if d == json!({"$contains": "zeta"}) {
                assert_eq!(n, 0, "documents are case-sensitive: only Zeta occurs");
            } else {
                assert!(
                    (1..200).contains(&n),
                    "where_document {d} matches {n} of 200"
                );
            }
        }
        // Missing fields and documents occur, so their semantics are tested.
        assert!(recs.iter().any(|r| r.metadata.is_none()));
        assert!(recs.iter().any(|r| r.document.is_none()));
        assert!(recs.iter().any(|r| r
            .metadata
            .as_ref()
            .is_some_and(|m| !m.contains_key("color"))));
    }

    #[test]
    fn distances() {
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 2.0];
        assert_eq!(distance(Space::L2, &a, &b), 5.0);
        assert_eq!(distance(Space::Ip, &a, &b), 1.0);
        assert!((distance(Space::Cosine, &a, &[2.0, 0.0])).abs() < 1e-12);
    }
}
