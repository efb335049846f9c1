//! The typed form of a `where` / `where_document` filter.
//!
//! Every node is plain serde data (externally tagged enums, no `untagged`), so
//! a parsed filter travels between processes with bincode. Regexes are held
//! compiled in [`DocRegex`], which serializes as its pattern and compiles it
//! again on deserialize. Deserializing enforces the filter limits
//! (`bounds.rs`): nesting is counted level by level as it is decoded, so no
//! input can recurse deeper than the limit.

use std::fmt;

use regex::Regex;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bounds::{compile_regex, count_decoded_regex, DecodeGuard, RegexError};

/// A `where` clause: conditions on metadata fields, combined with `$and`/`$or`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Where")]
pub enum Where {
    /// `{"$and": [w, w, ...]}`: every child matches.
    And(Vec<Where>),
    /// `{"$or": [w, w, ...]}`: at least one child matches.
    Or(Vec<Where>),
    /// `{"key": value}` or `{"key": {"$op": operand}}`: one metadata field.
    Field { key: String, op: FieldOp },
    /// `{"#document": {"$contains": "s"}}` and the like: a condition on the
    /// document written inside `where`, as Chroma accepts. Always a leaf of
    /// [`WhereDocument`] (never `$and`/`$or`).
    Document(WhereDocument),
}

/// The comparison applied to one metadata field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FieldOp {
    Eq(Scalar),
    Ne(Scalar),
    Gt(Number),
    Gte(Number),
    Lt(Number),
    Lte(Number),
    In(ScalarList),
    Nin(ScalarList),
    /// The field is a list metadata value holding this element.
    Contains(Scalar),
    NotContains(Scalar),
}

/// A single operand value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The operand of `$gt`, `$gte`, `$lt`, `$lte`: a number, never a bool.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// The operand of `$in` / `$nin`: a non-empty list of one type. Numbers are
/// one type (ints and floats may mix, as Chroma's server accepts `[1.5, 2]`);
/// each keeps its exact value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScalarList {
    Str(Vec<String>),
    Number(Vec<Number>),
    Bool(Vec<bool>),
}

/// A `where_document` clause: conditions on the document text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "WhereDocument")]
pub enum WhereDocument {
    And(Vec<WhereDocument>),
    Or(Vec<WhereDocument>),
    /// Case-sensitive substring.
    Contains(String),
    NotContains(String),
    Regex(DocRegex),
    NotRegex(DocRegex),
}

// `Where` and `WhereDocument` derive their serde code in "remote" form
// (`Where::serialize(&w, s)`, `Where::deserialize(d)` as inherent functions);
// the trait impls below wrap them, deserialization inside a depth guard.
// Children (`Vec<Where>`) go through the trait impls, so every level is
// counted.

impl Serialize for Where {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Where::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Where {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let _level = DecodeGuard::enter().map_err(D::Error::custom)?;
        Where::deserialize(deserializer)
    }
}

impl Serialize for WhereDocument {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WhereDocument::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for WhereDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let _level = DecodeGuard::enter().map_err(D::Error::custom)?;
        WhereDocument::deserialize(deserializer)
    }
}

/// A regex compiled once, when the filter is parsed or deserialized.
///
/// Serializes as the pattern string; equality compares patterns.
#[derive(Clone)]
pub struct DocRegex(Regex);

impl DocRegex {
    /// Compiles `pattern` with the `regex` crate (the engine Chroma uses),
    /// within the pattern length and compiled size limits.
    pub fn new(pattern: &str) -> Result<Self, RegexError> {
        compile_regex(pattern).map(DocRegex)
    }

    pub fn pattern(&self) -> &str {
        self.0.as_str()
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

impl PartialEq for DocRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern() == other.pattern()
    }
}

impl fmt::Debug for DocRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DocRegex").field(&self.pattern()).finish()
    }
}

impl Serialize for DocRegex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.pattern())
    }
}

impl<'de> Deserialize<'de> for DocRegex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        count_decoded_regex().map_err(D::Error::custom)?;
        DocRegex::new(&pattern).map_err(|e| match e {
            RegexError::TooLong(_) => D::Error::custom(format!("invalid regex pattern: {e}")),
            RegexError::Invalid(_) => {
                D::Error::custom(format!("invalid regex pattern {pattern:?}: {e}"))
            }
        })
    }
}

impl Where {
    /// The metadata keys this clause reads, each once, in order of first
    /// appearance. `#document` conditions read no metadata key.
    pub fn referenced_keys(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        self.collect_keys(&mut keys);
        keys
    }

    fn collect_keys<'a>(&'a self, keys: &mut Vec<&'a str>) {
        match self {
            Where::And(children) | Where::Or(children) => {
                for child in children {
                    child.collect_keys(keys);
                }
            }
            Where::Field { key, .. } => {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
            Where::Document(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, op: FieldOp) -> Where {
        Where::Field {
            key: key.into(),
            op,
        }
    }

    #[test]
    fn referenced_keys_are_deduplicated_in_order() {
        let w = Where::And(vec![
            field("b", FieldOp::Eq(Scalar::Int(1))),
            Where::Or(vec![
                field("a", FieldOp::Gt(Number::Float(1.5))),
                field("b", FieldOp::Ne(Scalar::Str("x".into()))),
            ]),
            Where::Document(WhereDocument::Contains("doc".into())),
        ]);
        assert_eq!(w.referenced_keys(), vec!["b", "a"]);
    }

    #[test]
    fn doc_regex_compares_and_prints_its_pattern() {
        let a = DocRegex::new("a+b").unwrap();
        let b = DocRegex::new("a+b").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, DocRegex::new("a*b").unwrap());
        assert_eq!(format!("{a:?}"), "DocRegex(\"a+b\")");
        assert!(a.is_match("xaab"));
    }
}
