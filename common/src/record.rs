//! Records and their metadata, as every replica stores them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CommonError;

/// One metadata value. Lists are homogeneous and non-empty (Chroma's rule).
///
/// Serde derives the externally tagged form so bincode can carry it between
/// processes; the JSON form of the HTTP API goes through `from_json`/`to_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    StrList(Vec<String>),
    IntList(Vec<i64>),
    FloatList(Vec<f64>),
    BoolList(Vec<bool>),
}

mod metadata;

/// Metadata of one record (or collection); iterates in key order, so hashing is ordered.
pub use metadata::Metadata;

impl MetadataValue {
    /// Parses one JSON metadata value. `key` is only used in error messages.
    pub fn from_json(key: &str, v: &Value) -> Result<Self, CommonError> {
        match v {
            Value::String(s) => Ok(MetadataValue::Str(s.clone())),
            Value::Bool(b) => Ok(MetadataValue::Bool(*b)),
            Value::Number(n) => number_value(key, n),
            Value::Array(items) => list_from_json(key, items),
            other => Err(CommonError::invalid(format!(
                "Expected metadata value for key '{key}' to be a str, int, float, bool, or a non-empty list of one of those types, got {other}"
            ))),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            MetadataValue::Str(s) => Value::from(s.clone()),
            MetadataValue::Int(i) => Value::from(*i),
            MetadataValue::Float(f) => Value::from(*f),
            MetadataValue::Bool(b) => Value::from(*b),
            MetadataValue::StrList(l) => Value::from(l.clone()),
            MetadataValue::IntList(l) => Value::from(l.clone()),
            MetadataValue::FloatList(l) => Value::from(l.clone()),
            MetadataValue::BoolList(l) => Value::from(l.clone()),
        }
    }

    /// Numeric view used by `$gt`..`$lte` and by int/float equality.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            MetadataValue::Int(i) => Some(*i as f64),
            MetadataValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Feeds a canonical byte form into `out`; used by the replica digest.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        fn list<T>(out: &mut Vec<u8>, tag: u8, items: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
            out.push(tag);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                f(out, item);
            }
        }
        fn string(out: &mut Vec<u8>, s: &String) {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        match self {
            MetadataValue::Str(s) => {
                out.push(1);
                string(out, s)
            }
            MetadataValue::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes())
            }
            MetadataValue::Float(f) => {
                out.push(3);
                out.extend_from_slice(&f.to_bits().to_le_bytes())
            }
            MetadataValue::Bool(b) => out.extend_from_slice(&[4, *b as u8]),
            MetadataValue::StrList(l) => list(out, 5, l, string),
            MetadataValue::IntList(l) => {
                list(out, 6, l, |o, i| o.extend_from_slice(&i.to_le_bytes()))
            }
            MetadataValue::FloatList(l) => list(out, 7, l, |o, f| {
                o.extend_from_slice(&f.to_bits().to_le_bytes())
            }),
            MetadataValue::BoolList(l) => list(out, 8, l, |o, b| o.push(*b as u8)),
        }
    }
}

fn number_value(key: &str, n: &serde_json::Number) -> Result<MetadataValue, CommonError> {
    if let Some(i) = n.as_i64() {
        return Ok(MetadataValue::Int(i));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && (n.is_f64()) => Ok(MetadataValue::Float(f)),
        _ => Err(CommonError::invalid(format!(
            "Metadata value for key '{key}' is out of range: {n}"
        ))),
    }
}

fn list_from_json(key: &str, items: &[Value]) -> Result<MetadataValue, CommonError> {
    let bad = || {
        CommonError::invalid(format!(
            "Expected metadata list for key '{key}' to be a non-empty list of one type (str, int, float or bool)"
        ))
    };
    let first = items.first().ok_or_else(bad)?;
    match first {
        Value::String(_) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(MetadataValue::StrList),
        Value::Bool(_) => items
            .iter()
            .map(|v| v.as_bool().ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(MetadataValue::BoolList),
        Value::Number(n) if n.is_i64() => items
            .iter()
            .map(|v| v.as_i64().ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(MetadataValue::IntList),
        Value::Number(_) => items
            .iter()
            .map(|v| v.as_f64().filter(|f| f.is_finite()).ok_or_else(bad))
            .collect::<Result<_, _>>()
            .map(MetadataValue::FloatList),
        _ => Err(bad()),
    }
}

/// Parses a JSON metadata object, applying Chroma's key rules.
pub fn metadata_from_json(v: &Value) -> Result<Metadata, CommonError> {
    let obj = v
        .as_object()
        .ok_or_else(|| CommonError::invalid(format!("Expected metadata to be a dict, got {v}")))?;
    let mut out = Metadata::new();
    for (key, value) in obj {
        validate_metadata_key(key)?;
        out.insert(key.clone(), MetadataValue::from_json(key, value)?);
    }
    Ok(out)
}

pub fn validate_metadata_key(key: &str) -> Result<(), CommonError> {
    if key.is_empty() {
        return Err(CommonError::invalid(
            "Expected metadata key to be a non-empty string",
        ));
    }
    if key.starts_with('#') || key.starts_with("chroma:") {
        return Err(CommonError::invalid(format!(
            "Expected metadata key to not start with '#' or 'chroma:', got {key}"
        )));
    }
    Ok(())
}

pub fn metadata_to_json(m: &Metadata) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_scalars_and_lists() {
        let m = metadata_from_json(
            &json!({"a": 1, "b": 2.5, "c": "x", "d": true, "e": [1, 2], "f": ["p"]}),
        )
        .unwrap();
        assert_eq!(m["a"], MetadataValue::Int(1));
        assert_eq!(m["b"], MetadataValue::Float(2.5));
        assert_eq!(m["e"], MetadataValue::IntList(vec![1, 2]));
        assert_eq!(m["f"], MetadataValue::StrList(vec!["p".into()]));
        assert_eq!(
            metadata_to_json(&m),
            json!({"a": 1, "b": 2.5, "c": "x", "d": true, "e": [1, 2], "f": ["p"]})
        );
    }

    #[test]
    fn rejects_bad_values_and_keys() {
        assert!(metadata_from_json(&json!({"a": []})).is_err());
        assert!(metadata_from_json(&json!({"a": [1, "x"]})).is_err());
        assert!(metadata_from_json(&json!({"a": {"b": 1}})).is_err());
        assert!(metadata_from_json(&json!({"#a": 1})).is_err());
        assert!(metadata_from_json(&json!({"chroma:x": 1})).is_err());
        assert!(metadata_from_json(&json!({"": 1})).is_err());
        assert!(metadata_from_json(&json!([1])).is_err());
    }
}
