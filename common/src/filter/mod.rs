//! The `where` / `where_document` filter language of Chroma (http-api.md,
//! Filters), one job per module: the typed AST (`ast.rs`), parsing and
//! validating JSON with Chroma's messages (`parse.rs`), evaluating against one
//! record (`eval.rs`), and property tests against an independent oracle
//! (`oracle_tests.rs`).
//!
//! Semantics follow Chroma 1.5.9; `eval.rs` lists the rules and where they
//! come from. A request's two clauses both apply: a record matches a
//! [`Filter`] when it matches its `where` and its `where_document`.

pub mod ast;
mod bounds;
mod eval;
mod parse;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod oracle_tests;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use crate::limits::MAX_FILTER_DEPTH as MAX_DEPTH;
pub use ast::{DocRegex, FieldOp, Number, Scalar, ScalarList, Where, WhereDocument};
pub use bounds::{RegexError, MAX_DECODE_NESTING};

use crate::error::CommonError;
use crate::record::Metadata;

/// A parsed `where` plus `where_document`; either may be absent. Every
/// `Filter` is within the limits of [`crate::limits`]: parsing and
/// deserializing both check them ([`Filter::check_limits`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(remote = "Filter")]
pub struct Filter {
    pub where_clause: Option<Where>,
    pub where_document: Option<WhereDocument>,
}

impl Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Filter::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Filter {
    /// Decodes inside a depth guard (the outermost level of a filter), then
    /// checks the whole filter against the limits.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let filter = {
            let _level = bounds::DecodeGuard::enter().map_err(D::Error::custom)?;
            Filter::deserialize(deserializer)?
        };
        filter.check_limits().map_err(D::Error::custom)?;
        Ok(filter)
    }
}

/// `None`, JSON `null` and `{}` all mean "no condition".
fn absent(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::Object(map)) => map.is_empty(),
        Some(_) => false,
    }
}

impl Filter {
    /// Parses the JSON of a request's `where` and `where_document` (either may
    /// be None or JSON null; `{}` means no filter).
    pub fn parse(
        where_json: Option<&serde_json::Value>,
        where_document_json: Option<&serde_json::Value>,
    ) -> Result<Filter, CommonError> {
        // One regex budget for both clauses: regexes are counted before
        // each is compiled.
        let mut budget = bounds::RegexBudget::default();
        let where_clause = match where_json {
            Some(v) if !absent(where_json) => Some(Where::from_json_counted(v, &mut budget)?),
            _ => None,
        };
        let where_document = match where_document_json {
            Some(v) if !absent(where_document_json) => {
                Some(WhereDocument::from_json_counted(v, &mut budget)?)
            }
            _ => None,
        };
        let filter = Filter {
            where_clause,
            where_document,
        };
        filter.check_limits()?;
        Ok(filter)
    }

    /// True when the filter has no condition (every record matches).
    pub fn is_empty(&self) -> bool {
        self.where_clause.is_none() && self.where_document.is_none()
    }

    /// Whether a record with this metadata and document passes both clauses.
    pub fn matches(&self, metadata: Option<&Metadata>, document: Option<&str>) -> bool {
        self.where_clause
            .as_ref()
            .is_none_or(|w| w.matches(metadata, document))
            && self
                .where_document
                .as_ref()
                .is_none_or(|d| d.matches(document))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::metadata_from_json;
    use serde_json::json;

    #[test]
    fn absent_clauses_are_no_filter() {
        for v in [None, Some(json!(null)), Some(json!({}))] {
            for d in [None, Some(json!(null)), Some(json!({}))] {
                let f = Filter::parse(v.as_ref(), d.as_ref()).unwrap();
                assert!(f.is_empty());
                assert_eq!(f, Filter::default());
                assert!(f.matches(None, None));
            }
        }
    }

    #[test]
    fn both_clauses_apply() {
        let f = Filter::parse(Some(&json!({"a": 1})), Some(&json!({"$contains": "cat"}))).unwrap();
        assert!(!f.is_empty());
        let m = metadata_from_json(&json!({"a": 1})).unwrap();
        assert!(f.matches(Some(&m), Some("a cat")));
        assert!(!f.matches(Some(&m), Some("a dog")));
        assert!(!f.matches(None, Some("a cat")));
        assert!(!f.matches(Some(&m), None));
    }

    #[test]
    fn each_clause_reports_its_own_errors() {
        let err = Filter::parse(Some(&json!({"a": {"$gt": "x"}})), None).unwrap_err();
        assert!(err.to_string().contains("operator $gt"));
        let err = Filter::parse(None, Some(&json!({"$contains": ""}))).unwrap_err();
        assert!(err.to_string().contains("non-empty str"));
        let err = Filter::parse(Some(&json!("x")), None).unwrap_err();
        assert!(err.to_string().contains("Expected where to be a dict"));
        let err = Filter::parse(None, Some(&json!([]))).unwrap_err();
        assert!(err
            .to_string()
            .contains("Expected where document to be a dictionary"));
    }

    #[test]
    fn bincode_round_trip_keeps_compiled_regex() {
        let f = Filter::parse(
            Some(&json!({"$or": [{"a": {"$in": [1.5, 2]}}, {"#document": {"$regex": "^c.t"}}]})),
            Some(&json!({"$and": [{"$not_regex": "dog$"}, {"$not_contains": "bird"}]})),
        )
        .unwrap();
        let bytes = bincode::serialize(&f).unwrap();
        let back: Filter = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, f);
        assert!(back.matches(None, Some("cat")));
        assert!(!back.matches(None, Some("cat dog")));
    }

    #[test]
    fn bincode_rejects_an_invalid_regex() {
        let f = Filter::parse(None, Some(&json!({"$regex": "a+"}))).unwrap();
        let mut bytes = bincode::serialize(&f).unwrap();
        // The pattern is the last two bytes; make it "a{" instead.
        let n = bytes.len();
        bytes[n - 1] = b'{';
        let err = bincode::deserialize::<Filter>(&bytes).unwrap_err();
        assert!(
            err.to_string().contains("invalid regex pattern \"a{\""),
            "{err}"
        );
    }
}
