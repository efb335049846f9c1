//! A new collection's configuration: Chroma's `configuration` object of the
//! create request plus the legacy `hnsw:*` metadata keys, resolved into the
//! index settings the shards use and the `configuration_json` the catalogue
//! stores and returns (http-api.md, "Collection model").

use common::catalog::validate_index_config;
use common::command::IndexConfig;
use common::{Metadata, MetadataValue, Space};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// HNSW fields Chroma's `HnswConfiguration` accepts on create.
const HNSW_FIELDS: &[&str] = &[
    "space",
    "ef_construction",
    "ef_search",
    "max_neighbors",
    "num_threads",
    "resize_factor",
    "sync_threshold",
    "batch_size",
];

/// Chroma's defaults for the HNSW fields we keep but do not use (the index
/// is hnsw_rs, which has no resize or sync thresholds); reported as Chroma
/// reports them so clients see the shape they expect.
const RESIZE_FACTOR: f64 = 1.2;
const SYNC_THRESHOLD: u64 = 1000;

/// What a create request resolves to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedConfig {
    pub index: IndexConfig,
    /// JSON text of the object the catalogue stores.
    pub configuration_json: String,
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("Could not parse config: {msg}"))
}

fn parse_space(text: &str) -> Result<Space, ApiError> {
    match text {
        "l2" => Ok(Space::L2),
        "cosine" => Ok(Space::Cosine),
        "ip" => Ok(Space::Ip),
        other => Err(invalid(format!(
            "unknown variant `{other}`, expected one of `l2`, `cosine`, `ip`"
        ))),
    }
}

fn space_name(space: Space) -> &'static str {
    match space {
        Space::L2 => "l2",
        Space::Cosine => "cosine",
        Space::Ip => "ip",
    }
}

fn positive(key: &str, value: &Value) -> Result<usize, ApiError> {
    value
        .as_u64()
        .filter(|n| *n >= 1)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("{key} must be a positive integer, got {value}")))
}

/// Applies the legacy metadata keys (`hnsw:space`, `hnsw:construction_ef`,
/// `hnsw:search_ef`, `hnsw:M`).
fn apply_legacy_metadata(index: &mut IndexConfig, metadata: &Metadata) -> Result<(), ApiError> {
    let int = |key: &str, v: &MetadataValue| match v {
        MetadataValue::Int(n) if *n >= 1 => Ok(*n as usize),
        other => Err(ApiError::invalid(format!(
            "Metadata key {key} must be a positive integer, got {}",
            other.to_json()
        ))),
    };
    for (key, value) in metadata {
        match key.as_str() {
            "hnsw:space" => match value {
                MetadataValue::Str(s) => index.space = parse_space(s)?,
                other => {
                    return Err(ApiError::invalid(format!(
                        "Metadata key hnsw:space must be one of l2, cosine, ip, got {}",
                        other.to_json()
                    )))
                }
            },
            "hnsw:construction_ef" => index.ef_construction = int(key, value)?,
            "hnsw:search_ef" => index.ef_search = int(key, value)?,
            "hnsw:M" => index.max_neighbors = int(key, value)?,
            _ => {}
        }
    }
    Ok(())
}

fn apply_hnsw(index: &mut IndexConfig, hnsw: &Map<String, Value>) -> Result<(), ApiError> {
    for (key, value) in hnsw {
        match key.as_str() {
            "space" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| invalid(format!("space must be a string, got {value}")))?;
                index.space = parse_space(text)?;
            }
            "ef_construction" => index.ef_construction = positive(key, value)?,
            "ef_search" => index.ef_search = positive(key, value)?,
            "max_neighbors" => index.max_neighbors = positive(key, value)?,
            k if HNSW_FIELDS.contains(&k) => {
                if !value.is_null() && !value.is_number() {
                    return Err(invalid(format!("{k} must be a number, got {value}")));
                }
            }
            other => {
                let expected: Vec<String> = HNSW_FIELDS.iter().map(|f| format!("`{f}`")).collect();
                return Err(invalid(format!(
                    "unknown field `{other}`, expected one of {}",
                    expected.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// SPANN is Chroma's distributed index; we index with HNSW but honour its
/// space so a collection created for SPANN measures distances as asked.
fn apply_spann(index: &mut IndexConfig, spann: &Map<String, Value>) -> Result<(), ApiError> {
    if let Some(space) = spann.get("space").filter(|v| !v.is_null()) {
        let text = space
            .as_str()
            .ok_or_else(|| invalid(format!("space must be a string, got {space}")))?;
        index.space = parse_space(text)?;
    }
    Ok(())
}

fn section<'v>(
    config: &'v Map<String, Value>,
    key: &str,
) -> Result<Option<&'v Map<String, Value>>, ApiError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(invalid(format!("{key} must be an object, got {other}"))),
    }
}

fn embedding_function(config: Option<&Map<String, Value>>) -> Result<Value, ApiError> {
    match config.and_then(|c| c.get("embedding_function")) {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::Object(ef)) => match ef.get("type").and_then(Value::as_str) {
            Some("known" | "legacy" | "unknown") => Ok(Value::Object(ef.clone())),
            _ => Err(invalid(
                "embedding_function must have a type of known, legacy or unknown",
            )),
        },
        Some(other) => Err(invalid(format!(
            "embedding_function must be an object, got {other}"
        ))),
    }
}

/// Resolves a create request's `configuration` (JSON null, absent, or an
/// object) and `metadata` into the index settings and stored configuration.
/// The configuration's fields win over the legacy metadata keys.
pub fn resolve(
    configuration: Option<&Value>,
    metadata: Option<&Metadata>,
) -> Result<ResolvedConfig, ApiError> {
    let config = match configuration {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => return Err(invalid(format!("expected an object, got {other}"))),
    };
    if let Some(c) = config {
        if section(c, "hnsw")?.is_some() && section(c, "spann")?.is_some() {
            return Err(invalid("hnsw and spann cannot both be provided"));
        }
    }
    let mut index = IndexConfig::default();
    if let Some(m) = metadata {
        apply_legacy_metadata(&mut index, m)?;
    }
    let mut extra_hnsw = Map::new();
    if let Some(c) = config {
        if let Some(h) = section(c, "hnsw")? {
            apply_hnsw(&mut index, h)?;
            extra_hnsw = h.clone();
        }
        if let Some(s) = section(c, "spann")? {
            apply_spann(&mut index, s)?;
        }
    }
    validate_index_config(&index)?;
    let mut hnsw = json!({
        "space": space_name(index.space),
        "ef_construction": index.ef_construction,
        "ef_search": index.ef_search,
        "max_neighbors": index.max_neighbors,
        "resize_factor": RESIZE_FACTOR,
        "sync_threshold": SYNC_THRESHOLD,
    });
    // Fields we accept but do not interpret are kept as given.
    for (k, v) in extra_hnsw {
        if let Some(obj) = hnsw.as_object_mut() {
            obj.entry(k).or_insert(v);
        }
    }
    let stored = json!({
        "hnsw": hnsw,
        "spann": null,
        "embedding_function": embedding_function(config)?,
    });
    Ok(ResolvedConfig {
        index,
        configuration_json: stored.to_string(),
    })
}

/// Whether the server embeds a collection's documents itself, from the
/// `embedding_function` of its stored configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentEmbedding {
    /// Chroma's default, all-MiniLM-L6-v2 (`{"type": "known", "name":
    /// "default"}`, or `sentence_transformer` with that model).
    MiniLm,
    /// None the server can compute; says what the collection has, for the
    /// error message.
    Unavailable(String),
}

const MINILM_NAMES: &[&str] = &["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"];

pub fn document_embedding(configuration_json: &str) -> DocumentEmbedding {
    let config: Value = serde_json::from_str(configuration_json).unwrap_or(Value::Null);
    let ef = &config["embedding_function"];
    let kind = ef["type"].as_str();
    let name = ef["name"].as_str();
    match (kind, name) {
        (Some("known"), Some("default")) => DocumentEmbedding::MiniLm,
        (Some("known"), Some("sentence_transformer"))
            if ef["config"]["model_name"]
                .as_str()
                .is_some_and(|m| MINILM_NAMES.contains(&m)) =>
        {
            DocumentEmbedding::MiniLm
        }
        (Some("known"), Some(other)) => DocumentEmbedding::Unavailable(format!(
            "its embedding function '{other}' is not one this server computes (only Chroma's default, all-MiniLM-L6-v2)"
        )),
        (Some(t), _) => DocumentEmbedding::Unavailable(format!(
            "its embedding function is of type '{t}', which the server cannot compute"
        )),
        (None, _) => DocumentEmbedding::Unavailable(
            "it has no embedding function (configuration.embedding_function is null)".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(r: &ResolvedConfig) -> Value {
        serde_json::from_str(&r.configuration_json).unwrap()
    }

    #[test]
    fn defaults_are_chromas() {
        let r = resolve(None, None).unwrap();
        assert_eq!(r.index, IndexConfig::default());
        assert_eq!(
            stored(&r),
            json!({"hnsw": {"space": "l2", "ef_construction": 100, "ef_search": 100,
                "max_neighbors": 16, "resize_factor": 1.2, "sync_threshold": 1000},
                "spann": null, "embedding_function": null})
        );
    }

    #[test]
    fn configuration_wins_over_legacy_metadata() {
        let mut m = Metadata::new();
        m.insert("hnsw:space".into(), MetadataValue::Str("ip".into()));
        m.insert("hnsw:M".into(), MetadataValue::Int(32));
        let r = resolve(None, Some(&m)).unwrap();
        assert_eq!((r.index.space, r.index.max_neighbors), (Space::Ip, 32));
        let c = json!({"hnsw": {"space": "cosine", "ef_search": 7},
            "embedding_function": {"type": "known", "name": "default", "config": {}}});
        let r = resolve(Some(&c), Some(&m)).unwrap();
        assert_eq!(
            (r.index.space, r.index.ef_search, r.index.max_neighbors),
            (Space::Cosine, 7, 32)
        );
        assert_eq!(stored(&r)["embedding_function"]["name"], "default");
        let spann = json!({"spann": {"space": "ip"}});
        assert_eq!(resolve(Some(&spann), None).unwrap().index.space, Space::Ip);
    }

    #[test]
    fn bad_configurations_are_invalid_arguments() {
        for bad in [
            json!({"hnsw": {"space": "hamming"}}),
            json!({"hnsw": {"ef_search": 0}}),
            json!({"hnsw": {"colour": 1}}),
            json!({"hnsw": {}, "spann": {}}),
            json!({"hnsw": 3}),
            json!({"embedding_function": {"name": "x"}}),
            json!([1]),
        ] {
            assert!(
                matches!(resolve(Some(&bad), None), Err(ApiError::InvalidArgument(_))),
                "{bad}"
            );
        }
        let mut m = Metadata::new();
        m.insert("hnsw:space".into(), MetadataValue::Int(1));
        assert!(resolve(None, Some(&m)).is_err());
    }

    #[test]
    fn which_collections_embed_documents() {
        let with = |ef: Value| json!({"hnsw": {}, "embedding_function": ef}).to_string();
        assert_eq!(
            document_embedding(&with(
                json!({"type": "known", "name": "default", "config": {}})
            )),
            DocumentEmbedding::MiniLm
        );
        assert_eq!(
            document_embedding(&with(
                json!({"type": "known", "name": "sentence_transformer",
                "config": {"model_name": "all-MiniLM-L6-v2"}})
            )),
            DocumentEmbedding::MiniLm
        );
        for other in [
            json!({"type": "known", "name": "openai", "config": {}}),
            json!({"type": "known", "name": "sentence_transformer", "config": {"model_name": "x"}}),
            json!({"type": "legacy"}),
            Value::Null,
        ] {
            assert!(
                matches!(
                    document_embedding(&with(other.clone())),
                    DocumentEmbedding::Unavailable(_)
                ),
                "{other}"
            );
        }
        assert!(matches!(
            document_embedding("not json"),
            DocumentEmbedding::Unavailable(_)
        ));
    }
}
