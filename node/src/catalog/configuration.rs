//! Merging Chroma's `UpdateCollectionConfiguration` into a collection's stored
//! `configuration_json`, as Chroma's sysdb does on modify
//! (`InternalCollectionConfiguration::update`). The merge runs in apply, so
//! two concurrent modifies of different fields both take effect.
//!
//! Updatable HNSW fields are those of Chroma's `UpdateHnswConfiguration`
//! (`#[serde(deny_unknown_fields)]`): `ef_search`, `max_neighbors`,
//! `num_threads`, `resize_factor`, `sync_threshold`, `batch_size`; the space and
//! `ef_construction` are fixed at creation. SPANN takes `search_nprobe` and
//! `ef_search`.

use common::catalog::{validate_configuration_ranges, validate_index_config, CatalogError};
use common::command::IndexConfig;
use serde_json::{Map, Value};

const TOP_LEVEL: &[&str] = &["hnsw", "spann", "embedding_function"];
const HNSW_UPDATABLE: &[&str] = &[
    "ef_search",
    "max_neighbors",
    "num_threads",
    "resize_factor",
    "sync_threshold",
    "batch_size",
];
const SPANN_UPDATABLE: &[&str] = &["search_nprobe", "ef_search"];

fn invalid(msg: impl std::fmt::Display) -> CatalogError {
    CatalogError::invalid(format!("Could not parse config: {msg}"))
}

fn unknown_field(field: &str, expected: &[&str]) -> CatalogError {
    let expected: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
    invalid(format!(
        "unknown field `{field}`, expected one of {}",
        expected.join(", ")
    ))
}

/// Reads an unsigned integer field, at least `min`.
fn unsigned(section: &str, key: &str, value: &Value, min: u64) -> Result<u64, CatalogError> {
    match value.as_u64() {
        Some(n) if n >= min => Ok(n),
        _ => Err(invalid(format!(
            "{section}.{key} must be an integer of at least {min}, got {value}"
        ))),
    }
}

fn check_section(
    section: &str,
    fields: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), CatalogError> {
    for (key, value) in fields {
        if !allowed.contains(&key.as_str()) {
            return Err(unknown_field(key, allowed));
        }
        match key.as_str() {
            "ef_search" | "max_neighbors" | "num_threads" | "search_nprobe" => {
                unsigned(section, key, value, 1)?;
            }
            "sync_threshold" | "batch_size" => {
                unsigned(section, key, value, 2)?;
            }
            "resize_factor" if !value.as_f64().is_some_and(|f| f.is_finite() && f > 0.0) => {
                return Err(invalid(format!(
                    "{section}.{key} must be a positive number, got {value}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Returns the merged configuration JSON and the index settings that follow
/// from it. Nothing is changed when the update is refused.
pub(super) fn apply_update(
    current_json: &str,
    current: &IndexConfig,
    update_json: &str,
) -> Result<(String, IndexConfig), CatalogError> {
    let update = match serde_json::from_str::<Value>(update_json) {
        Ok(Value::Object(update)) => update,
        Ok(other) => {
            return Err(invalid(format!(
                "expected new_configuration to be a JSON object, got {other}"
            )))
        }
        Err(e) => return Err(invalid(e)),
    };
    let mut merged = match serde_json::from_str::<Value>(current_json) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut index = current.clone();
    for (key, value) in &update {
        if !TOP_LEVEL.contains(&key.as_str()) {
            return Err(unknown_field(key, TOP_LEVEL));
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
            merged.insert(key.clone(), value.clone());
            continue;
        }
        let Value::Object(fields) = value else {
            return Err(invalid(format!("{key} must be an object, got {value}")));
        };
        check_section(
            key,
            fields,
            if key == "hnsw" {
                HNSW_UPDATABLE
            } else {
                SPANN_UPDATABLE
            },
        )?;
        let target = merged
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        if let Value::Object(target) = target {
            for (field, v) in fields {
                target.insert(field.clone(), v.clone());
            }
        }
        for (field, v) in fields {
            let n = v.as_u64().and_then(|n| usize::try_from(n).ok());
            match (field.as_str(), n) {
                ("ef_search", Some(n)) => index.ef_search = n,
                ("max_neighbors", Some(n)) => index.max_neighbors = n,
                _ => {}
            }
        }
    }
    validate_configuration_ranges(&Value::Object(update))?;
    validate_index_config(&index)?;
    let text = serde_json::to_string(&Value::Object(merged)).map_err(invalid)?;
    Ok((text, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(current: &str, update: &str) -> Result<(Value, IndexConfig), String> {
        apply_update(current, &IndexConfig::default(), update)
            .map(|(text, index)| (serde_json::from_str(&text).unwrap(), index))
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn merges_hnsw_fields_and_follows_them_in_the_index_config() {
        let current = r#"{"hnsw":{"space":"cosine","ef_search":100,"max_neighbors":16},"embedding_function":{"type":"legacy"}}"#;
        let (json, index) =
            merged(current, r#"{"hnsw":{"ef_search":250,"batch_size":50}}"#).unwrap();
        assert_eq!(
            json,
            json!({"hnsw": {"space": "cosine", "ef_search": 250, "max_neighbors": 16, "batch_size": 50}, "embedding_function": {"type": "legacy"}})
        );
        assert_eq!(index.ef_search, 250);
        assert_eq!(index.max_neighbors, 16);
        let (_, index) = merged(current, r#"{"hnsw":{"max_neighbors":32},"spann":null}"#).unwrap();
        assert_eq!(index.max_neighbors, 32);
    }

    #[test]
    fn replaces_the_embedding_function_and_creates_missing_sections() {
        let (json, index) = merged(
            r#"{"hnsw":null}"#,
            r#"{"embedding_function":{"type":"known","name":"x"},"spann":{"ef_search":9}}"#,
        )
        .unwrap();
        assert_eq!(
            json,
            json!({"hnsw": null, "embedding_function": {"type": "known", "name": "x"}, "spann": {"ef_search": 9}})
        );
        assert_eq!(index.ef_search, 9);
    }

    #[test]
    fn refuses_fixed_or_unknown_fields_and_bad_values() {
        let current = r#"{"hnsw":{"space":"l2"}}"#;
        assert_eq!(
            merged(current, r#"{"hnsw":{"space":"ip"}}"#).unwrap_err(),
            "Could not parse config: unknown field `space`, expected one of `ef_search`, `max_neighbors`, `num_threads`, `resize_factor`, `sync_threshold`, `batch_size`"
        );
        assert_eq!(
            merged(current, r#"{"colour":1}"#).unwrap_err(),
            "Could not parse config: unknown field `colour`, expected one of `hnsw`, `spann`, `embedding_function`"
        );
        assert_eq!(
            merged(current, r#"{"hnsw":{"ef_search":0}}"#).unwrap_err(),
            "Could not parse config: hnsw.ef_search must be an integer of at least 1, got 0"
        );
        assert!(merged(current, r#"{"hnsw":{"batch_size":1}}"#).is_err());
        assert!(merged(current, r#"{"hnsw":{"resize_factor":-1}}"#).is_err());
        assert!(merged(current, r#"{"hnsw":3}"#).is_err());
        assert!(merged(current, r#"[1]"#).is_err());
        assert!(merged(current, r#"{"#).is_err());
    }
}
