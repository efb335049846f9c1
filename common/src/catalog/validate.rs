//! Name, id and metadata rules of the catalogue. The router checks requests
//! with these, and the catalogue state machine checks every command with them
//! again, so a bad name never reaches the catalogue whoever proposed it.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use crate::command::IndexConfig;
use crate::limits;
use crate::record::{validate_metadata_key, Metadata, MetadataValue};

use super::error::CatalogError;

/// Shortest and longest collection name.
pub const COLLECTION_NAME_MIN: usize = 3;
pub const COLLECTION_NAME_MAX: usize = 512;
/// Shortest tenant and database name.
pub const TENANT_DATABASE_NAME_MIN: usize = 3;

/// Chroma's collection name rule (`rust/types/src/validators.rs`,
/// `validate_name`): 3-512 characters of `[a-zA-Z0-9._-]`, starting and
/// ending with `[a-zA-Z0-9]`, no `..`, not an IP address. `field` is the
/// request field (`name`, or `new_name` on modify), named in the message as
/// Chroma's validator does.
pub fn validate_collection_name(field: &str, name: &str) -> Result<(), CatalogError> {
    let bytes = name.as_bytes();
    let shape_ok = (COLLECTION_NAME_MIN..=COLLECTION_NAME_MAX).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !shape_ok {
        return Err(CatalogError::invalid(format!(
            "Validation error: {field}: Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: {name}"
        )));
    }
    if name.contains("..") {
        return Err(CatalogError::invalid(format!(
            "Validation error: {field}: Expected a name that does not contains two consecutive periods (..). Got {name}"
        )));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(CatalogError::invalid(format!(
            "Validation error: {field}: Expected a name that is not a valid ip address. Got {name}"
        )));
    }
    Ok(())
}

/// Chroma only asks a tenant name to have at least 3 characters
/// (`CreateTenantRequest`, `#[validate(length(min = 3))]`).
pub fn validate_tenant_name(name: &str) -> Result<(), CatalogError> {
    if name.chars().count() < TENANT_DATABASE_NAME_MIN {
        return Err(CatalogError::invalid(format!(
            "Validation error: name: Tenant name must be at least 3 characters long. Got {name}"
        )));
    }
    Ok(())
}

/// Chroma only asks a database name to have at least 3 characters
/// (`CreateDatabaseRequest`, `#[validate(length(min = 3))]`).
pub fn validate_database_name(name: &str) -> Result<(), CatalogError> {
    if name.chars().count() < TENANT_DATABASE_NAME_MIN {
        return Err(CatalogError::invalid(format!(
            "Validation error: database_name: Database name must be at least 3 characters long. Got {name}"
        )));
    }
    Ok(())
}

/// Collection metadata on create (`field` = `metadata`) or modify
/// (`new_metadata`): not empty (Chroma: "Metadata cannot be empty"), keys by
/// the record key rule, floats finite, lists non-empty.
pub fn validate_collection_metadata(field: &str, metadata: &Metadata) -> Result<(), CatalogError> {
    if metadata.is_empty() {
        return Err(CatalogError::invalid(format!(
            "Validation error: {field}: Metadata cannot be empty"
        )));
    }
    limits::check_metadata(metadata.iter().map(|(k, v)| (k, Some(v))))
        .map_err(|e| CatalogError::invalid(e.to_string()))?;
    for (key, value) in metadata {
        validate_metadata_key(key)?;
        let finite = match value {
            MetadataValue::Float(f) => f.is_finite(),
            MetadataValue::FloatList(l) => l.iter().all(|f| f.is_finite()),
            _ => true,
        };
        if !finite {
            return Err(CatalogError::invalid(format!(
                "Expected metadata value for key '{key}' to be a finite number"
            )));
        }
        let empty_list = match value {
            MetadataValue::StrList(l) => l.is_empty(),
            MetadataValue::IntList(l) => l.is_empty(),
            MetadataValue::FloatList(l) => l.is_empty(),
            MetadataValue::BoolList(l) => l.is_empty(),
            _ => false,
        };
        if empty_list {
            return Err(CatalogError::invalid(format!(
                "Expected metadata list for key '{key}' to be a non-empty list of one type (str, int, float or bool)"
            )));
        }
    }
    Ok(())
}

/// The HNSW parameters of a configuration and their ranges
/// ([`crate::limits`]), as `(name, value, range)`.
fn index_parameters(config: &IndexConfig) -> [(&'static str, usize, RangeInclusive<usize>); 3] {
    [
        (
            "ef_construction",
            config.ef_construction,
            limits::HNSW_EF_CONSTRUCTION,
        ),
        ("ef_search", config.ef_search, limits::HNSW_EF_SEARCH),
        (
            "max_neighbors",
            config.max_neighbors,
            limits::HNSW_MAX_NEIGHBORS,
        ),
    ]
}

pub(super) fn out_of_range(
    name: &str,
    value: impl std::fmt::Display,
    range: &RangeInclusive<usize>,
) -> CatalogError {
    CatalogError::invalid(format!(
        "Invalid HNSW parameters: {name} must be between {} and {} (this server's limit), got {value}",
        range.start(),
        range.end()
    ))
}

/// Every HNSW parameter within its range in [`crate::limits`].
pub fn validate_index_config(config: &IndexConfig) -> Result<(), CatalogError> {
    for (name, value, range) in index_parameters(config) {
        if value == 0 {
            return Err(CatalogError::invalid(format!(
                "Invalid HNSW parameters: {name} must be at least 1, got 0"
            )));
        }
        if !range.contains(&value) {
            return Err(out_of_range(name, value, &range));
        }
    }
    Ok(())
}

/// Parses a UUID in any of the usual text forms (hyphenated or 32 hex digits,
/// any case, optionally in braces or with a `urn:uuid:` prefix) and returns it
/// hyphenated in lower case, the only form the catalogue stores.
pub fn canonical_uuid(text: &str) -> Option<String> {
    let s = text.strip_prefix("urn:uuid:").unwrap_or(text);
    let s = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let hex: String = match s.len() {
        32 => s.to_owned(),
        36 => {
            let b = s.as_bytes();
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return None;
            }
            s.chars().filter(|c| *c != '-').collect()
        }
        _ => return None,
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// True when `id` is a UUID in the stored form (hyphenated lower case).
pub fn is_canonical_uuid(id: &str) -> bool {
    canonical_uuid(id).as_deref() == Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<(), CatalogError>) -> String {
        r.unwrap_err().message().to_owned()
    }

    #[test]
    fn collection_names_follow_chroma() {
        for ok in [
            "abc",
            "a.b",
            "A-_9",
            "my_collection.v2",
            &"a".repeat(512),
            "1.2.3",
            "0-0",
        ] {
            assert!(validate_collection_name("name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "_abc",
            "abc_",
            ".abc",
            "abc-",
            "a b",
            "abé",
            "a/b",
            &"a".repeat(513),
        ] {
            assert_eq!(
                msg(validate_collection_name("name", bad)),
                format!("Validation error: name: Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. Got: {bad}")
            );
        }
        assert_eq!(
            msg(validate_collection_name("new_name", "a..b")),
            "Validation error: new_name: Expected a name that does not contains two consecutive periods (..). Got a..b"
        );
        assert_eq!(
            msg(validate_collection_name("name", "192.168.0.1")),
            "Validation error: name: Expected a name that is not a valid ip address. Got 192.168.0.1"
        );
        // Not an IPv4 address for Rust's parser (as in Chroma): a fourth octet > 255.
        assert!(validate_collection_name("name", "1.2.3.256").is_ok());
    }

    #[test]
    fn tenant_and_database_names_need_three_chars() {
        assert!(validate_tenant_name("abc").is_ok());
        assert!(validate_database_name("déf").is_ok());
        assert_eq!(
            msg(validate_tenant_name("ab")),
            "Validation error: name: Tenant name must be at least 3 characters long. Got ab"
        );
        assert_eq!(
            msg(validate_database_name("")),
            "Validation error: database_name: Database name must be at least 3 characters long. Got "
        );
    }

    #[test]
    fn collection_metadata_rules() {
        let mut m = Metadata::new();
        assert_eq!(
            msg(validate_collection_metadata("metadata", &m)),
            "Validation error: metadata: Metadata cannot be empty"
        );
        m.insert("hnsw:space".into(), MetadataValue::Str("ip".into()));
        assert!(validate_collection_metadata("metadata", &m).is_ok());
        m.insert("#x".into(), MetadataValue::Int(1));
        assert!(validate_collection_metadata("metadata", &m).is_err());
        m.remove("#x");
        m.insert("f".into(), MetadataValue::Float(f64::NAN));
        assert_eq!(
            msg(validate_collection_metadata("metadata", &m)),
            "Expected metadata value for key 'f' to be a finite number"
        );
        m.insert("f".into(), MetadataValue::IntList(vec![]));
        assert!(validate_collection_metadata("metadata", &m).is_err());
    }

    #[test]
    fn uuids() {
        let c = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        assert_eq!(canonical_uuid(c).as_deref(), Some(c));
        assert_eq!(canonical_uuid(&c.to_uppercase()).as_deref(), Some(c));
        assert_eq!(canonical_uuid(&c.replace('-', "")).as_deref(), Some(c));
        assert_eq!(canonical_uuid(&format!("{{{c}}}")).as_deref(), Some(c));
        assert_eq!(canonical_uuid(&format!("urn:uuid:{c}")).as_deref(), Some(c));
        assert!(is_canonical_uuid(c));
        assert!(!is_canonical_uuid(&c.to_uppercase()));
        for bad in [
            "",
            "xyz",
            "0a1b2c3d-4e5f-6789-abcd-ef012345678g",
            "0a1b2c3d4e5f-6789-abcd-ef0123456789-",
        ] {
            assert_eq!(canonical_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn index_config_ranges() {
        assert!(validate_index_config(&IndexConfig::default()).is_ok());
        let bad = IndexConfig {
            ef_search: 0,
            ..IndexConfig::default()
        };
        assert_eq!(
            msg(validate_index_config(&bad)),
            "Invalid HNSW parameters: ef_search must be at least 1, got 0"
        );
        let huge = IndexConfig {
            ef_construction: 4611686018427387904,
            ..IndexConfig::default()
        };
        assert_eq!(
            msg(validate_index_config(&huge)),
            "Invalid HNSW parameters: ef_construction must be between 1 and 10000 (this server's limit), got 4611686018427387904"
        );
        assert!(validate_index_config(&huge.capped()).is_ok());
        assert_eq!(huge.capped().ef_construction, 10_000);
        for (ef_search, max_neighbors, ok) in [
            (10_000, 1024, true),
            (10_001, 16, false),
            (100, 1025, false),
            (1, 1, true),
        ] {
            let c = IndexConfig {
                ef_search,
                max_neighbors,
                ..IndexConfig::default()
            };
            assert_eq!(validate_index_config(&c).is_ok(), ok, "{c:?}");
            assert!(validate_index_config(&c.capped()).is_ok());
        }
    }
}
