//! JSON → [`Where`] / [`WhereDocument`], validating as Chroma does.
//!
//! Messages follow `validate_where` / `validate_where_document` in Chroma's
//! `chromadb/api/types.py`, so a user sees the same words as with Chroma. The
//! accepted language is Chroma's Rust server (`rust/types/src/where_parsing.rs`)
//! restricted by those Python checks: `$and`/`$or` need two or more children,
//! `$in`/`$nin` a non-empty list of one type, and document operands a non-empty
//! string. No input panics, and values in messages are printed bounded.

use serde_json::{Map, Value};

use super::ast::{DocRegex, FieldOp, Number, Scalar, ScalarList, Where, WhereDocument};
use super::bounds::{RegexBudget, RegexError};
use crate::error::CommonError;
use crate::limits::{MAX_FILTER_DEPTH as MAX_DEPTH, MAX_IN_VALUES};

/// The key that addresses the document from inside `where`.
const DOCUMENT_KEY: &str = "#document";

const WHERE_OPERATORS: &str = "$gt, $gte, $lt, $lte, $ne, $eq, $in, $nin, $contains, $not_contains";
const DOCUMENT_OPERATORS: &str = "$contains, $not_contains, $regex, $not_regex, $and, $or";

impl Where {
    /// Parses one `where` clause. (`null` and `{}` are handled by
    /// [`super::Filter::parse`]; here `{}` is an error, as inside `$and`.)
    pub fn from_json(value: &Value) -> Result<Where, CommonError> {
        parse_where(value, 0, &mut RegexBudget::default())
    }

    /// Parses one `where` clause, counting its regexes into `budget`.
    pub(super) fn from_json_counted(
        value: &Value,
        budget: &mut RegexBudget,
    ) -> Result<Where, CommonError> {
        parse_where(value, 0, budget)
    }
}

impl WhereDocument {
    /// Parses one `where_document` clause.
    pub fn from_json(value: &Value) -> Result<WhereDocument, CommonError> {
        parse_where_document(value, 0, &mut RegexBudget::default())
    }

    /// Parses one `where_document` clause, counting its regexes into `budget`.
    pub(super) fn from_json_counted(
        value: &Value,
        budget: &mut RegexBudget,
    ) -> Result<WhereDocument, CommonError> {
        parse_where_document(value, 0, budget)
    }
}

fn invalid(msg: String) -> CommonError {
    CommonError::InvalidArgument(msg)
}

/// The only entry of a one-entry object, or `None`.
fn single_entry(obj: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut entries = obj.iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
}

/// The signature of the two clause parsers, for `$and` / `$or` lists.
type ClauseParser<T> = fn(&Value, usize, &mut RegexBudget) -> Result<T, CommonError>;

fn parse_where(
    value: &Value,
    depth: usize,
    budget: &mut RegexBudget,
) -> Result<Where, CommonError> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "Expected where to be nested at most {MAX_DEPTH} levels deep (MAX_FILTER_DEPTH)"
        )));
    }
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("Expected where to be a dict, got {}", show(value))))?;
    let (key, operand) = single_entry(obj).ok_or_else(|| {
        invalid(format!(
            "Expected where to have exactly one operator, got {}",
            show(value)
        ))
    })?;
    match key.as_str() {
        "$and" => parse_where_list(operand, depth, budget).map(Where::And),
        "$or" => parse_where_list(operand, depth, budget).map(Where::Or),
        DOCUMENT_KEY => parse_document_in_where(operand, budget),
        k if k.starts_with('$') => Err(invalid(format!(
            "Expected where key to be a metadata field name or a logical operator ($and, $or), got {k}"
        ))),
        _ => parse_field(key, operand).map(|op| Where::Field { key: key.clone(), op }),
    }
}

fn parse_where_list(
    operand: &Value,
    depth: usize,
    budget: &mut RegexBudget,
) -> Result<Vec<Where>, CommonError> {
    parse_logical_list(
        operand,
        depth,
        "where",
        "where expressions",
        parse_where,
        budget,
    )
}

/// The operand of `$and` / `$or`: a list of at least two clauses, each
/// parsed by `parse` one level deeper. `subject` and `items` name them in errors.
fn parse_logical_list<T>(
    operand: &Value,
    depth: usize,
    subject: &str,
    items_name: &str,
    parse: ClauseParser<T>,
    budget: &mut RegexBudget,
) -> Result<Vec<T>, CommonError> {
    let items = operand.as_array().ok_or_else(|| {
        invalid(format!(
            "Expected {subject} value for $and or $or to be a list of {items_name}, got {}",
            show(operand)
        ))
    })?;
    if items.len() < 2 {
        return Err(invalid(format!(
            "Expected {subject} value for $and or $or to be a list with at least two {items_name}, got {}",
            show(operand)
        )));
    }
    items
        .iter()
        .map(|item| parse(item, depth + 1, budget))
        .collect()
}

/// `{"key": value}` (equality shorthand) or `{"key": {"$op": operand}}`.
fn parse_field(key: &str, value: &Value) -> Result<FieldOp, CommonError> {
    match value {
        Value::Object(expr) => parse_operator_expression(value, expr),
        Value::String(_) | Value::Bool(_) | Value::Number(_) => scalar(value, "$eq").map(FieldOp::Eq),
        other => Err(invalid(format!(
            "Expected where value for key {key} to be a str, int, float, bool, or operator expression, got {}",
            show(other)
        ))),
    }
}

fn parse_operator_expression(
    value: &Value,
    expr: &Map<String, Value>,
) -> Result<FieldOp, CommonError> {
    let (operator, operand) = single_entry(expr).ok_or_else(|| {
        invalid(format!(
            "Expected operator expression to have exactly one operator, got {}",
            show(value)
        ))
    })?;
    let op = operator.as_str();
    match op {
        "$eq" => scalar(operand, op).map(FieldOp::Eq),
        "$ne" => scalar(operand, op).map(FieldOp::Ne),
        "$gt" => number(operand, op).map(FieldOp::Gt),
        "$gte" => number(operand, op).map(FieldOp::Gte),
        "$lt" => number(operand, op).map(FieldOp::Lt),
        "$lte" => number(operand, op).map(FieldOp::Lte),
        "$in" => scalar_list(operand, op).map(FieldOp::In),
        "$nin" => scalar_list(operand, op).map(FieldOp::Nin),
        "$contains" => scalar(operand, op).map(FieldOp::Contains),
        "$not_contains" => scalar(operand, op).map(FieldOp::NotContains),
        "$regex" | "$not_regex" => Err(invalid(format!(
            "Expected where operator to be one of {WHERE_OPERATORS}, got {op} ({op} applies only to {DOCUMENT_KEY})"
        ))),
        _ => Err(invalid(format!("Expected where operator to be one of {WHERE_OPERATORS}, got {op}"))),
    }
}

/// A JSON number as an operand: an `i64`, or a finite `f64`. Integers beyond
/// `i64` (serde_json keeps them as `u64`) are rejected, not rounded.
fn json_number(n: &serde_json::Number) -> Option<Number> {
    if let Some(i) = n.as_i64() {
        return Some(Number::Int(i));
    }
    if n.is_f64() {
        return n.as_f64().filter(|f| f.is_finite()).map(Number::Float);
    }
    None
}

fn out_of_range(operand: &Value, op: &str) -> CommonError {
    invalid(format!(
        "Expected operand value for operator {op} to be a 64-bit integer or a finite float, got {}",
        show(operand)
    ))
}

fn scalar(operand: &Value, op: &str) -> Result<Scalar, CommonError> {
    match operand {
        Value::String(s) => Ok(Scalar::Str(s.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Number(n) => match json_number(n) {
            Some(Number::Int(i)) => Ok(Scalar::Int(i)),
            Some(Number::Float(f)) => Ok(Scalar::Float(f)),
            None => Err(out_of_range(operand, op)),
        },
        other => Err(invalid(format!(
            "Expected operand value to be a str, int, float, or bool for operator {op}, got {}",
            show(other)
        ))),
    }
}

fn number(operand: &Value, op: &str) -> Result<Number, CommonError> {
    match operand {
        Value::Number(n) => json_number(n).ok_or_else(|| out_of_range(operand, op)),
        other => Err(invalid(format!(
            "Expected operand value to be an int or a float for operator {op}, got {}",
            show(other)
        ))),
    }
}

/// `$in` / `$nin`: a non-empty list of strings, of bools, or of numbers
/// (ints and floats may mix; none is converted).
fn scalar_list(operand: &Value, op: &str) -> Result<ScalarList, CommonError> {
    let items = operand.as_array().ok_or_else(|| {
        invalid(format!(
            "Expected operand value to be a list for operator {op}, got {}",
            show(operand)
        ))
    })?;
    if items.len() > MAX_IN_VALUES {
        return Err(invalid(format!(
            "Expected {op} to hold at most {MAX_IN_VALUES} values, got {} (MAX_IN_VALUES)",
            items.len()
        )));
    }
    let bad = || {
        invalid(format!(
            "Expected where operand value to be a non-empty list, and all values to be of the same type, got {}",
            show(operand)
        ))
    };
    match items.first() {
        None => Err(bad()),
        Some(Value::String(_)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(ScalarList::Str),
        Some(Value::Bool(_)) => items
            .iter()
            .map(|v| v.as_bool().ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(ScalarList::Bool),
        Some(Value::Number(_)) => items
            .iter()
            .map(|v| match v {
                Value::Number(n) => json_number(n).ok_or_else(|| out_of_range(v, op)),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()
            .map(ScalarList::Number),
        Some(_) => Err(bad()),
    }
}

/// `{"#document": {"$contains" | "$not_contains" | "$regex" | "$not_regex": "s"}}`.
fn parse_document_in_where(value: &Value, budget: &mut RegexBudget) -> Result<Where, CommonError> {
    let expr = value.as_object().ok_or_else(|| {
        invalid(format!(
            "Expected where value for {DOCUMENT_KEY} to be an operator expression, got {}",
            show(value)
        ))
    })?;
    let (operator, operand) = single_entry(expr).ok_or_else(|| {
        invalid(format!(
            "Expected operator expression to have exactly one operator, got {}",
            show(value)
        ))
    })?;
    let op = operator.as_str();
    if !matches!(op, "$contains" | "$not_contains" | "$regex" | "$not_regex") {
        return Err(invalid(format!(
            "Expected where operator on {DOCUMENT_KEY} to be one of $contains, $not_contains, $regex, $not_regex, got {op}"
        )));
    }
    if !operand.is_string() {
        return Err(invalid(format!(
            "Expected operand value to be a str for operator {op} on {DOCUMENT_KEY}, got {}",
            show(operand)
        )));
    }
    document_leaf(op, operand, budget).map(Where::Document)
}

fn parse_where_document(
    value: &Value,
    depth: usize,
    budget: &mut RegexBudget,
) -> Result<WhereDocument, CommonError> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "Expected where document to be nested at most {MAX_DEPTH} levels deep (MAX_FILTER_DEPTH)"
        )));
    }
    let obj = value.as_object().ok_or_else(|| {
        invalid(format!(
            "Expected where document to be a dictionary, got {}",
            show(value)
        ))
    })?;
    let (operator, operand) = single_entry(obj).ok_or_else(|| {
        invalid(format!(
            "Expected where document to have exactly one operator, got {}",
            show(value)
        ))
    })?;
    match operator.as_str() {
        "$and" => parse_where_document_list(operand, depth, budget).map(WhereDocument::And),
        "$or" => parse_where_document_list(operand, depth, budget).map(WhereDocument::Or),
        op @ ("$contains" | "$not_contains" | "$regex" | "$not_regex") => {
            document_leaf(op, operand, budget)
        }
        op => Err(invalid(format!(
            "Expected where document operator to be one of {DOCUMENT_OPERATORS}, got {op}"
        ))),
    }
}

fn parse_where_document_list(
    operand: &Value,
    depth: usize,
    budget: &mut RegexBudget,
) -> Result<Vec<WhereDocument>, CommonError> {
    parse_logical_list(
        operand,
        depth,
        "document",
        "where document expressions",
        parse_where_document,
        budget,
    )
}

/// One document condition; `op` is one of the four leaf operators.
fn document_leaf(
    op: &str,
    operand: &Value,
    budget: &mut RegexBudget,
) -> Result<WhereDocument, CommonError> {
    let text = operand.as_str().ok_or_else(|| {
        invalid(format!(
            "Expected where document operand value for operator {op} to be a str, got {}",
            show(operand)
        ))
    })?;
    if text.is_empty() {
        return Err(invalid(format!(
            "Expected where document operand value for operator {op} to be a non-empty str"
        )));
    }
    let mut regex = || {
        budget.take()?;
        DocRegex::new(text).map_err(|e| match e {
            RegexError::TooLong(_) => {
                invalid(format!("Invalid regex pattern for operator {op}: {e}"))
            }
            RegexError::Invalid(_) => invalid(format!(
                "Invalid regex pattern {} for operator {op}: {e}",
                show(operand)
            )),
        })
    };
    Ok(match op {
        "$contains" => WhereDocument::Contains(text.to_owned()),
        "$not_contains" => WhereDocument::NotContains(text.to_owned()),
        "$regex" => WhereDocument::Regex(regex()?),
        _ => WhereDocument::NotRegex(regex()?),
    })
}

/// How much of a value an error message shows.
const SHOW_MAX_CHARS: usize = 200;
const SHOW_MAX_DEPTH: usize = 8;

/// Compact JSON of `value` for an error message, cut after about
/// [`SHOW_MAX_CHARS`] characters and [`SHOW_MAX_DEPTH`] levels, so neither a
/// huge nor a very deep value costs much.
pub(crate) fn show(value: &Value) -> String {
    let mut out = String::new();
    write_bounded(value, &mut out, 0);
    if out.len() > SHOW_MAX_CHARS {
        let mut cut = SHOW_MAX_CHARS;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

fn write_bounded(value: &Value, out: &mut String, depth: usize) {
    if out.len() > SHOW_MAX_CHARS {
        return;
    }
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) if depth >= SHOW_MAX_DEPTH && !items.is_empty() => {
            out.push_str("[...]")
        }
        Value::Object(map) if depth >= SHOW_MAX_DEPTH && !map.is_empty() => out.push_str("{...}"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if out.len() > SHOW_MAX_CHARS {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                write_bounded(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if out.len() > SHOW_MAX_CHARS {
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_bounded(item, out, depth + 1);
            }
            out.push('}');
        }
    }
}

/// A JSON string literal of at most about [`SHOW_MAX_CHARS`] characters of `s`.
fn write_string(s: &str, out: &mut String) {
    let mut end = s.len().min(SHOW_MAX_CHARS + 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&Value::String(s[..end].to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(v: Value) -> Where {
        Where::from_json(&v).unwrap_or_else(|e| panic!("{v} should parse: {e}"))
    }

    fn field(key: &str, op: FieldOp) -> Where {
        Where::Field {
            key: key.into(),
            op,
        }
    }

    /// The error message for `v`, which must not parse.
    fn where_err(v: Value) -> String {
        match Where::from_json(&v) {
            Ok(parsed) => panic!("{v} should be rejected, parsed as {parsed:?}"),
            Err(CommonError::InvalidArgument(msg)) => msg,
        }
    }

    fn doc_err(v: Value) -> String {
        match WhereDocument::from_json(&v) {
            Ok(parsed) => panic!("{v} should be rejected, parsed as {parsed:?}"),
            Err(CommonError::InvalidArgument(msg)) => msg,
        }
    }

    fn assert_has(msg: &str, parts: &[&str]) {
        for part in parts {
            assert!(
                msg.contains(part),
                "message {msg:?} should contain {part:?}"
            );
        }
    }

    #[test]
    fn equality_shorthand_for_every_scalar_type() {
        assert_eq!(
            w(json!({"a": "x"})),
            field("a", FieldOp::Eq(Scalar::Str("x".into())))
        );
        assert_eq!(w(json!({"a": 3})), field("a", FieldOp::Eq(Scalar::Int(3))));
        assert_eq!(
            w(json!({"a": -3})),
            field("a", FieldOp::Eq(Scalar::Int(-3)))
        );
        assert_eq!(
            w(json!({"a": 1.5})),
            field("a", FieldOp::Eq(Scalar::Float(1.5)))
        );
        assert_eq!(
            w(json!({"a": 1.0})),
            field("a", FieldOp::Eq(Scalar::Float(1.0)))
        );
        assert_eq!(
            w(json!({"a": true})),
            field("a", FieldOp::Eq(Scalar::Bool(true)))
        );
        assert_eq!(
            w(json!({"a": ""})),
            field("a", FieldOp::Eq(Scalar::Str(String::new())))
        );
    }

    #[test]
    fn every_field_operator() {
        assert_eq!(
            w(json!({"a": {"$eq": "x"}})),
            field("a", FieldOp::Eq(Scalar::Str("x".into())))
        );
        assert_eq!(
            w(json!({"a": {"$ne": false}})),
            field("a", FieldOp::Ne(Scalar::Bool(false)))
        );
        assert_eq!(
            w(json!({"a": {"$gt": 1}})),
            field("a", FieldOp::Gt(Number::Int(1)))
        );
        assert_eq!(
            w(json!({"a": {"$gte": 1.5}})),
            field("a", FieldOp::Gte(Number::Float(1.5)))
        );
        assert_eq!(
            w(json!({"a": {"$lt": -2}})),
            field("a", FieldOp::Lt(Number::Int(-2)))
        );
        assert_eq!(
            w(json!({"a": {"$lte": 0.25}})),
            field("a", FieldOp::Lte(Number::Float(0.25)))
        );
        assert_eq!(
            w(json!({"a": {"$in": ["x", "y"]}})),
            field(
                "a",
                FieldOp::In(ScalarList::Str(vec!["x".into(), "y".into()]))
            )
        );
        assert_eq!(
            w(json!({"a": {"$nin": [1, 2]}})),
            field(
                "a",
                FieldOp::Nin(ScalarList::Number(vec![Number::Int(1), Number::Int(2)]))
            )
        );
        assert_eq!(
            w(json!({"a": {"$in": [true]}})),
            field("a", FieldOp::In(ScalarList::Bool(vec![true])))
        );
        assert_eq!(
            w(json!({"a": {"$in": [0.5]}})),
            field(
                "a",
                FieldOp::In(ScalarList::Number(vec![Number::Float(0.5)]))
            )
        );
        assert_eq!(
            w(json!({"a": {"$contains": "x"}})),
            field("a", FieldOp::Contains(Scalar::Str("x".into())))
        );
        assert_eq!(
            w(json!({"a": {"$contains": 2.5}})),
            field("a", FieldOp::Contains(Scalar::Float(2.5)))
        );
        assert_eq!(
            w(json!({"a": {"$not_contains": 7}})),
            field("a", FieldOp::NotContains(Scalar::Int(7)))
        );
        assert_eq!(
            w(json!({"a": {"$not_contains": true}})),
            field("a", FieldOp::NotContains(Scalar::Bool(true)))
        );
    }

    #[test]
    fn mixed_int_and_float_list_keeps_exact_values() {
        assert_eq!(
            w(json!({"a": {"$in": [1.5, 2]}})),
            field(
                "a",
                FieldOp::In(ScalarList::Number(vec![Number::Float(1.5), Number::Int(2)]))
            )
        );
        assert_eq!(
            w(json!({"a": {"$nin": [i64::MAX, 1.5]}})),
            field(
                "a",
                FieldOp::Nin(ScalarList::Number(vec![
                    Number::Int(i64::MAX),
                    Number::Float(1.5)
                ]))
            )
        );
    }

    #[test]
    fn logical_operators_nest() {
        let parsed = w(json!({"$and": [{"a": 1}, {"$or": [{"b": "x"}, {"c": {"$gt": 2}}]}]}));
        assert_eq!(
            parsed,
            Where::And(vec![
                field("a", FieldOp::Eq(Scalar::Int(1))),
                Where::Or(vec![
                    field("b", FieldOp::Eq(Scalar::Str("x".into()))),
                    field("c", FieldOp::Gt(Number::Int(2))),
                ]),
            ])
        );
    }

    #[test]
    fn document_conditions_inside_where() {
        assert_eq!(
            w(json!({"#document": {"$contains": "cat"}})),
            Where::Document(WhereDocument::Contains("cat".into()))
        );
        assert_eq!(
            w(json!({"#document": {"$not_contains": "cat"}})),
            Where::Document(WhereDocument::NotContains("cat".into()))
        );
        assert_eq!(
            w(json!({"#document": {"$regex": "c.t"}})),
            Where::Document(WhereDocument::Regex(DocRegex::new("c.t").unwrap()))
        );
        assert_eq!(
            w(json!({"#document": {"$not_regex": "c.t"}})),
            Where::Document(WhereDocument::NotRegex(DocRegex::new("c.t").unwrap()))
        );
    }

    #[test]
    fn where_shape_errors() {
        assert_has(
            &where_err(json!([1])),
            &["Expected where to be a dict", "[1]"],
        );
        assert_has(&where_err(json!("a")), &["Expected where to be a dict"]);
        assert_has(
            &where_err(json!({})),
            &["Expected where to have exactly one operator, got {}"],
        );
        assert_has(
            &where_err(json!({"a": 1, "b": 2})),
            &[
                "Expected where to have exactly one operator",
                "\"a\": 1",
                "\"b\": 2",
            ],
        );
        assert_has(
            &where_err(json!({"$contains": "x"})),
            &["Expected where key to be a metadata field name or a logical operator ($and, $or), got $contains"],
        );
        assert_has(&where_err(json!({"$gt": 1})), &["got $gt"]);
    }

    #[test]
    fn where_value_errors() {
        assert_has(
            &where_err(json!({"a": null})),
            &["Expected where value for key a", "got null"],
        );
        assert_has(
            &where_err(json!({"a": [1, 2]})),
            &["operator expression", "got [1, 2]"],
        );
        assert_has(
            &where_err(json!({"a": {}})),
            &["Expected operator expression to have exactly one operator, got {}"],
        );
        assert_has(
            &where_err(json!({"a": {"$eq": 1, "$ne": 2}})),
            &[
                "Expected operator expression to have exactly one operator",
                "$eq",
                "$ne",
            ],
        );
        assert_has(
            &where_err(json!({"a": {"$foo": 1}})),
            &["Expected where operator to be one of $gt, $gte, $lt, $lte, $ne, $eq, $in, $nin, $contains, $not_contains, got $foo"],
        );
        assert_has(
            &where_err(json!({"a": {"$regex": "x"}})),
            &["got $regex", "only to #document"],
        );
        assert_has(
            &where_err(json!({"a": {"$not_regex": "x"}})),
            &["got $not_regex"],
        );
    }

    #[test]
    fn where_operand_errors() {
        for op in ["$gt", "$gte", "$lt", "$lte"] {
            assert_has(
                &where_err(json!({"a": {op: "2"}})),
                &[&format!(
                    "Expected operand value to be an int or a float for operator {op}, got \"2\""
                )],
            );
            assert_has(
                &where_err(json!({"a": {op: true}})),
                &["int or a float", "got true"],
            );
            assert_has(
                &where_err(json!({"a": {op: null}})),
                &["int or a float", "got null"],
            );
        }
        for op in ["$eq", "$ne", "$contains", "$not_contains"] {
            assert_has(
                &where_err(json!({"a": {op: [1]}})),
                &[&format!("Expected operand value to be a str, int, float, or bool for operator {op}, got [1]")],
            );
            assert_has(
                &where_err(json!({"a": {op: {"b": 1}}})),
                &["str, int, float, or bool", "{\"b\": 1}"],
            );
            assert_has(&where_err(json!({"a": {op: null}})), &["got null"]);
        }
        for op in ["$in", "$nin"] {
            assert_has(
                &where_err(json!({"a": {op: 1}})),
                &[&format!(
                    "Expected operand value to be a list for operator {op}, got 1"
                )],
            );
            let non_empty = "Expected where operand value to be a non-empty list, and all values to be of the same type";
            assert_has(&where_err(json!({"a": {op: []}})), &[non_empty, "got []"]);
            assert_has(
                &where_err(json!({"a": {op: [1, "x"]}})),
                &[non_empty, "[1, \"x\"]"],
            );
            assert_has(&where_err(json!({"a": {op: [true, 1]}})), &[non_empty]);
            assert_has(&where_err(json!({"a": {op: [1, true]}})), &[non_empty]);
            assert_has(&where_err(json!({"a": {op: ["x", null]}})), &[non_empty]);
            assert_has(&where_err(json!({"a": {op: [[1]]}})), &[non_empty]);
            assert_has(&where_err(json!({"a": {op: [{"b": 1}]}})), &[non_empty]);
        }
    }

    #[test]
    fn integers_beyond_i64_are_rejected_not_rounded() {
        let big = u64::MAX;
        assert_has(
            &where_err(json!({"a": big})),
            &["64-bit integer", &big.to_string()],
        );
        assert_has(
            &where_err(json!({"a": {"$gt": big}})),
            &["operator $gt", "64-bit integer"],
        );
        assert_has(
            &where_err(json!({"a": {"$in": [1, big]}})),
            &["operator $in", "64-bit integer"],
        );
        assert_eq!(
            w(json!({"a": i64::MIN})),
            field("a", FieldOp::Eq(Scalar::Int(i64::MIN)))
        );
    }

    #[test]
    fn logical_operator_errors() {
        for op in ["$and", "$or"] {
            assert_has(
                &where_err(json!({op: {"a": 1}})),
                &["Expected where value for $and or $or to be a list of where expressions, got {\"a\": 1}"],
            );
            let two = "Expected where value for $and or $or to be a list with at least two where expressions";
            assert_has(&where_err(json!({op: []})), &[two, "got []"]);
            assert_has(&where_err(json!({op: [{"a": 1}]})), &[two]);
            // Errors deep inside are reported as such.
            assert_has(
                &where_err(json!({op: [{"a": 1}, {"b": {"$gt": "x"}}]})),
                &["operator $gt", "got \"x\""],
            );
            assert_has(
                &where_err(json!({op: [{"a": 1}, {}]})),
                &["exactly one operator, got {}"],
            );
        }
    }

    #[test]
    fn document_in_where_errors() {
        assert_has(
            &where_err(json!({"#document": "cat"})),
            &["Expected where value for #document to be an operator expression, got \"cat\""],
        );
        assert_has(
            &where_err(json!({"#document": {"$eq": "cat"}})),
            &[
                "Expected where operator on #document to be one of",
                "got $eq",
            ],
        );
        assert_has(
            &where_err(json!({"#document": {"$contains": 42}})),
            &["Expected operand value to be a str for operator $contains on #document, got 42"],
        );
        assert_has(
            &where_err(json!({"#document": {"$contains": ""}})),
            &["non-empty str"],
        );
        assert_has(
            &where_err(json!({"#document": {"$regex": "a{"}})),
            &["Invalid regex pattern \"a{\""],
        );
    }

    #[test]
    fn where_document_every_operator() {
        let d = |v: Value| WhereDocument::from_json(&v).unwrap();
        assert_eq!(
            d(json!({"$contains": "x"})),
            WhereDocument::Contains("x".into())
        );
        assert_eq!(
            d(json!({"$not_contains": "x"})),
            WhereDocument::NotContains("x".into())
        );
        assert_eq!(
            d(json!({"$regex": "^x"})),
            WhereDocument::Regex(DocRegex::new("^x").unwrap())
        );
        assert_eq!(
            d(json!({"$not_regex": "^x"})),
            WhereDocument::NotRegex(DocRegex::new("^x").unwrap())
        );
        assert_eq!(
            d(
                json!({"$and": [{"$contains": "x"}, {"$or": [{"$contains": "y"}, {"$regex": "z"}]}]})
            ),
            WhereDocument::And(vec![
                WhereDocument::Contains("x".into()),
                WhereDocument::Or(vec![
                    WhereDocument::Contains("y".into()),
                    WhereDocument::Regex(DocRegex::new("z").unwrap()),
                ]),
            ])
        );
    }

    #[test]
    fn where_document_errors() {
        assert_has(
            &doc_err(json!("x")),
            &["Expected where document to be a dictionary, got \"x\""],
        );
        assert_has(
            &doc_err(json!({})),
            &["Expected where document to have exactly one operator, got {}"],
        );
        assert_has(
            &doc_err(json!({"$contains": "a", "$regex": "b"})),
            &["Expected where document to have exactly one operator"],
        );
        assert_has(
            &doc_err(json!({"$lt": {"$nested": 2}})),
            &["Expected where document operator to be one of $contains, $not_contains, $regex, $not_regex, $and, $or, got $lt"],
        );
        for op in ["$contains", "$not_contains", "$regex", "$not_regex"] {
            assert_has(
                &doc_err(json!({op: 2})),
                &[&format!(
                    "Expected where document operand value for operator {op} to be a str, got 2"
                )],
            );
            assert_has(&doc_err(json!({op: []})), &["to be a str, got []"]);
            assert_has(&doc_err(json!({op: {"text": "hello"}})), &["to be a str"]);
            assert_has(
                &doc_err(json!({op: ""})),
                &[&format!(
                    "Expected where document operand value for operator {op} to be a non-empty str"
                )],
            );
        }
        for op in ["$and", "$or"] {
            assert_has(
                &doc_err(json!({op: {"$contains": "x"}})),
                &["Expected document value for $and or $or to be a list of where document expressions"],
            );
            let two = "Expected document value for $and or $or to be a list with at least two where document expressions";
            assert_has(&doc_err(json!({op: []})), &[two]);
            assert_has(&doc_err(json!({op: [{"$contains": "x"}]})), &[two]);
            assert_has(
                &doc_err(json!({op: [{"$contains": "x"}, {"$unsupported": "x"}]})),
                &["got $unsupported"],
            );
        }
    }

    #[test]
    fn invalid_regex_is_named() {
        let msg = doc_err(json!({"$regex": "a{"}));
        assert_has(
            &msg,
            &[
                "Invalid regex pattern \"a{\" for operator $regex",
                "unclosed counted repetition",
            ],
        );
        // Look-around is not supported by the regex crate, nor by Chroma.
        assert_has(
            &doc_err(json!({"$not_regex": "(?<=a)b"})),
            &["Invalid regex pattern", "$not_regex"],
        );
    }

    #[test]
    fn deep_nesting_is_rejected_without_overflow() {
        let mut where_value = json!({"a": 1});
        let mut doc_value = json!({"$contains": "x"});
        for _ in 0..(MAX_DEPTH + 50) {
            where_value = json!({"$and": [where_value, {"a": 1}]});
            doc_value = json!({"$or": [doc_value, {"$contains": "x"}]});
        }
        assert_has(&where_err(where_value), &["nested at most"]);
        assert_has(&doc_err(doc_value), &["nested at most"]);

        let mut ok = json!({"a": 1});
        for _ in 0..MAX_DEPTH {
            ok = json!({"$or": [ok, {"a": 2}]});
        }
        assert!(Where::from_json(&ok).is_ok());
    }

    #[test]
    fn shown_values_are_bounded() {
        let long = "é".repeat(10_000);
        let msg = where_err(json!({"a": {"$gt": long}}));
        assert!(msg.len() < 400, "message too long: {} bytes", msg.len());
        assert!(msg.ends_with("..."));

        let many: Vec<Value> = (0..10_000).map(|i| json!([i, "x"])).collect();
        let msg = where_err(json!({"a": {"$in": many}}));
        assert!(msg.len() < 400, "message too long: {} bytes", msg.len());

        let mut deep = json!(1);
        for _ in 0..1_000 {
            deep = json!([deep]);
        }
        let msg = where_err(json!({"a": {"$eq": deep}}));
        assert!(msg.contains("[...]"));
    }
}
