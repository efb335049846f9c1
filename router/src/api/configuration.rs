//! Chroma's collection configuration JSON (http-api.md, "Collection model")
//! and the typed values of `common::catalog` it stands for: the create
//! request's `configuration` (with the legacy `hnsw:*` metadata keys), a
//! modify's `new_configuration`, and the `configuration_json` every
//! collection response carries. The value rules themselves are
//! `common::catalog`'s, which the catalogue checks again.

use common::catalog::{
    not_a_positive_number, not_an_integer, validate_index_config, CatalogError,
    CollectionConfiguration, ConfigNumber, ConfigurationUpdate, EmbeddingFunction, HnswUpdate,
    SpannConfiguration, SpannUpdate,
};
use common::command::IndexConfig;
use common::{Metadata, MetadataValue, Space};
use serde_json::{Map, Number, Value};

pub use self::json::{
    ConfigurationJson, CreateConfiguration, HnswJson, SpannJson, UpdateConfiguration,
};
use crate::error::ApiError;

mod json;

/// The HNSW fields fixed at creation; with [`HNSW_UPDATABLE`], the fields
/// Chroma's `HnswConfiguration` accepts on create.
const HNSW_FIXED: &[&str] = &["space", "ef_construction"];
/// The HNSW fields an update may set (Chroma's `UpdateHnswConfiguration`).
const HNSW_UPDATABLE: &[&str] = &[
    "ef_search",
    "max_neighbors",
    "num_threads",
    "resize_factor",
    "sync_threshold",
    "batch_size",
];
/// The SPANN fields an update may set (Chroma's `UpdateSpannConfiguration`).
const SPANN_UPDATABLE: &[&str] = &["search_nprobe", "ef_search"];

/// The sections of `UpdateCollectionConfiguration`.
const UPDATE_SECTIONS: &[&str] = &["hnsw", "spann", "embedding_function"];

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    CatalogError::config(msg).into()
}

fn unknown_field<'a>(field: &str, expected: impl IntoIterator<Item = &'a &'a str>) -> ApiError {
    let expected: Vec<String> = expected.into_iter().map(|f| format!("`{f}`")).collect();
    invalid(format!(
        "unknown field `{field}`, expected one of {}",
        expected.join(", ")
    ))
}

/// A space name as Chroma's serde names the variants.
fn parse_space(text: &str) -> Result<Space, ApiError> {
    Space::parse(text).map_err(|_| {
        invalid(format!(
            "unknown variant `{text}`, expected one of {}",
            Space::names(|name| format!("`{name}`"))
        ))
    })
}

fn positive(key: &str, value: &Value) -> Result<usize, ApiError> {
    value
        .as_u64()
        .filter(|n| *n >= 1)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("{key} must be a positive integer, got {value}")))
}

fn config_number(n: &Number) -> ConfigNumber {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => ConfigNumber::Unsigned(u),
        (None, Some(i)) => ConfigNumber::Signed(i),
        // serde_json numbers are u64, i64 or finite f64.
        _ => ConfigNumber::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

fn number_json(n: ConfigNumber) -> Value {
    match n {
        ConfigNumber::Unsigned(u) => Value::from(u),
        ConfigNumber::Signed(i) => Value::from(i),
        ConfigNumber::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        ConfigNumber::Null => Value::Null,
    }
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
                        "Metadata key hnsw:space must be one of {}, got {}",
                        Space::names(|name| name.to_owned()),
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

/// The create request's `hnsw` fields we keep as given but do not use.
#[derive(Default)]
struct KeptHnsw {
    num_threads: Option<ConfigNumber>,
    batch_size: Option<ConfigNumber>,
}

fn apply_hnsw(
    index: &mut IndexConfig,
    kept: &mut KeptHnsw,
    hnsw: &Map<String, Value>,
) -> Result<(), ApiError> {
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
            k if HNSW_UPDATABLE.contains(&k) => {
                let number = match value {
                    Value::Null => Some(ConfigNumber::Null),
                    Value::Number(n) => Some(config_number(n)),
                    _ => return Err(invalid(format!("{k} must be a number, got {value}"))),
                };
                // Chroma reports its own resize and sync thresholds.
                match k {
                    "num_threads" => kept.num_threads = number,
                    "batch_size" => kept.batch_size = number,
                    _ => {}
                }
            }
            other => {
                return Err(unknown_field(
                    other,
                    HNSW_FIXED.iter().chain(HNSW_UPDATABLE),
                ))
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

fn embedding_function(
    config: Option<&Map<String, Value>>,
) -> Result<Option<EmbeddingFunction>, ApiError> {
    match config.and_then(|c| c.get("embedding_function")) {
        None | Some(Value::Null) => Ok(None),
        Some(ef @ Value::Object(fields)) => match fields.get("type").and_then(Value::as_str) {
            Some("known" | "legacy" | "unknown") => Ok(Some(EmbeddingFunction(ef.to_string()))),
            _ => Err(invalid(
                "embedding_function must have a type of known, legacy or unknown",
            )),
        },
        Some(other) => Err(invalid(format!(
            "embedding_function must be an object, got {other}"
        ))),
    }
}

/// A create request's `configuration` (JSON null, absent, or an object) and
/// `metadata`, resolved into the collection's configuration. The
/// configuration's fields win over the legacy metadata keys.
pub fn parse_create(
    configuration: Option<&Value>,
    metadata: Option<&Metadata>,
) -> Result<CollectionConfiguration, ApiError> {
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
    let mut kept = KeptHnsw::default();
    if let Some(c) = config {
        if let Some(h) = section(c, "hnsw")? {
            apply_hnsw(&mut index, &mut kept, h)?;
        }
        if let Some(s) = section(c, "spann")? {
            apply_spann(&mut index, s)?;
        }
    }
    validate_index_config(&index)?;
    let mut parsed = CollectionConfiguration::new(index);
    parsed.hnsw.num_threads = kept.num_threads;
    parsed.hnsw.batch_size = kept.batch_size;
    parsed.embedding_function = embedding_function(config)?;
    Ok(parsed)
}

/// An unsigned integer field of an update (its minimum is checked with the
/// other rules by [`ConfigurationUpdate::validate`]).
fn update_integer(section: &str, field: &str, value: &Value) -> Result<u64, ApiError> {
    value
        .as_u64()
        .ok_or_else(|| not_an_integer(section, field, value).into())
}

fn parse_hnsw_update(fields: &Map<String, Value>) -> Result<HnswUpdate, ApiError> {
    let mut update = HnswUpdate::default();
    for (field, value) in fields {
        let int = || update_integer("hnsw", field, value).map(Some);
        match field.as_str() {
            "ef_search" => update.ef_search = int()?,
            "max_neighbors" => update.max_neighbors = int()?,
            "num_threads" => update.num_threads = int()?,
            "sync_threshold" => update.sync_threshold = int()?,
            "batch_size" => update.batch_size = int()?,
            "resize_factor" => match value {
                Value::Number(n) => update.resize_factor = Some(config_number(n)),
                _ => return Err(not_a_positive_number("hnsw", field, value).into()),
            },
            other => return Err(unknown_field(other, HNSW_UPDATABLE)),
        }
    }
    Ok(update)
}

fn parse_spann_update(fields: &Map<String, Value>) -> Result<SpannUpdate, ApiError> {
    let mut update = SpannUpdate::default();
    for (field, value) in fields {
        let int = || update_integer("spann", field, value).map(Some);
        match field.as_str() {
            "search_nprobe" => update.search_nprobe = int()?,
            "ef_search" => update.ef_search = int()?,
            other => return Err(unknown_field(other, SPANN_UPDATABLE)),
        }
    }
    Ok(update)
}

/// A modify's `new_configuration` object (Chroma's
/// `UpdateCollectionConfiguration`, `#[serde(deny_unknown_fields)]`), checked
/// against every rule, ranges included: an over-large value is refused here
/// rather than capped by the catalogue.
pub fn parse_update(update: &Map<String, Value>) -> Result<ConfigurationUpdate, ApiError> {
    let mut parsed = ConfigurationUpdate::default();
    for (key, value) in update {
        if !UPDATE_SECTIONS.contains(&key.as_str()) {
            return Err(unknown_field(key, UPDATE_SECTIONS));
        }
        if value.is_null() {
            continue;
        }
        if key == "embedding_function" {
            if !value.is_object() {
                return Err(invalid(format!(
                    "embedding_function must be an object, got {value}"
                )));
            }
            parsed.embedding_function = Some(EmbeddingFunction(value.to_string()));
            continue;
        }
        let Value::Object(fields) = value else {
            return Err(invalid(format!("{key} must be an object, got {value}")));
        };
        if key == "hnsw" {
            parsed.hnsw = Some(parse_hnsw_update(fields)?);
        } else {
            parsed.spann = Some(parse_spann_update(fields)?);
        }
    }
    parsed.validate()?;
    Ok(parsed)
}

fn spann_json(spann: &SpannConfiguration) -> SpannJson {
    SpannJson {
        search_nprobe: spann.search_nprobe,
        ef_search: spann.ef_search,
    }
}

/// The embedding function object as the client gave it (null if the stored
/// text is somehow not JSON).
pub fn embedding_function_json(ef: Option<&EmbeddingFunction>) -> Value {
    ef.and_then(|ef| serde_json::from_str(&ef.0).ok())
        .unwrap_or(Value::Null)
}

/// A collection's `configuration_json`.
pub fn render(configuration: &CollectionConfiguration) -> ConfigurationJson {
    let h = &configuration.hnsw;
    ConfigurationJson {
        hnsw: HnswJson {
            space: h.index.space.as_str(),
            ef_construction: h.index.ef_construction,
            ef_search: h.index.ef_search,
            max_neighbors: h.index.max_neighbors,
            resize_factor: number_json(h.resize_factor),
            sync_threshold: number_json(h.sync_threshold),
            num_threads: h.num_threads.map(number_json),
            batch_size: h.batch_size.map(number_json),
        },
        spann: configuration.spann.as_ref().map(spann_json),
        embedding_function: embedding_function_json(configuration.embedding_function.as_ref()),
    }
}

/// Whether the server embeds a collection's documents itself, from the
/// `embedding_function` of its configuration.
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

pub fn document_embedding(configuration: &CollectionConfiguration) -> DocumentEmbedding {
    let ef = embedding_function_json(configuration.embedding_function.as_ref());
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
    use serde_json::json;

    /// The rendering as a client reads it.
    fn render(configuration: &CollectionConfiguration) -> Value {
        serde_json::to_value(super::render(configuration)).unwrap()
    }

    fn created(configuration: Option<&Value>, metadata: Option<&Metadata>) -> Value {
        render(&parse_create(configuration, metadata).unwrap())
    }

    fn message(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn defaults_are_chromas() {
        let c = parse_create(None, None).unwrap();
        assert_eq!(c.hnsw.index, IndexConfig::default());
        assert_eq!(
            render(&c),
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
        let c = parse_create(None, Some(&m)).unwrap();
        assert_eq!(
            (c.hnsw.index.space, c.hnsw.index.max_neighbors),
            (Space::Ip, 32)
        );
        let config = json!({"hnsw": {"space": "cosine", "ef_search": 7},
            "embedding_function": {"type": "known", "name": "default", "config": {}}});
        let c = parse_create(Some(&config), Some(&m)).unwrap();
        let i = &c.hnsw.index;
        assert_eq!(
            (i.space, i.ef_search, i.max_neighbors),
            (Space::Cosine, 7, 32)
        );
        assert_eq!(render(&c)["embedding_function"]["name"], "default");
        let spann = json!({"spann": {"space": "ip"}});
        assert_eq!(
            parse_create(Some(&spann), None).unwrap().hnsw.index.space,
            Space::Ip
        );
    }

    #[test]
    fn unused_hnsw_fields_are_kept_as_given() {
        let config = json!({"hnsw": {"num_threads": 4, "batch_size": 1e30,
            "resize_factor": 9, "sync_threshold": null}});
        let hnsw = &created(Some(&config), None)["hnsw"];
        assert_eq!(hnsw["num_threads"], json!(4));
        assert_eq!(hnsw["batch_size"], json!(1e30));
        let config = json!({"hnsw": {"num_threads": null}});
        let hnsw = created(Some(&config), None)["hnsw"].clone();
        assert_eq!(hnsw.get("num_threads"), Some(&Value::Null));
        assert_eq!(hnsw.get("batch_size"), None);
        // Chroma reports its own resize and sync thresholds.
        assert_eq!(hnsw["resize_factor"], json!(1.2));
        assert_eq!(hnsw["sync_threshold"], json!(1000));
    }

    #[test]
    fn bad_configurations_are_invalid_arguments() {
        for bad in [
            json!({"hnsw": {"space": "hamming"}}),
            json!({"hnsw": {"ef_search": 0}}),
            json!({"hnsw": {"colour": 1}}),
            json!({"hnsw": {"batch_size": "x"}}),
            json!({"hnsw": {}, "spann": {}}),
            json!({"hnsw": 3}),
            json!({"hnsw": {"ef_search": 10_001}}),
            json!({"embedding_function": {"name": "x"}}),
            json!([1]),
        ] {
            assert!(
                matches!(
                    parse_create(Some(&bad), None),
                    Err(ApiError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            message(parse_create(Some(&json!({"hnsw": {"space": "hamming"}})), None).unwrap_err()),
            "Could not parse config: unknown variant `hamming`, expected one of `l2`, `cosine`, `ip`"
        );
        assert_eq!(
            message(parse_create(Some(&json!({"hnsw": {"colour": 1}})), None).unwrap_err()),
            "Could not parse config: unknown field `colour`, expected one of `space`, `ef_construction`, `ef_search`, `max_neighbors`, `num_threads`, `resize_factor`, `sync_threshold`, `batch_size`"
        );
        let mut m = Metadata::new();
        m.insert("hnsw:space".into(), MetadataValue::Int(1));
        assert_eq!(
            message(parse_create(None, Some(&m)).unwrap_err()),
            "Metadata key hnsw:space must be one of l2, cosine, ip, got 1"
        );
    }

    fn update(v: Value) -> Result<ConfigurationUpdate, String> {
        parse_update(v.as_object().unwrap()).map_err(message)
    }

    #[test]
    fn updates_parse_into_typed_fields() {
        assert_eq!(
            update(
                json!({"hnsw": {"ef_search": 250, "resize_factor": 2}, "spann": null,
                "embedding_function": {"type": "known", "name": "x"}})
            ),
            Ok(ConfigurationUpdate {
                hnsw: Some(HnswUpdate {
                    ef_search: Some(250),
                    resize_factor: Some(ConfigNumber::Unsigned(2)),
                    ..HnswUpdate::default()
                }),
                spann: None,
                embedding_function: Some(EmbeddingFunction(
                    r#"{"name":"x","type":"known"}"#.into()
                )),
            })
        );
        assert_eq!(
            update(json!({"spann": {}})).unwrap().spann,
            Some(SpannUpdate::default())
        );
    }

    #[test]
    fn updates_refuse_fixed_or_unknown_fields_and_bad_values() {
        assert_eq!(
            update(json!({"hnsw": {"space": "ip"}})).unwrap_err(),
            "Could not parse config: unknown field `space`, expected one of `ef_search`, `max_neighbors`, `num_threads`, `resize_factor`, `sync_threshold`, `batch_size`"
        );
        assert_eq!(
            update(json!({"colour": 1})).unwrap_err(),
            "Could not parse config: unknown field `colour`, expected one of `hnsw`, `spann`, `embedding_function`"
        );
        assert_eq!(
            update(json!({"hnsw": {"ef_search": 0}})).unwrap_err(),
            "Could not parse config: hnsw.ef_search must be an integer of at least 1, got 0"
        );
        assert_eq!(
            update(json!({"hnsw": {"ef_search": -3}})).unwrap_err(),
            "Could not parse config: hnsw.ef_search must be an integer of at least 1, got -3"
        );
        assert_eq!(
            update(json!({"hnsw": {"ef_search": 4611686018427387904u64}})).unwrap_err(),
            "Invalid HNSW parameters: hnsw.ef_search must be between 1 and 10000 (this server's limit), got 4611686018427387904"
        );
        for bad in [
            json!({"hnsw": {"batch_size": 1}}),
            json!({"hnsw": {"resize_factor": -1}}),
            json!({"hnsw": {"resize_factor": "big"}}),
            json!({"spann": {"ef_search": 99_999_999}}),
            json!({"spann": {"space": "ip"}}),
            json!({"hnsw": 3}),
            json!({"embedding_function": "x"}),
        ] {
            assert!(update(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn rendering_keeps_numbers_as_given() {
        let mut c = parse_create(None, None).unwrap();
        c.hnsw.resize_factor = ConfigNumber::Unsigned(2);
        c.hnsw.num_threads = Some(ConfigNumber::Signed(-1));
        c.spann = Some(SpannConfiguration {
            search_nprobe: None,
            ef_search: Some(9),
        });
        let json = render(&c);
        assert_eq!(json["hnsw"]["resize_factor"].to_string(), "2");
        assert_eq!(json["hnsw"]["num_threads"], json!(-1));
        assert_eq!(json["spann"], json!({"ef_search": 9}));
        // Stored text that is not JSON renders as null rather than failing.
        c.embedding_function = Some(EmbeddingFunction("{".into()));
        assert_eq!(render(&c)["embedding_function"], Value::Null);
    }

    #[test]
    fn which_collections_embed_documents() {
        let with = |ef: Value| {
            let mut c = parse_create(None, None).unwrap();
            c.embedding_function = (!ef.is_null()).then(|| EmbeddingFunction(ef.to_string()));
            document_embedding(&c)
        };
        assert_eq!(
            with(json!({"type": "known", "name": "default", "config": {}})),
            DocumentEmbedding::MiniLm
        );
        assert_eq!(
            with(json!({"type": "known", "name": "sentence_transformer",
                "config": {"model_name": "all-MiniLM-L6-v2"}})),
            DocumentEmbedding::MiniLm
        );
        for other in [
            json!({"type": "known", "name": "openai", "config": {}}),
            json!({"type": "known", "name": "sentence_transformer", "config": {"model_name": "x"}}),
            json!({"type": "legacy"}),
            json!({"name": "untyped, as a modify may set it"}),
            Value::Null,
        ] {
            assert!(
                matches!(with(other.clone()), DocumentEmbedding::Unavailable(_)),
                "{other}"
            );
        }
    }
}
