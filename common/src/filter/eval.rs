//! Evaluates a parsed filter against one record, as Chroma 1.5.9 does.
//!
//! The rules (each checked against a running Chroma 1.5.9; see the tests):
//! - A field missing from the record (or a record without metadata) matches no
//!   positive condition, and so matches every negated one: `$ne`, `$nin`,
//!   `$not_contains` hold for it. Chroma evaluates those as "id NOT IN (ids
//!   whose field matches)", and its conformance oracle does the same.
//! - Equality, `$in` and `$nin` compare a scalar field: strings with strings,
//!   bools with bools, and numbers with numbers, where an int and a float are
//!   equal when they are the same number (`{"a": 1}` matches a stored `1.0`).
//!   Bools are not numbers. A list-valued field never equals a scalar.
//! - `$gt`..`$lte` hold only for a numeric scalar field; int against float is
//!   compared exactly.
//! - `$contains` / `$not_contains` look inside a list-valued field for an
//!   element of the operand's own type (an int operand never matches a float
//!   list, and vice versa); a scalar field never contains anything (no
//!   substring matching).
//! - Documents: `$contains` is a case-sensitive substring test, `$regex` an
//!   unanchored search; a record without a document matches neither, and so
//!   matches `$not_contains` and `$not_regex`. An empty document is a document.

use std::cmp::Ordering;

use super::ast::{FieldOp, Number, Scalar, ScalarList, Where, WhereDocument};
use crate::record::{Metadata, MetadataValue};

impl Where {
    /// Whether a record with this metadata and document satisfies the clause.
    pub fn matches(&self, metadata: Option<&Metadata>, document: Option<&str>) -> bool {
        match self {
            Where::And(children) => children.iter().all(|c| c.matches(metadata, document)),
            Where::Or(children) => children.iter().any(|c| c.matches(metadata, document)),
            Where::Field { key, op } => op.matches(metadata.and_then(|m| m.get(key))),
            Where::Document(condition) => condition.matches(document),
        }
    }
}

impl WhereDocument {
    /// Whether a record with this document (or none) satisfies the clause.
    pub fn matches(&self, document: Option<&str>) -> bool {
        match self {
            WhereDocument::And(children) => children.iter().all(|c| c.matches(document)),
            WhereDocument::Or(children) => children.iter().any(|c| c.matches(document)),
            WhereDocument::Contains(text) => document.is_some_and(|d| d.contains(text.as_str())),
            WhereDocument::NotContains(text) => {
                !document.is_some_and(|d| d.contains(text.as_str()))
            }
            WhereDocument::Regex(re) => document.is_some_and(|d| re.is_match(d)),
            WhereDocument::NotRegex(re) => !document.is_some_and(|d| re.is_match(d)),
        }
    }
}

impl FieldOp {
    /// Whether a field holding `value` (`None`: the record lacks it) satisfies
    /// the comparison.
    pub fn matches(&self, value: Option<&MetadataValue>) -> bool {
        match self {
            FieldOp::Eq(s) => value.is_some_and(|v| equals(v, s)),
            FieldOp::Ne(s) => !value.is_some_and(|v| equals(v, s)),
            FieldOp::Gt(n) => compares(value, n, Ordering::is_gt),
            FieldOp::Gte(n) => compares(value, n, Ordering::is_ge),
            FieldOp::Lt(n) => compares(value, n, Ordering::is_lt),
            FieldOp::Lte(n) => compares(value, n, Ordering::is_le),
            FieldOp::In(list) => value.is_some_and(|v| in_list(v, list)),
            FieldOp::Nin(list) => !value.is_some_and(|v| in_list(v, list)),
            FieldOp::Contains(s) => value.is_some_and(|v| list_contains(v, s)),
            FieldOp::NotContains(s) => !value.is_some_and(|v| list_contains(v, s)),
        }
    }
}

/// The numeric view of a scalar field; bools and lists have none.
fn stored_number(value: &MetadataValue) -> Option<Number> {
    match value {
        MetadataValue::Int(i) => Some(Number::Int(*i)),
        MetadataValue::Float(f) => Some(Number::Float(*f)),
        _ => None,
    }
}

/// Exact order of two numbers; `None` when a NaN is involved.
fn compare_numbers(a: Number, b: Number) -> Option<Ordering> {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => Some(x.cmp(&y)),
        (Number::Float(x), Number::Float(y)) => x.partial_cmp(&y),
        (Number::Int(x), Number::Float(y)) => compare_int_float(x, y),
        (Number::Float(x), Number::Int(y)) => compare_int_float(y, x).map(Ordering::reverse),
    }
}

/// Compares an `i64` with an `f64` exactly (no rounding of the integer).
fn compare_int_float(i: i64, f: f64) -> Option<Ordering> {
    // 2^63, exactly representable; every i64 lies in [-2^63, 2^63).
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() {
        return None;
    }
    if f >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    // Here |trunc(f)| <= 2^63 - 1 or trunc(f) = -2^63: the cast is exact.
    let whole = f.trunc();
    match i.cmp(&(whole as i64)) {
        // Same integer part: the fraction of `f` (exact) decides.
        Ordering::Equal => 0.0_f64.partial_cmp(&(f - whole)),
        unequal => Some(unequal),
    }
}

fn compares(value: Option<&MetadataValue>, operand: &Number, holds: fn(Ordering) -> bool) -> bool {
    value
        .and_then(stored_number)
        .and_then(|stored| compare_numbers(stored, *operand))
        .is_some_and(holds)
}

fn scalar_number(s: &Scalar) -> Option<Number> {
    match s {
        Scalar::Int(i) => Some(Number::Int(*i)),
        Scalar::Float(f) => Some(Number::Float(*f)),
        Scalar::Str(_) | Scalar::Bool(_) => None,
    }
}

/// Scalar equality of a stored value and an operand (see the module rules).
fn equals(value: &MetadataValue, operand: &Scalar) -> bool {
    match (value, operand) {
        (MetadataValue::Str(a), Scalar::Str(b)) => a == b,
        (MetadataValue::Bool(a), Scalar::Bool(b)) => a == b,
        _ => match (stored_number(value), scalar_number(operand)) {
            (Some(a), Some(b)) => compare_numbers(a, b) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

fn in_list(value: &MetadataValue, list: &ScalarList) -> bool {
    match (value, list) {
        (MetadataValue::Str(s), ScalarList::Str(items)) => items.contains(s),
        (MetadataValue::Bool(b), ScalarList::Bool(items)) => items.contains(b),
        (_, ScalarList::Number(items)) => stored_number(value).is_some_and(|n| {
            items
                .iter()
                .any(|item| compare_numbers(n, *item) == Some(Ordering::Equal))
        }),
        _ => false,
    }
}

/// Whether a list-valued field holds `element`, matched by type exactly.
fn list_contains(value: &MetadataValue, element: &Scalar) -> bool {
    match (value, element) {
        (MetadataValue::StrList(items), Scalar::Str(s)) => items.contains(s),
        (MetadataValue::IntList(items), Scalar::Int(i)) => items.contains(i),
        (MetadataValue::FloatList(items), Scalar::Float(f)) => items.contains(f),
        (MetadataValue::BoolList(items), Scalar::Bool(b)) => items.contains(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    //! Expected results here are what Chroma 1.5.9 (`chromadb.EphemeralClient`,
    //! the same Rust engine `chroma run` serves) returned for the same data.

    use super::*;
    use crate::filter::ast::DocRegex;
    use crate::record::metadata_from_json;
    use serde_json::{json, Value};

    /// The probe's records: id, metadata, document.
    fn records() -> Vec<(&'static str, Option<Metadata>, Option<&'static str>)> {
        let md = |v: Value| Some(metadata_from_json(&v).unwrap());
        vec![
            ("n_none", None, None),
            ("i1", md(json!({"a": 1})), Some("hello world")),
            ("f1", md(json!({"a": 1.0})), Some("Hello")),
            ("f15", md(json!({"a": 1.5})), None),
            ("i2", md(json!({"a": 2})), Some("abc")),
            ("btrue", md(json!({"a": true})), Some("x")),
            ("bfalse", md(json!({"a": false})), Some("y")),
            ("s1", md(json!({"a": "1"})), Some("z")),
            ("sabc", md(json!({"a": "abc"})), Some("z")),
            ("other", md(json!({"b": 1})), Some("z")),
            ("lstr", md(json!({"a": ["abc", "x"]})), Some("z")),
            ("lint", md(json!({"a": [1, 2]})), Some("z")),
            ("lflt", md(json!({"a": [1.0, 2.5]})), Some("z")),
            ("lbool", md(json!({"a": [true]})), Some("z")),
            (
                "big",
                md(json!({"a": 9_007_199_254_740_993_i64})),
                Some("z"),
            ),
            ("neg", md(json!({"a": -1.5})), Some("z")),
            ("empty", md(json!({"a": ""})), Some("")),
        ]
    }

    fn ids(filter: &Value) -> Vec<&'static str> {
        let w = Where::from_json(filter).unwrap();
        let mut out: Vec<_> = records()
            .into_iter()
            .filter(|(_, m, d)| w.matches(m.as_ref(), *d))
            .map(|(id, _, _)| id)
            .collect();
        out.sort_unstable();
        out
    }

    fn doc_ids(filter: &Value) -> Vec<&'static str> {
        let w = WhereDocument::from_json(filter).unwrap();
        let mut out: Vec<_> = records()
            .into_iter()
            .filter(|(_, _, d)| w.matches(*d))
            .map(|(id, _, _)| id)
            .collect();
        out.sort_unstable();
        out
    }

    /// Every id except these.
    fn all_but(excluded: &[&str]) -> Vec<&'static str> {
        let mut out: Vec<_> = records()
            .into_iter()
            .map(|(id, _, _)| id)
            .filter(|id| !excluded.contains(id))
            .collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn equality_crosses_int_and_float_but_not_bool() {
        assert_eq!(ids(&json!({"a": 1})), ["f1", "i1"]);
        assert_eq!(ids(&json!({"a": 1.0})), ["f1", "i1"]);
        // Chroma's SQLite engine also returns the stored int 1 here (it
        // truncates a float operand for its int column); we compare exactly.
        assert_eq!(ids(&json!({"a": {"$eq": 1.5}})), ["f15"]);
        assert_eq!(ids(&json!({"a": true})), ["btrue"]);
        assert_eq!(ids(&json!({"a": "1"})), ["s1"]);
        assert_eq!(ids(&json!({"a": "abc"})), ["sabc"]);
        assert_eq!(ids(&json!({"a": ""})), ["empty"]);
        // A list-valued field never equals a scalar.
        assert_eq!(ids(&json!({"a": "x"})), Vec::<&str>::new());
        // Large integers compare exactly, not through f64.
        assert_eq!(
            ids(&json!({"a": 9_007_199_254_740_992_i64})),
            Vec::<&str>::new()
        );
        assert_eq!(ids(&json!({"a": 9_007_199_254_740_993_i64})), ["big"]);
        assert_eq!(
            ids(&json!({"a": 9_007_199_254_740_992.0})),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn negations_match_missing_fields_and_other_types() {
        assert_eq!(ids(&json!({"a": {"$ne": 1}})), all_but(&["i1", "f1"]));
        assert_eq!(ids(&json!({"a": {"$ne": "abc"}})), all_but(&["sabc"]));
        assert_eq!(ids(&json!({"a": {"$ne": true}})), all_but(&["btrue"]));
        assert_eq!(ids(&json!({"a": {"$ne": 1.5}})), all_but(&["f15"]));
        assert_eq!(ids(&json!({"a": {"$nin": [1]}})), all_but(&["i1", "f1"]));
        assert_eq!(ids(&json!({"a": {"$nin": ["abc"]}})), all_but(&["sabc"]));
        assert_eq!(ids(&json!({"a": {"$nin": [1.5]}})), all_but(&["f15"]));
        assert_eq!(
            ids(&json!({"a": {"$not_contains": "abc"}})),
            all_but(&["lstr"])
        );
        assert_eq!(ids(&json!({"a": {"$not_contains": 1}})), all_but(&["lint"]));
        assert_eq!(
            ids(&json!({"a": {"$not_contains": true}})),
            all_but(&["lbool"])
        );
        assert_eq!(ids(&json!({"missing": {"$ne": 1}})), all_but(&[]));
    }

    #[test]
    fn order_comparisons_only_on_numbers() {
        assert_eq!(ids(&json!({"a": {"$gt": 1}})), ["big", "f15", "i2"]);
        assert_eq!(
            ids(&json!({"a": {"$gt": 0}})),
            ["big", "f1", "f15", "i1", "i2"]
        );
        assert_eq!(ids(&json!({"a": {"$gt": 1.2}})), ["big", "f15", "i2"]);
        assert_eq!(ids(&json!({"a": {"$lte": 1}})), ["f1", "i1", "neg"]);
        assert_eq!(ids(&json!({"a": {"$lt": -1.2}})), ["neg"]);
        assert_eq!(
            ids(&json!({"a": {"$gt": 9_007_199_254_740_992_i64}})),
            ["big"]
        );
        assert_eq!(
            ids(&json!({"a": {"$gte": 9_007_199_254_740_993_i64}})),
            ["big"]
        );
        assert_eq!(
            ids(&json!({"a": {"$gt": 9_007_199_254_740_993_i64}})),
            Vec::<&str>::new()
        );
        // Chroma's SQLite engine truncates a float operand when it compares an
        // int column (`$gte 1.5` matches a stored 1, `$lt 1.5` does not); we
        // compare exactly, as its conformance oracle does.
        assert_eq!(ids(&json!({"a": {"$gte": 1.5}})), ["big", "f15", "i2"]);
        assert_eq!(ids(&json!({"a": {"$lt": 1.5}})), ["f1", "i1", "neg"]);
    }

    #[test]
    fn in_lists() {
        assert_eq!(ids(&json!({"a": {"$in": [1]}})), ["f1", "i1"]);
        // Chroma's SQLite engine adds the stored int 1 (truncation, as above).
        assert_eq!(ids(&json!({"a": {"$in": [1.5]}})), ["f15"]);
        assert_eq!(ids(&json!({"a": {"$in": [1.5, 2]}})), ["f15", "i2"]);
        // Mixed lists keep exact values: i64::MAX is not 2^63.
        let two_pow_63 = MetadataValue::Float(9_223_372_036_854_775_808.0);
        let mixed = |n: Number| FieldOp::In(ScalarList::Number(vec![Number::Float(0.5), n]));
        assert!(!mixed(Number::Int(i64::MAX)).matches(Some(&two_pow_63)));
        assert!(mixed(Number::Float(9_223_372_036_854_775_808.0)).matches(Some(&two_pow_63)));
        assert_eq!(ids(&json!({"a": {"$in": ["abc", "zzz"]}})), ["sabc"]);
        assert_eq!(ids(&json!({"a": {"$in": [true]}})), ["btrue"]);
        assert_eq!(
            ids(&json!({"a": {"$in": [false, true]}})),
            ["bfalse", "btrue"]
        );
    }

    #[test]
    fn contains_looks_into_lists_of_the_same_type() {
        assert_eq!(ids(&json!({"a": {"$contains": "abc"}})), ["lstr"]);
        assert_eq!(ids(&json!({"a": {"$contains": "b"}})), Vec::<&str>::new());
        assert_eq!(ids(&json!({"a": {"$contains": 1}})), ["lint"]);
        assert_eq!(ids(&json!({"a": {"$contains": 1.0}})), ["lflt"]);
        assert_eq!(ids(&json!({"a": {"$contains": 2.5}})), ["lflt"]);
        assert_eq!(ids(&json!({"a": {"$contains": true}})), ["lbool"]);
    }

    #[test]
    fn logical_operators() {
        assert_eq!(
            ids(&json!({"$and": [{"a": {"$gt": 0}}, {"a": {"$lt": 2}}]})),
            ["f1", "f15", "i1"]
        );
        assert_eq!(
            ids(&json!({"$or": [{"a": "abc"}, {"b": 1}]})),
            ["other", "sabc"]
        );
        assert_eq!(
            ids(&json!({"$and": [{"a": 1}, {"#document": {"$contains": "world"}}]})),
            ["i1"]
        );
    }

    #[test]
    fn document_operators() {
        let without_doc = ["f15", "n_none"];
        assert_eq!(doc_ids(&json!({"$contains": "hello"})), ["i1"]);
        assert_eq!(
            doc_ids(&json!({"$not_contains": "hello"})),
            all_but(&["i1"])
        );
        assert_eq!(doc_ids(&json!({"$regex": "^[Hh]"})), ["f1", "i1"]);
        assert_eq!(
            doc_ids(&json!({"$not_regex": "^[Hh]"})),
            all_but(&["f1", "i1"])
        );
        assert_eq!(doc_ids(&json!({"$regex": "(?i)HELLO"})), ["f1", "i1"]);
        // SQL wildcards are plain characters.
        assert_eq!(doc_ids(&json!({"$contains": "%"})), Vec::<&str>::new());
        assert_eq!(doc_ids(&json!({"$contains": "_"})), Vec::<&str>::new());
        // A pattern matching the empty string matches every document, even an
        // empty one, but no record without a document.
        assert_eq!(doc_ids(&json!({"$regex": ".*"})), all_but(&without_doc));
        assert_eq!(doc_ids(&json!({"$not_regex": ".*"})), without_doc);
        assert_eq!(doc_ids(&json!({"$regex": "^$"})), ["empty"]);
        assert_eq!(
            doc_ids(&json!({"$and": [{"$contains": "l"}, {"$not_contains": "world"}]})),
            ["f1"]
        );
        assert_eq!(
            doc_ids(&json!({"$or": [{"$contains": "abc"}, {"$regex": "^x$"}]})),
            ["btrue", "i2"]
        );
    }

    #[test]
    fn document_inside_where_sees_the_document() {
        assert_eq!(ids(&json!({"#document": {"$contains": "ab"}})), ["i2"]);
        assert_eq!(
            ids(&json!({"#document": {"$not_contains": "z"}})),
            all_but(&["s1", "sabc", "other", "lstr", "lint", "lflt", "lbool", "big", "neg"])
        );
    }

    #[test]
    fn int_float_comparison_is_exact_at_the_edges() {
        use Ordering::*;
        let two63 = 9_223_372_036_854_775_808.0_f64;
        assert_eq!(compare_int_float(i64::MAX, two63), Some(Less));
        assert_eq!(compare_int_float(i64::MIN, -two63), Some(Equal));
        assert_eq!(compare_int_float(i64::MIN, -two63 * 2.0), Some(Greater));
        assert_eq!(
            compare_int_float(i64::MIN, f64::NEG_INFINITY),
            Some(Greater)
        );
        assert_eq!(compare_int_float(0, f64::INFINITY), Some(Less));
        assert_eq!(compare_int_float(0, f64::NAN), None);
        assert_eq!(compare_int_float(-1, -1.5), Some(Greater));
        assert_eq!(compare_int_float(-2, -1.5), Some(Less));
        assert_eq!(compare_int_float(1, 0.5), Some(Greater));
        assert_eq!(compare_int_float(0, 0.5), Some(Less));
        assert_eq!(compare_int_float(0, -0.0), Some(Equal));
        assert_eq!(
            compare_int_float(9_007_199_254_740_993, 9_007_199_254_740_992.0),
            Some(Greater)
        );
    }

    #[test]
    fn nan_stored_by_hand_matches_nothing_positive() {
        let mut m = Metadata::new();
        m.insert("a".into(), MetadataValue::Float(f64::NAN));
        let nan = Some(&m);
        assert!(!FieldOp::Eq(Scalar::Float(1.0)).matches(nan.and_then(|m| m.get("a"))));
        assert!(FieldOp::Ne(Scalar::Float(1.0)).matches(nan.and_then(|m| m.get("a"))));
        assert!(!FieldOp::Gt(Number::Int(0)).matches(nan.and_then(|m| m.get("a"))));
        assert!(!FieldOp::Lte(Number::Int(0)).matches(nan.and_then(|m| m.get("a"))));
        let re = WhereDocument::Regex(DocRegex::new("a").unwrap());
        assert!(!re.matches(None));
    }
}
