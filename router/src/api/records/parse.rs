//! Parsing and validating the bodies of the record endpoints (http-api.md,
//! "Records" and "The seed's rules for writes"). Everything a shard would
//! refuse for the request's own sake is refused here, before anything is
//! proposed, so a bad request writes nothing anywhere.

use std::collections::HashSet;

use base64::Engine;
use common::catalog::CatalogError;
use common::command::{MetadataPatch, RecordWrite};
use common::limits;
use common::read::Include;
use common::record::validate_metadata_key;
use common::{Filter, MetadataValue};
use serde_json::{Map, Value};

use crate::api::body::{self, kind};
use crate::error::ApiError;
use crate::records::Selection;

/// The record fields of an add / upsert / update body, lengths checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteBatch {
    pub ids: Vec<String>,
    /// Per id; `None` items are ids the request sent no embedding for.
    pub embeddings: Option<Vec<Option<Vec<f32>>>>,
    pub metadatas: Option<Vec<Option<MetadataPatch>>>,
    pub documents: Option<Vec<Option<String>>>,
    pub uris: Option<Vec<Option<String>>>,
}

impl WriteBatch {
    /// One record per id, with what the request sent for it.
    pub fn into_records(self) -> Vec<RecordWrite> {
        let mut embeddings = self.embeddings.map(Vec::into_iter);
        let mut metadatas = self.metadatas.map(Vec::into_iter);
        let mut documents = self.documents.map(Vec::into_iter);
        let mut uris = self.uris.map(Vec::into_iter);
        let mut out = Vec::with_capacity(self.ids.len());
        for id in self.ids {
            out.push(RecordWrite {
                id,
                embedding: embeddings.as_mut().and_then(Iterator::next).flatten(),
                metadata: metadatas.as_mut().and_then(Iterator::next).flatten(),
                document: documents.as_mut().and_then(Iterator::next).flatten(),
                uri: uris.as_mut().and_then(Iterator::next).flatten(),
            });
        }
        out
    }

    /// The dimension the batch's embeddings share, if it has any; 400 when
    /// they differ.
    pub fn dimension(&self) -> Result<Option<u32>, ApiError> {
        shared_dimension(self.embeddings.iter().flatten().flatten())
    }
}

/// The dimension every embedding has (`None` for no embeddings); 400 naming
/// the first two that differ.
pub fn shared_dimension<'e>(
    embeddings: impl Iterator<Item = &'e Vec<f32>>,
) -> Result<Option<u32>, ApiError> {
    let mut dims = embeddings.map(Vec::len);
    let Some(first) = dims.next() else {
        return Ok(None);
    };
    if let Some(other) = dims.find(|d| *d != first) {
        return Err(CatalogError::dimension_mismatch(first as u32, other as u32).into());
    }
    Ok(Some(first as u32))
}

fn list<'v>(map: &'v Map<String, Value>, key: &str) -> Result<Option<&'v Vec<Value>>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(ApiError::invalid(format!(
            "Expected {key} to be a list, got {}",
            kind(other)
        ))),
    }
}

/// `key` as a list, each item parsed by `item`; absent or null is `None`.
fn items<T>(
    map: &Map<String, Value>,
    key: &str,
    item: impl Fn(&Value) -> Result<T, ApiError>,
) -> Result<Option<Vec<T>>, ApiError> {
    list(map, key)?
        .map(|values| values.iter().map(&item).collect())
        .transpose()
}

/// A list of strings (`ids`).
pub fn string_list(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, ApiError> {
    items(map, key, |v| match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(ApiError::invalid(format!(
            "Expected each of {key} to be a string, got {}",
            kind(other)
        ))),
    })
}

/// A list whose items are strings or null (`documents`, `uris`).
fn optional_strings(
    map: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<Option<String>>>, ApiError> {
    items(map, key, |v| match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(ApiError::invalid(format!(
            "Expected each of {key} to be a string or null, got {}",
            kind(other)
        ))),
    })
}

fn finite(values: Vec<f32>) -> Result<Vec<f32>, ApiError> {
    if values.is_empty() {
        return Err(ApiError::invalid("Expected each embedding to be non-empty"));
    }
    if values.iter().any(|x| !x.is_finite()) {
        return Err(ApiError::invalid(
            "Expected each embedding value to be a finite number (no NaN or infinity)",
        ));
    }
    Ok(values)
}

/// One embedding: a JSON list of numbers, or base64 of little-endian f32s.
pub fn embedding(v: &Value) -> Result<Vec<f32>, ApiError> {
    match v {
        Value::Array(items) => finite(
            items
                .iter()
                .map(|x| {
                    x.as_f64().map(|f| f as f32).ok_or_else(|| {
                        ApiError::invalid(format!(
                            "Expected embedding values to be numbers, got {}",
                            kind(x)
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Value::String(text) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| ApiError::invalid(format!("Invalid base64 embedding: {e}")))?;
            if bytes.len() % 4 != 0 {
                return Err(ApiError::invalid(format!(
                    "Invalid base64 embedding: {} bytes is not a whole number of f32 values",
                    bytes.len()
                )));
            }
            finite(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        other => Err(ApiError::invalid(format!(
            "Expected each embedding to be a list of numbers or a base64 string, got {}",
            kind(other)
        ))),
    }
}

/// A list of embeddings whose items may be null (writes).
fn optional_embeddings(
    map: &Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<Option<Vec<f32>>>>, ApiError> {
    items(map, key, |v| match v {
        Value::Null => Ok(None),
        v => embedding(v).map(Some),
    })
}

/// A list of embeddings, none null (queries).
pub fn embeddings(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<Vec<f32>>>, ApiError> {
    items(map, key, embedding)
}

/// One record's metadata as a patch: a null value removes the key (update,
/// upsert), as in Chroma.
fn metadata_patch(v: &Value) -> Result<Option<MetadataPatch>, ApiError> {
    let obj = match v {
        Value::Null => return Ok(None),
        Value::Object(o) => o,
        other => {
            return Err(ApiError::invalid(format!(
                "Expected each metadata to be a dict or null, got {}",
                kind(other)
            )))
        }
    };
    let mut patch = MetadataPatch::new();
    for (key, value) in obj {
        validate_metadata_key(key)?;
        let value = match value {
            Value::Null => None,
            v => Some(MetadataValue::from_json(key, v)?),
        };
        patch.insert(key.clone(), value);
    }
    Ok(Some(patch))
}

fn metadatas(map: &Map<String, Value>) -> Result<Option<Vec<Option<MetadataPatch>>>, ApiError> {
    items(map, "metadatas", metadata_patch)
}

/// 400 `DuplicateIDError` naming the repeated ids.
fn check_unique(ids: &[String]) -> Result<(), ApiError> {
    let mut seen = HashSet::with_capacity(ids.len());
    let mut dups: Vec<&str> = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) && !dups.contains(&id.as_str()) {
            dups.push(id);
        }
    }
    if dups.is_empty() {
        return Ok(());
    }
    Err(ApiError::DuplicateId(format!(
        "Expected IDs to be unique, found duplicates of: {}",
        dups.join(", ")
    )))
}

fn check_length<T>(name: &str, items: Option<&Vec<T>>, ids: usize) -> Result<(), ApiError> {
    match items {
        Some(items) if items.len() != ids => Err(ApiError::invalid(format!(
            "Number of {name} ({}) must match the number of ids ({ids})",
            items.len()
        ))),
        _ => Ok(()),
    }
}

/// The size limits of every record ([`common::limits`]); the shards check
/// the same again when they apply the write.
fn check_record_limits(batch: &WriteBatch) -> Result<(), ApiError> {
    for e in batch.embeddings.iter().flatten().flatten() {
        limits::check_embedding_dimension(e.len())?;
    }
    for m in batch.metadatas.iter().flatten().flatten() {
        limits::check_metadata(m.iter().map(|(k, v)| (k, v.as_ref())))?;
    }
    for d in batch.documents.iter().flatten().flatten() {
        limits::check_document(d)?;
    }
    for u in batch.uris.iter().flatten().flatten() {
        limits::check_uri(u)?;
    }
    Ok(())
}

/// Parses an add / upsert / update body.
pub fn write_batch(
    map: &Map<String, Value>,
    max_batch_size: usize,
) -> Result<WriteBatch, ApiError> {
    let ids =
        string_list(map, "ids")?.ok_or_else(|| ApiError::invalid("Missing required field: ids"))?;
    if ids.len() > max_batch_size {
        return Err(ApiError::BatchSizeExceeded(format!(
            "Cannot submit more than {max_batch_size} records at once, got {}",
            ids.len()
        )));
    }
    if let Some(empty) = ids.iter().position(String::is_empty) {
        return Err(ApiError::invalid(format!(
            "Expected IDs to be non-empty strings, got an empty id at position {empty}"
        )));
    }
    ids.iter().try_for_each(|id| limits::check_id(id))?;
    check_unique(&ids)?;
    let batch = WriteBatch {
        embeddings: optional_embeddings(map, "embeddings")?,
        metadatas: metadatas(map)?,
        documents: optional_strings(map, "documents")?,
        uris: optional_strings(map, "uris")?,
        ids,
    };
    let n = batch.ids.len();
    check_length("embeddings", batch.embeddings.as_ref(), n)?;
    check_length("metadatas", batch.metadatas.as_ref(), n)?;
    check_length("documents", batch.documents.as_ref(), n)?;
    check_length("uris", batch.uris.as_ref(), n)?;
    batch.dimension()?;
    check_record_limits(&batch)?;
    Ok(batch)
}

/// The `ids` of a get / query / delete body, within the limits.
pub fn select_ids(map: &Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    let ids = string_list(map, "ids")?;
    if let Some(ids) = &ids {
        limits::check_select_ids(ids)?;
    }
    Ok(ids)
}

/// The filter of a get / query / delete body.
pub fn filter(map: &Map<String, Value>) -> Result<Filter, ApiError> {
    Ok(Filter::parse(map.get("where"), map.get("where_document"))?)
}

/// Which records a get or delete body selects.
pub fn selection(map: &Map<String, Value>) -> Result<Selection, ApiError> {
    let limit = count(map, "limit")?;
    if let Some(l) = limit {
        limits::check_limit_offset("limit", l)?;
    }
    Ok(Selection {
        ids: select_ids(map)?,
        filter: filter(map)?,
        limit,
    })
}

/// An `include` list: which fields a get or query returns, and the list as
/// the response echoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub fields: Include,
    pub distances: bool,
    pub names: Vec<String>,
}

pub const GET_DEFAULT: &[&str] = &["metadatas", "documents"];
pub const QUERY_DEFAULT: &[&str] = &["metadatas", "documents", "distances"];

/// Parses `include`; `distances` only when `allow_distances` (query).
pub fn include(
    map: &Map<String, Value>,
    default: &[&str],
    allow_distances: bool,
) -> Result<Included, ApiError> {
    let names: Vec<String> = match map.get("include") {
        None | Some(Value::Null) => default.iter().map(|s| (*s).to_owned()).collect(),
        Some(_) => string_list(map, "include")?.unwrap_or_default(),
    };
    let mut out = Included {
        fields: Include::default(),
        distances: false,
        names: Vec::with_capacity(names.len()),
    };
    for name in names {
        match name.as_str() {
            "documents" => out.fields.documents = true,
            "embeddings" => out.fields.embeddings = true,
            "metadatas" => out.fields.metadatas = true,
            "uris" => out.fields.uris = true,
            "distances" if allow_distances => out.distances = true,
            other => {
                let allowed = if allow_distances {
                    "documents, embeddings, metadatas, distances, uris"
                } else {
                    "documents, embeddings, metadatas, uris"
                };
                return Err(ApiError::invalid(format!(
                    "Expected include item to be one of {allowed}, got {other}"
                )));
            }
        }
        if !out.names.contains(&name) {
            out.names.push(name);
        }
    }
    Ok(out)
}

/// `limit` / `offset` / `n_results` style fields.
pub fn count(map: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    body::opt_count(map, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn plain_and_base64_embeddings_are_equal() {
        let floats = [1.5f32, -2.0, 0.25];
        let b64 = base64::engine::general_purpose::STANDARD.encode(
            floats
                .iter()
                .flat_map(|f| f.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        let b = write_batch(
            &obj(json!({"ids": ["a", "b"], "embeddings": [[1.5, -2.0, 0.25], b64]})),
            10,
        )
        .unwrap();
        let e = b.embeddings.unwrap();
        assert_eq!(e[0], e[1]);
        assert_eq!(e[0].as_deref(), Some(&floats[..]));
    }

    #[test]
    fn write_rules() {
        let err = |v: Value| write_batch(&obj(v), 3).unwrap_err();
        assert!(matches!(
            err(json!({"ids": ["a", "a"]})),
            ApiError::DuplicateId(m) if m.contains("duplicates of: a")
        ));
        assert!(matches!(
            err(json!({"ids": ["a", "b", "c", "d"]})),
            ApiError::BatchSizeExceeded(_)
        ));
        for bad in [
            json!({"ids": ["a"], "embeddings": [[1.0], [2.0]]}),
            json!({"ids": ["a"], "documents": ["x", "y"]}),
            json!({"ids": ["a", "b"], "embeddings": [[1.0], [1.0, 2.0]]}),
            json!({"ids": ["a"], "embeddings": [[]]}),
            json!({"ids": ["a"], "embeddings": [["x"]]}),
            json!({"ids": ["a"], "embeddings": ["AAD"]}),
            json!({"ids": ["a"], "embeddings": ["AADAfw=="]}), // NaN as base64
            json!({"ids": ["a"], "embeddings": [[1e39]]}),     // overflows f32
            json!({"ids": ["a"], "metadatas": [{"#k": 1}]}),
            json!({"ids": ["a"], "metadatas": [{"k": []}]}),
            json!({"ids": [1]}),
            json!({"ids": [""]}),
            json!({"ids": "a"}),
            json!({}),
        ] {
            assert!(
                matches!(
                    write_batch(&obj(bad.clone()), 3),
                    Err(ApiError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
        let b = write_batch(
            &obj(json!({"ids": ["a"], "metadatas": [{"k": null, "j": 1}]})),
            3,
        )
        .unwrap();
        let patch = b.metadatas.unwrap()[0].clone().unwrap();
        assert_eq!(patch["k"], None);
        assert_eq!(patch["j"], Some(MetadataValue::Int(1)));
    }

    #[test]
    fn include_lists() {
        let i = include(&obj(json!({})), QUERY_DEFAULT, true).unwrap();
        assert!(i.distances && i.fields.documents && i.fields.metadatas && !i.fields.embeddings);
        let i = include(&obj(json!({"include": ["embeddings"]})), GET_DEFAULT, false).unwrap();
        assert_eq!(i.names, vec!["embeddings"]);
        assert!(include(&obj(json!({"include": ["distances"]})), GET_DEFAULT, false).is_err());
        assert!(include(&obj(json!({"include": ["data"]})), QUERY_DEFAULT, true).is_err());
    }
}
