//! The filter decoders against hostile input: bincode from another process
//! (arbitrary bytes, nestings far past the stack, too many regexes) and JSON
//! from a client (arbitrary shapes, deep nestings, oversized lists). Nothing
//! may panic or overflow; a filter that decodes is within the limits.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::ast::{FieldOp, Scalar, Where, WhereDocument};
use super::Filter;
use crate::limits::{MAX_FILTER_DEPTH, MAX_FILTER_TERMS, MAX_IN_VALUES, MAX_REGEXES};

fn leaf() -> Where {
    Where::Field {
        key: "k".into(),
        op: FieldOp::Eq(Scalar::Int(1)),
    }
}

/// The bincode of `Where::And(vec![child])` without the child: the bytes
/// that wrap one more level around any encoded `Where`.
fn and_header() -> Vec<u8> {
    let whole = bincode::serialize(&Where::And(vec![leaf()])).unwrap();
    let child = bincode::serialize(&leaf()).unwrap();
    assert!(whole.ends_with(&child));
    whole[..whole.len() - child.len()].to_vec()
}

/// The bincode of a `Filter` whose `where` is `levels` single-child `$and`s
/// around one condition, built as bytes: a value that deep could not even be
/// dropped in this process.
fn deep_filter_bytes(levels: usize) -> Vec<u8> {
    let shallow = Filter {
        where_clause: Some(leaf()),
        where_document: None,
    };
    let whole = bincode::serialize(&shallow).unwrap();
    let child = bincode::serialize(&leaf()).unwrap();
    let at = whole
        .windows(child.len())
        .position(|w| w == child.as_slice())
        .unwrap();
    let header = and_header();
    let mut out = whole[..at].to_vec();
    out.reserve(levels * header.len() + whole.len());
    for _ in 0..levels {
        out.extend_from_slice(&header);
    }
    out.extend_from_slice(&whole[at..]);
    out
}

/// A filter nested exactly `levels` `$and`s deep, built as a value.
fn nested(levels: usize) -> Filter {
    let mut w = leaf();
    for _ in 0..levels {
        w = Where::And(vec![w]);
    }
    Filter {
        where_clause: Some(w),
        where_document: None,
    }
}

#[test]
fn a_filter_nested_far_past_the_stack_is_refused_not_overflowed() {
    for levels in [MAX_FILTER_DEPTH + 1, 1_000, 300_000, 2_000_000] {
        let bytes = deep_filter_bytes(levels);
        let err = bincode::deserialize::<Filter>(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("MAX_FILTER_DEPTH"),
            "{levels}: {err}"
        );
    }
    // The decoder's depth counter is restored after the error: a normal
    // filter decodes on this thread afterwards.
    let ok = bincode::serialize(&nested(3)).unwrap();
    assert_eq!(bincode::deserialize::<Filter>(&ok).unwrap(), nested(3));
}

#[test]
fn the_deepest_filter_json_accepts_decodes_again() {
    let mut w = json!({"#document": {"$regex": "a+"}});
    for _ in 0..MAX_FILTER_DEPTH {
        w = json!({"$and": [w, {"k": 1}]});
    }
    let f = Filter::parse(Some(&w), None).unwrap();
    let back: Filter = bincode::deserialize(&bincode::serialize(&f).unwrap()).unwrap();
    assert_eq!(back, f);
    let deeper = json!({"$and": [w, {"k": 1}]});
    let err = Filter::parse(Some(&deeper), None).unwrap_err();
    assert!(err.to_string().contains("MAX_FILTER_DEPTH"), "{err}");
    // A value one level over, built in code, is refused by decoding too.
    let over = bincode::serialize(&nested(MAX_FILTER_DEPTH + 1)).unwrap();
    assert!(bincode::deserialize::<Filter>(&over).is_err());
    assert!(bincode::deserialize::<Filter>(
        &bincode::serialize(&nested(MAX_FILTER_DEPTH)).unwrap()
    )
    .is_ok());
}

#[test]
fn too_many_regexes_are_refused_before_they_are_compiled() {
    let regexes =
        |n: usize| -> Vec<Value> { (0..n).map(|i| json!({"$regex": format!("x{i}")})).collect() };
    let ok = Filter::parse(None, Some(&json!({"$or": regexes(MAX_REGEXES)}))).unwrap();
    assert!(bincode::deserialize::<Filter>(&bincode::serialize(&ok).unwrap()).is_ok());
    let err = Filter::parse(None, Some(&json!({"$or": regexes(MAX_REGEXES + 1)}))).unwrap_err();
    assert!(err.to_string().contains("MAX_REGEXES"), "{err}");
    // Split over both clauses, the count is still per filter.
    let half = MAX_REGEXES / 2 + 1;
    let in_where: Vec<Value> = (0..half)
        .map(|i| json!({"#document": {"$regex": format!("y{i}")}}))
        .collect();
    let err = Filter::parse(
        Some(&json!({"$or": in_where})),
        Some(&json!({"$or": regexes(half)})),
    )
    .unwrap_err();
    assert!(err.to_string().contains("MAX_REGEXES"), "{err}");
    // Built in code past the parser, the decoder refuses it.
    let many = Filter {
        where_clause: None,
        where_document: Some(WhereDocument::Or(
            (0..MAX_REGEXES + 1)
                .map(|i| WhereDocument::Regex(super::DocRegex::new(&format!("z{i}")).unwrap()))
                .collect(),
        )),
    };
    let err = bincode::deserialize::<Filter>(&bincode::serialize(&many).unwrap()).unwrap_err();
    assert!(err.to_string().contains("MAX_REGEXES"), "{err}");
}

#[test]
fn huge_and_oversized_regexes_are_refused() {
    let long = "a".repeat(crate::limits::MAX_REGEX_PATTERN_BYTES + 1);
    let err = Filter::parse(None, Some(&json!({"$regex": long}))).unwrap_err();
    assert!(err.to_string().contains("MAX_REGEX_PATTERN_BYTES"), "{err}");
    // Short, but compiles far past the size limit.
    let err = Filter::parse(None, Some(&json!({"$regex": "(a{1000}){1000}"}))).unwrap_err();
    assert!(err.to_string().contains("size limit"), "{err}");
}

#[test]
fn in_lists_and_terms_are_bounded() {
    let list: Vec<i64> = (0..MAX_IN_VALUES as i64).collect();
    assert!(Filter::parse(Some(&json!({"k": {"$in": list}})), None).is_ok());
    let list: Vec<i64> = (0..=MAX_IN_VALUES as i64).collect();
    let err = Filter::parse(Some(&json!({"k": {"$nin": list}})), None).unwrap_err();
    assert!(err.to_string().contains("MAX_IN_VALUES"), "{err}");
    // Many lists that each fit, over the total.
    let lists: Vec<Value> = (0..(MAX_FILTER_TERMS / MAX_IN_VALUES) + 1)
        .map(|i| json!({format!("k{i}"): {"$in": (0..MAX_IN_VALUES as i64).collect::<Vec<_>>()}}))
        .collect();
    let err = Filter::parse(Some(&json!({"$or": lists})), None).unwrap_err();
    assert!(err.to_string().contains("MAX_FILTER_TERMS"), "{err}");
    let wide: Vec<Value> = (0..=MAX_FILTER_TERMS).map(|i| json!({"k": i})).collect();
    let err = Filter::parse(Some(&json!({"$or": wide})), None).unwrap_err();
    assert!(err.to_string().contains("MAX_FILTER_TERMS"), "{err}");
}

/// Arbitrary JSON, nested up to `depth`, with the filter language's keys
/// often enough that deep valid-looking filters come out.
fn json_value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z$#().*+{}]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 256, 4, |inner| {
        let key = prop_oneof![
            Just("$and".to_owned()),
            Just("$or".to_owned()),
            Just("$in".to_owned()),
            Just("$regex".to_owned()),
            Just("$contains".to_owned()),
            Just("#document".to_owned()),
            "[a-z$]{1,4}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key, inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes decode to a filter within the limits or to an error.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(f) = bincode::deserialize::<Filter>(&bytes) {
            prop_assert!(f.check_limits().is_ok());
        }
    }

    /// Valid encodings with bytes flipped: still an error or a filter in limits.
    #[test]
    fn corrupted_encodings_never_panic(
        levels in 0usize..(MAX_FILTER_DEPTH + 8),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = deep_filter_bytes(levels);
        for (at, b) in flips {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(f) = bincode::deserialize::<Filter>(&bytes) {
            prop_assert!(f.check_limits().is_ok());
        }
    }

    /// Deep nestings decode exactly when they are within the depth limit.
    #[test]
    fn deep_nestings_decode_iff_within_the_limit(levels in 0usize..5_000) {
        let result = bincode::deserialize::<Filter>(&deep_filter_bytes(levels));
        prop_assert_eq!(result.is_ok(), levels <= MAX_FILTER_DEPTH);
    }

    /// Parsing arbitrary JSON never panics; what parses is within the
    /// limits and survives a bincode round trip.
    #[test]
    fn parse_never_panics(w in json_value(8), d in json_value(8)) {
        if let Ok(f) = Filter::parse(Some(&w), Some(&d)) {
            prop_assert!(f.check_limits().is_ok());
            let back: Filter = bincode::deserialize(&bincode::serialize(&f).unwrap()).unwrap();
            prop_assert_eq!(back, f);
        }
    }
}
