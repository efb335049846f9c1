//! Property tests of the filter module against an independent oracle.
//!
//! The oracle below evaluates the *JSON* of a filter directly against the
//! *JSON* of a record, the way Chroma's own test oracle
//! (`chromadb/test/property/test_filtering.py`) does, extended to the rules
//! Chroma 1.5.9 shows for what that oracle never generates (bools are not
//! numbers, list fields, `#document`). It shares no code with `parse.rs` or
//! `eval.rs`: it walks `serde_json::Value`s and compiles its own regexes.

use std::cmp::Ordering;

use proptest::prelude::*;
use proptest::test_runner::Config;
use regex::Regex;
use serde_json::{json, Map, Value};

use super::Filter;
use crate::record::metadata_from_json;

// ---------------------------------------------------------------------------
// The oracle.

/// Whether a record (`metadata`: a JSON object or null; `document`: a JSON
/// string or null) passes the `where` JSON `filter`.
fn oracle_where(filter: &Value, metadata: &Value, document: &Value) -> bool {
    let (key, expr) = only_entry(filter);
    match key {
        "$and" => expr
            .as_array()
            .expect("list")
            .iter()
            .all(|f| oracle_where(f, metadata, document)),
        "$or" => expr
            .as_array()
            .expect("list")
            .iter()
            .any(|f| oracle_where(f, metadata, document)),
        "#document" => oracle_document(expr, document),
        field => {
            let stored = metadata.get(field);
            let (op, operand) = match expr {
                Value::Object(_) => only_entry(expr),
                scalar => ("$eq", scalar),
            };
            match op {
                "$eq" => stored.is_some_and(|s| json_equal(s, operand)),
                "$ne" => !stored.is_some_and(|s| json_equal(s, operand)),
                "$gt" => number_order(stored, operand) == Some(Ordering::Greater),
                "$gte" => matches!(
                    number_order(stored, operand),
                    Some(Ordering::Greater | Ordering::Equal)
                ),
                "$lt" => number_order(stored, operand) == Some(Ordering::Less),
                "$lte" => matches!(
                    number_order(stored, operand),
                    Some(Ordering::Less | Ordering::Equal)
                ),
                "$in" => stored.is_some_and(|s| {
                    operand
                        .as_array()
                        .expect("list")
                        .iter()
                        .any(|o| json_equal(s, o))
                }),
                "$nin" => !stored.is_some_and(|s| {
                    operand
                        .as_array()
                        .expect("list")
                        .iter()
                        .any(|o| json_equal(s, o))
                }),
                "$contains" => stored.is_some_and(|s| list_holds(s, operand)),
                "$not_contains" => !stored.is_some_and(|s| list_holds(s, operand)),
                other => panic!("oracle: unknown operator {other}"),
            }
        }
    }
}

/// Whether `document` (a JSON string or null) passes the `where_document` JSON.
fn oracle_document(filter: &Value, document: &Value) -> bool {
    let (op, operand) = only_entry(filter);
    let doc = document.as_str();
    match op {
        "$and" => operand
            .as_array()
            .expect("list")
            .iter()
            .all(|f| oracle_document(f, document)),
        "$or" => operand
            .as_array()
            .expect("list")
            .iter()
            .any(|f| oracle_document(f, document)),
        "$contains" => doc.is_some_and(|d| d.contains(operand.as_str().expect("str"))),
        "$not_contains" => doc.is_none_or(|d| !d.contains(operand.as_str().expect("str"))),
        "$regex" => doc.is_some_and(|d| {
            Regex::new(operand.as_str().expect("str"))
                .expect("regex")
                .is_match(d)
        }),
        "$not_regex" => doc.is_none_or(|d| {
            !Regex::new(operand.as_str().expect("str"))
                .expect("regex")
                .is_match(d)
        }),
        other => panic!("oracle: unknown document operator {other}"),
    }
}

fn only_entry(v: &Value) -> (&str, &Value) {
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 1, "oracle: one entry per object");
    let (k, v) = obj.iter().next().expect("one entry");
    (k.as_str(), v)
}

/// Scalar equality: strings and bools by value, numbers by numeric value
/// (int 1 equals float 1.0); a list never equals anything.
fn json_equal(stored: &Value, operand: &Value) -> bool {
    match (stored, operand) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => exact_order(a, b) == Ordering::Equal,
        _ => false,
    }
}

fn number_order(stored: Option<&Value>, operand: &Value) -> Option<Ordering> {
    match (stored?, operand) {
        (Value::Number(a), Value::Number(b)) => Some(exact_order(a, b)),
        _ => None,
    }
}

/// `$contains`: the stored value is a JSON list with an element of the same
/// JSON kind as the operand (an integer literal vs. a float literal) and equal.
fn list_holds(stored: &Value, operand: &Value) -> bool {
    let Value::Array(items) = stored else {
        return false;
    };
    items.iter().any(|item| match (item, operand) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => {
            a.is_f64() == b.is_f64() && exact_order(a, b) == Ordering::Equal
        }
        _ => false,
    })
}

/// Exact order of two JSON numbers through i128 (the generators keep floats
/// below 2^66 in magnitude and never NaN).
fn exact_order(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => (x as i128).cmp(&(y as i128)),
        (Some(x), None) => int_vs_float(x as i128, b.as_f64().expect("f64")),
        (None, Some(y)) => int_vs_float(y as i128, a.as_f64().expect("f64")).reverse(),
        (None, None) => a
            .as_f64()
            .expect("f64")
            .partial_cmp(&b.as_f64().expect("f64"))
            .expect("no NaN"),
    }
}

fn int_vs_float(x: i128, y: f64) -> Ordering {
    assert!(y.abs() < 7e19, "oracle: float out of the generated range");
    let floor = y.floor() as i128;
    if y == y.floor() {
        x.cmp(&floor)
    } else if x <= floor {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

// ---------------------------------------------------------------------------
// Generators: small pools, so that filters and records meet often.

const KEYS: &[&str] = &["a", "b"];
const STRINGS: &[&str] = &["", "x", "y", "é"];
const INTS: &[i64] = &[0, 1, 2];
const FLOATS: &[f64] = &[-0.0, 1.0, 1.5, 2.0];
/// Integers and floats that meet at the edges of exactness: 2^53 + 1 is no
/// f64, i64::MAX rounds to 2^63, which no i64 reaches.
const EDGE_INTS: &[i64] = &[9_007_199_254_740_993, i64::MAX, i64::MIN];
const EDGE_FLOATS: &[f64] = &[
    9_007_199_254_740_992.0,
    9_223_372_036_854_775_808.0,
    -9_223_372_036_854_775_808.0,
    -0.5,
    -1e19,
];
const DOCUMENTS: &[&str] = &["", "cat", "Cat dog", "a_b%", "dog", "the cat sat", "é"];
const SUBSTRINGS: &[&str] = &["cat", "C", "a", "dog", "_", "%", " ", "é", "at s"];
const PATTERNS: &[&str] = &[
    "^c",
    "(?i)CAT",
    "t$",
    "a.b",
    "[%_]",
    "^$",
    ".*",
    "d.g",
    "^\\w+$",
    "\\bsat\\b",
];

fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

fn str_value() -> impl Strategy<Value = Value> {
    pick(STRINGS).prop_map(Value::from)
}
fn int_value() -> impl Strategy<Value = Value> {
    prop_oneof![2 => pick(INTS), 1 => pick(EDGE_INTS)].prop_map(Value::from)
}
fn float_value() -> impl Strategy<Value = Value> {
    prop_oneof![2 => pick(FLOATS), 1 => pick(EDGE_FLOATS)].prop_map(Value::from)
}
fn bool_value() -> impl Strategy<Value = Value> {
    any::<bool>().prop_map(Value::from)
}

fn scalar_value() -> impl Strategy<Value = Value> {
    prop_oneof![str_value(), int_value(), float_value(), bool_value()]
}

fn number_value() -> impl Strategy<Value = Value> {
    prop_oneof![int_value(), float_value()]
}

/// A non-empty list of one type, as stored metadata or an `$in` operand.
fn list_of_one_type() -> impl Strategy<Value = Value> {
    let list = |s: BoxedStrategy<Value>| prop::collection::vec(s, 1..4).prop_map(Value::Array);
    prop_oneof![
        list(str_value().boxed()),
        list(int_value().boxed()),
        list(float_value().boxed()),
        list(bool_value().boxed()),
    ]
}

/// A record as JSON: metadata (object or null) and document (string or null).
fn record() -> impl Strategy<Value = (Value, Value)> {
    let metadata_value = prop_oneof![3 => scalar_value(), 1 => list_of_one_type()];
    // Each key is present with probability 3/4.
    let metadata = prop::collection::vec(prop::option::weighted(0.75, metadata_value), KEYS.len())
        .prop_map(|values| {
            Value::Object(
                KEYS.iter()
                    .zip(values)
                    .filter_map(|(k, v)| Some(((*k).to_owned(), v?)))
                    .collect(),
            )
        });
    let document = prop_oneof![1 => Just(Value::Null), 4 => pick(DOCUMENTS).prop_map(Value::from)];
    (prop_oneof![1 => Just(Value::Null), 4 => metadata], document)
}

fn document_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        pick(SUBSTRINGS).prop_map(|s| json!({"$contains": s})),
        pick(SUBSTRINGS).prop_map(|s| json!({"$not_contains": s})),
        pick(PATTERNS).prop_map(|p| json!({"$regex": p})),
        pick(PATTERNS).prop_map(|p| json!({"$not_regex": p})),
    ]
}

fn logical(children: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    (
        pick(&["$and", "$or"][..]),
        prop::collection::vec(children, 2..4),
    )
        .prop_map(|(op, items)| json!({op: items}))
}

/// A well-formed `where_document`.
fn where_document() -> impl Strategy<Value = Value> {
    document_leaf().prop_recursive(3, 16, 3, |inner| logical(inner.boxed()))
}

/// A well-formed one-field condition, or a `#document` one.
fn where_leaf() -> impl Strategy<Value = Value> {
    let op = |name: &'static str, operand: BoxedStrategy<Value>| {
        (pick(KEYS), operand).prop_map(move |(k, v)| json!({k: {name: v}}))
    };
    prop_oneof![
        (pick(KEYS), scalar_value()).prop_map(|(k, v)| json!({k: v})),
        op("$eq", scalar_value().boxed()),
        op("$ne", scalar_value().boxed()),
        op("$gt", number_value().boxed()),
        op("$gte", number_value().boxed()),
        op("$lt", number_value().boxed()),
        op("$lte", number_value().boxed()),
        op("$in", list_of_one_type().boxed()),
        op("$nin", list_of_one_type().boxed()),
        // Numbers may mix ints and floats in `$in`.
        op(
            "$in",
            prop::collection::vec(number_value(), 1..4)
                .prop_map(Value::Array)
                .boxed()
        ),
        op("$contains", scalar_value().boxed()),
        op("$not_contains", scalar_value().boxed()),
        document_leaf().prop_map(|d| json!({"#document": d})),
    ]
}

/// A well-formed `where`.
fn where_clause() -> impl Strategy<Value = Value> {
    where_leaf().prop_recursive(3, 16, 3, |inner| logical(inner.boxed()))
}

/// A filter as the two JSON clauses of a request.
fn filter_json() -> impl Strategy<Value = (Option<Value>, Option<Value>)> {
    (
        prop::option::weighted(0.8, where_clause()),
        prop::option::weighted(0.5, where_document()),
    )
}

/// Any JSON at all, biased to the words of the filter language.
fn any_json() -> impl Strategy<Value = Value> {
    const WORDS: &[&str] = &[
        "$and",
        "$or",
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$contains",
        "$not_contains",
        "$regex",
        "$not_regex",
        "#document",
        "a",
        "",
        "(",
        "a{",
        "[",
        "\\",
    ];
    let key = prop_oneof![3 => pick(WORDS).prop_map(str::to_owned), 1 => ".{0,4}"];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        pick(WORDS).prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 4, move |inner| {
        let object = |range| prop::collection::vec((key.clone(), inner.clone()), range);
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            3 => object(1..2).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            1 => object(0..4).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

// ---------------------------------------------------------------------------
// Helpers for the properties.

/// `PROPTEST_CASES` when set (the soak knob), else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parse(where_json: &Option<Value>, document_json: &Option<Value>) -> Filter {
    Filter::parse(where_json.as_ref(), document_json.as_ref()).unwrap_or_else(|e| {
        panic!("well-formed filter {where_json:?} / {document_json:?} rejected: {e}")
    })
}

fn oracle(
    where_json: &Option<Value>,
    document_json: &Option<Value>,
    metadata: &Value,
    document: &Value,
) -> bool {
    where_json
        .as_ref()
        .is_none_or(|w| oracle_where(w, metadata, document))
        && document_json
            .as_ref()
            .is_none_or(|d| oracle_document(d, document))
}

/// `Filter::matches` on the record, through the record's own JSON parsing.
fn filter_matches(filter: &Filter, metadata: &Value, document: &Value) -> bool {
    let metadata =
        (!metadata.is_null()).then(|| metadata_from_json(metadata).expect("valid metadata"));
    filter.matches(metadata.as_ref(), document.as_str())
}

proptest! {
    #![proptest_config(Config { cases: cases(1000), ..Config::default() })]

    #[test]
    fn matches_agrees_with_the_oracle(
        (where_json, document_json) in filter_json(),
        records in prop::collection::vec(record(), 1..16),
    ) {
        let filter = parse(&where_json, &document_json);
        for (metadata, document) in &records {
            prop_assert_eq!(
                filter_matches(&filter, metadata, document),
                oracle(&where_json, &document_json, metadata, document),
                "filter {:?} / {:?} on metadata {} document {}", where_json, document_json, metadata, document
            );
        }
    }

    #[test]
    fn bincode_round_trip_preserves_matches(
        (where_json, document_json) in filter_json(),
        records in prop::collection::vec(record(), 1..16),
    ) {
        let filter = parse(&where_json, &document_json);
        let bytes = bincode::serialize(&filter).expect("serialize");
        let back: Filter = bincode::deserialize(&bytes).expect("deserialize");
        prop_assert_eq!(&back, &filter);
        for (metadata, document) in &records {
            prop_assert_eq!(filter_matches(&back, metadata, document), filter_matches(&filter, metadata, document));
        }
    }

    #[test]
    fn referenced_keys_are_the_fields_of_the_json(where_json in where_clause()) {
        fn walk(v: &Value, keys: &mut Vec<String>) {
            let (k, expr) = only_entry(v);
            match k {
                "$and" | "$or" => expr.as_array().expect("list").iter().for_each(|c| walk(c, keys)),
                "#document" => {}
                field => if !keys.iter().any(|x| x == field) { keys.push(field.to_owned()) },
            }
        }
        let mut expected = Vec::new();
        walk(&where_json, &mut expected);
        let filter = parse(&Some(where_json), &None);
        let got: Vec<&str> = filter.where_clause.as_ref().map(|w| w.referenced_keys()).unwrap_or_default();
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #![proptest_config(Config { cases: cases(3000), ..Config::default() })]

    /// Parsing never panics; what parses, evaluates without panicking too.
    #[test]
    fn parse_never_panics(v in any_json(), d in any_json(), (metadata, document) in record()) {
        for (w, wd) in [(Some(&v), None), (None, Some(&v)), (Some(&v), Some(&d)), (Some(&d), Some(&v))] {
            if let Ok(filter) = Filter::parse(w, wd) {
                filter_matches(&filter, &metadata, &document);
            }
        }
    }

    /// Every error names itself: an `InvalidArgument` with a non-empty message.
    #[test]
    fn errors_have_messages(v in any_json()) {
        if let Err(e) = Filter::parse(Some(&v), Some(&v)) {
            prop_assert!(e.to_string().starts_with("Expected") || e.to_string().starts_with("Invalid regex"), "{}", e);
        }
    }
}

/// The oracle itself, on the cases Chroma's own oracle spells out.
#[test]
fn oracle_sanity() {
    let md = json!({"a": 1, "s": "x", "l": [1, 2], "b": true});
    let doc = json!("the cat");
    assert!(oracle_where(&json!({"a": 1.0}), &md, &doc));
    assert!(!oracle_where(&json!({"b": 1}), &md, &doc));
    assert!(oracle_where(&json!({"missing": {"$ne": 1}}), &md, &doc));
    assert!(oracle_where(
        &json!({"missing": {"$nin": [1]}}),
        &Value::Null,
        &doc
    ));
    assert!(oracle_where(&json!({"l": {"$contains": 2}}), &md, &doc));
    assert!(!oracle_where(&json!({"l": {"$contains": 2.0}}), &md, &doc));
    assert!(!oracle_where(&json!({"a": {"$gt": 1.0}}), &md, &doc));
    assert!(oracle_where(&json!({"a": {"$gte": 0.5}}), &md, &doc));
    assert!(oracle_document(
        &json!({"$not_contains": "x"}),
        &Value::Null
    ));
    assert!(!oracle_document(&json!({"$regex": ".*"}), &Value::Null));
    assert!(oracle_document(&json!({"$regex": "c.t"}), &doc));
}
