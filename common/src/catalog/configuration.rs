//! A collection's configuration as typed values, and the typed updates a
//! modify carries. The router parses Chroma's `configuration` /
//! `new_configuration` JSON into these and renders them back
//! (`router/src/api/configuration.rs`); the catalogue state machine merges
//! updates and checks every value again, so a bad value is refused whoever
//! proposed it.
//!
//! The fields are those of Chroma's `HnswConfiguration` / `SpannConfiguration`
//! (`rust/types/src/hnsw_configuration.rs`, `spann_configuration.rs`). Our
//! index is HNSW whatever the client asked for: the space and HNSW parameters
//! the shards use are the collection's [`IndexConfig`]; the other fields are
//! kept and reported so clients see what they set.

use std::fmt::Display;

use serde::{Deserialize, Serialize};

use crate::command::IndexConfig;
use crate::limits;

use super::error::CatalogError;
use super::validate::{out_of_range, validate_index_config};

/// A number of a field we keep but do not interpret, as the client wrote it
/// (`2` stays `2`, `2.0` stays `2.0`, and a create may set such a field to
/// null).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ConfigNumber {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Null,
}

impl ConfigNumber {
    /// The value as a float; null is NaN (so no rule on numbers accepts it).
    pub fn as_f64(self) -> f64 {
        match self {
            ConfigNumber::Unsigned(n) => n as f64,
            ConfigNumber::Signed(n) => n as f64,
            ConfigNumber::Float(f) => f,
            ConfigNumber::Null => f64::NAN,
        }
    }
}

/// The client's embedding function description, a JSON object's text. The
/// server only reads it to decide whether it can embed documents itself
/// (the router's `document_embedding`); it is stored and returned as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingFunction(pub String);

impl EmbeddingFunction {
    /// Must be a JSON object, as Chroma's clients send it.
    pub fn validate(&self) -> Result<(), CatalogError> {
        match serde_json::from_str::<serde_json::Value>(&self.0) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ => Err(CatalogError::config(format!(
                "embedding_function must be an object, got {}",
                self.0
            ))),
        }
    }
}

/// The `hnsw` section of a collection's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswConfiguration {
    /// `space`, `ef_construction`, `ef_search`, `max_neighbors` as set at
    /// creation (and by later `hnsw` updates).
    pub index: IndexConfig,
    pub resize_factor: ConfigNumber,
    pub sync_threshold: ConfigNumber,
    /// Absent unless the client set it.
    pub num_threads: Option<ConfigNumber>,
    /// Absent unless the client set it.
    pub batch_size: Option<ConfigNumber>,
}

/// Chroma's defaults for the HNSW fields we keep but do not use (the index
/// is hnsw_rs, which has no resize or sync thresholds).
pub const DEFAULT_RESIZE_FACTOR: f64 = 1.2;
pub const DEFAULT_SYNC_THRESHOLD: u64 = 1000;

impl HnswConfiguration {
    /// The section for `index`, the other fields at Chroma's defaults.
    pub fn new(index: IndexConfig) -> Self {
        HnswConfiguration {
            index,
            resize_factor: ConfigNumber::Float(DEFAULT_RESIZE_FACTOR),
            sync_threshold: ConfigNumber::Unsigned(DEFAULT_SYNC_THRESHOLD),
            num_threads: None,
            batch_size: None,
        }
    }
}

/// The `spann` section: only ever set by updates (a create's SPANN section
/// only picks the space).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpannConfiguration {
    pub search_nprobe: Option<u64>,
    pub ef_search: Option<u64>,
}

/// A collection's configuration (Chroma's `configuration_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionConfiguration {
    pub hnsw: HnswConfiguration,
    pub spann: Option<SpannConfiguration>,
    pub embedding_function: Option<EmbeddingFunction>,
}

impl CollectionConfiguration {
    /// The configuration of a collection indexed with `index`, no SPANN
    /// section and no embedding function.
    pub fn new(index: IndexConfig) -> Self {
        CollectionConfiguration {
            hnsw: HnswConfiguration::new(index),
            spann: None,
            embedding_function: None,
        }
    }

    /// Index parameters above their ranges lowered to the top of the range,
    /// as [`IndexConfig::capped`] (which says why the catalogue caps).
    pub fn capped(&self) -> Self {
        let mut c = self.clone();
        c.hnsw.index = c.hnsw.index.capped();
        if let Some(spann) = &mut c.spann {
            spann.ef_search = spann.ef_search.map(cap_ef_search);
        }
        c
    }

    /// What a created collection's configuration must satisfy.
    pub fn validate(&self) -> Result<(), CatalogError> {
        validate_index_config(&self.hnsw.index)?;
        if let Some(ef) = &self.embedding_function {
            ef.validate()?;
        }
        Ok(())
    }

    /// This configuration with `update` merged in, as Chroma's sysdb merges
    /// on modify (`InternalCollectionConfiguration::update`), and the index
    /// settings that follow from it (`index` is the collection's current
    /// ones; SPANN's `ef_search` also sets our HNSW index's). The update is
    /// capped, then checked; nothing changes when it is refused.
    pub fn merge(
        &self,
        index: &IndexConfig,
        update: &ConfigurationUpdate,
    ) -> Result<(CollectionConfiguration, IndexConfig), CatalogError> {
        let update = update.capped();
        update.validate()?;
        let mut merged = self.clone();
        let mut index = index.clone();
        if let Some(ef) = &update.embedding_function {
            merged.embedding_function = Some(ef.clone());
        }
        if let Some(h) = &update.hnsw {
            let target = &mut merged.hnsw;
            if let Some(n) = h.ef_search {
                target.index.ef_search = n as usize;
                index.ef_search = n as usize;
            }
            if let Some(n) = h.max_neighbors {
                target.index.max_neighbors = n as usize;
                index.max_neighbors = n as usize;
            }
            let kept = |n: Option<u64>| n.map(ConfigNumber::Unsigned);
            target.num_threads = kept(h.num_threads).or(target.num_threads);
            target.sync_threshold = kept(h.sync_threshold).unwrap_or(target.sync_threshold);
            target.batch_size = kept(h.batch_size).or(target.batch_size);
            target.resize_factor = h.resize_factor.unwrap_or(target.resize_factor);
        }
        if let Some(s) = &update.spann {
            let target = merged.spann.get_or_insert_with(SpannConfiguration::default);
            target.search_nprobe = s.search_nprobe.or(target.search_nprobe);
            if let Some(n) = s.ef_search {
                target.ef_search = Some(n);
                index.ef_search = n as usize;
            }
        }
        validate_index_config(&index)?;
        Ok((merged, index))
    }
}

/// The updatable fields of the `hnsw` section (Chroma's
/// `UpdateHnswConfiguration`); the space and `ef_construction` are fixed at
/// creation. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HnswUpdate {
    pub ef_search: Option<u64>,
    pub max_neighbors: Option<u64>,
    pub num_threads: Option<u64>,
    pub resize_factor: Option<ConfigNumber>,
    pub sync_threshold: Option<u64>,
    pub batch_size: Option<u64>,
}

/// The updatable fields of the `spann` section (Chroma's
/// `UpdateSpannConfiguration`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpannUpdate {
    pub search_nprobe: Option<u64>,
    pub ef_search: Option<u64>,
}

/// A modify's configuration change (Chroma's
/// `UpdateCollectionConfiguration`). `None` leaves a section as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigurationUpdate {
    pub hnsw: Option<HnswUpdate>,
    pub spann: Option<SpannUpdate>,
    pub embedding_function: Option<EmbeddingFunction>,
}

/// The smallest value of an integer field of an update.
fn minimum(field: &str) -> u64 {
    match field {
        "sync_threshold" | "batch_size" => 2,
        _ => 1,
    }
}

/// The refusal of an integer field of an update below its minimum (or not
/// an integer at all: the router's parser uses it too).
pub fn not_an_integer(section: &str, field: &str, got: impl Display) -> CatalogError {
    CatalogError::config(format!(
        "{section}.{field} must be an integer of at least {}, got {got}",
        minimum(field)
    ))
}

/// The refusal of a `resize_factor` that is not a positive finite number.
pub fn not_a_positive_number(section: &str, field: &str, got: impl Display) -> CatalogError {
    CatalogError::config(format!(
        "{section}.{field} must be a positive number, got {got}"
    ))
}

fn cap_ef_search(n: u64) -> u64 {
    n.min(*limits::HNSW_EF_SEARCH.end() as u64)
}

impl ConfigurationUpdate {
    /// Index parameters above their ranges lowered to the top of the range
    /// (see [`IndexConfig::capped`]).
    pub fn capped(&self) -> Self {
        let mut u = self.clone();
        if let Some(h) = &mut u.hnsw {
            h.ef_search = h.ef_search.map(cap_ef_search);
            h.max_neighbors = h
                .max_neighbors
                .map(|n| n.min(*limits::HNSW_MAX_NEIGHBORS.end() as u64));
        }
        if let Some(s) = &mut u.spann {
            s.ef_search = s.ef_search.map(cap_ef_search);
        }
        u
    }

    /// Every field within its rules: integers at their minimum, the resize
    /// factor positive, index parameters within this server's ranges, the
    /// embedding function an object.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if let Some(ef) = &self.embedding_function {
            ef.validate()?;
        }
        let at_least = |section: &str, field: &str, value: Option<u64>| match value {
            Some(n) if n < minimum(field) => Err(not_an_integer(section, field, n)),
            _ => Ok(()),
        };
        if let Some(h) = &self.hnsw {
            at_least("hnsw", "batch_size", h.batch_size)?;
            at_least("hnsw", "ef_search", h.ef_search)?;
            at_least("hnsw", "max_neighbors", h.max_neighbors)?;
            at_least("hnsw", "num_threads", h.num_threads)?;
            if let Some(r) = h.resize_factor {
                let f = r.as_f64();
                if !(f.is_finite() && f > 0.0) {
                    return Err(not_a_positive_number("hnsw", "resize_factor", f));
                }
            }
            at_least("hnsw", "sync_threshold", h.sync_threshold)?;
        }
        if let Some(s) = &self.spann {
            at_least("spann", "ef_search", s.ef_search)?;
            at_least("spann", "search_nprobe", s.search_nprobe)?;
        }
        let ranged = [
            (
                "hnsw.ef_search",
                self.hnsw.as_ref().and_then(|h| h.ef_search),
                limits::HNSW_EF_SEARCH,
            ),
            (
                "hnsw.max_neighbors",
                self.hnsw.as_ref().and_then(|h| h.max_neighbors),
                limits::HNSW_MAX_NEIGHBORS,
            ),
            (
                "spann.ef_search",
                self.spann.as_ref().and_then(|s| s.ef_search),
                limits::HNSW_EF_SEARCH,
            ),
        ];
        for (name, value, range) in ranged {
            if let Some(n) = value {
                if usize::try_from(n).map_or(true, |n| n > *range.end()) {
                    return Err(out_of_range(name, n, &range));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Space;

    fn stored() -> CollectionConfiguration {
        CollectionConfiguration {
            embedding_function: Some(EmbeddingFunction(r#"{"type":"legacy"}"#.into())),
            ..CollectionConfiguration::new(IndexConfig {
                space: Space::Cosine,
                ..IndexConfig::default()
            })
        }
    }

    fn merged(
        update: ConfigurationUpdate,
    ) -> Result<(CollectionConfiguration, IndexConfig), String> {
        let c = stored();
        c.merge(&c.hnsw.index, &update)
            .map_err(|e| e.message().to_owned())
    }

    fn hnsw(h: HnswUpdate) -> ConfigurationUpdate {
        ConfigurationUpdate {
            hnsw: Some(h),
            ..ConfigurationUpdate::default()
        }
    }

    #[test]
    fn merges_hnsw_fields_and_follows_them_in_the_index_config() {
        let (c, index) = merged(hnsw(HnswUpdate {
            ef_search: Some(250),
            batch_size: Some(50),
            ..HnswUpdate::default()
        }))
        .unwrap();
        assert_eq!((c.hnsw.index.ef_search, index.ef_search), (250, 250));
        assert_eq!(c.hnsw.batch_size, Some(ConfigNumber::Unsigned(50)));
        assert_eq!(
            (c.hnsw.index.space, index.max_neighbors),
            (Space::Cosine, 16)
        );
        assert_eq!(c.embedding_function, stored().embedding_function);
        let (_, index) = merged(hnsw(HnswUpdate {
            max_neighbors: Some(32),
            ..HnswUpdate::default()
        }))
        .unwrap();
        assert_eq!(index.max_neighbors, 32);
    }

    #[test]
    fn replaces_the_embedding_function_and_creates_the_spann_section() {
        let ef = EmbeddingFunction(r#"{"type":"known","name":"x"}"#.into());
        let (c, index) = merged(ConfigurationUpdate {
            embedding_function: Some(ef.clone()),
            spann: Some(SpannUpdate {
                ef_search: Some(9),
                search_nprobe: None,
            }),
            hnsw: None,
        })
        .unwrap();
        assert_eq!(c.embedding_function, Some(ef));
        assert_eq!(c.spann.unwrap().ef_search, Some(9));
        // SPANN's ef_search is our HNSW index's; the hnsw section keeps its own.
        assert_eq!((index.ef_search, c.hnsw.index.ef_search), (9, 100));
    }

    #[test]
    fn refuses_bad_values_and_caps_large_ones() {
        let refused = |h: HnswUpdate| merged(hnsw(h)).unwrap_err();
        assert_eq!(
            refused(HnswUpdate {
                ef_search: Some(0),
                ..HnswUpdate::default()
            }),
            "Could not parse config: hnsw.ef_search must be an integer of at least 1, got 0"
        );
        assert!(merged(hnsw(HnswUpdate {
            batch_size: Some(1),
            ..HnswUpdate::default()
        }))
        .is_err());
        let bad_factors = [-1.0, 0.0, f64::NAN, f64::INFINITY].map(ConfigNumber::Float);
        for bad in bad_factors.into_iter().chain([ConfigNumber::Null]) {
            assert!(merged(hnsw(HnswUpdate {
                resize_factor: Some(bad),
                ..HnswUpdate::default()
            }))
            .is_err());
        }
        assert!(merged(ConfigurationUpdate {
            embedding_function: Some(EmbeddingFunction("[1]".into())),
            ..ConfigurationUpdate::default()
        })
        .is_err());
        // Above the ranges: refused by validate (the router), capped by merge
        // (the catalogue).
        let huge = hnsw(HnswUpdate {
            ef_search: Some(u64::MAX),
            ..HnswUpdate::default()
        });
        assert!(huge
            .validate()
            .unwrap_err()
            .message()
            .contains("this server's limit"));
        let (c, index) = merged(huge).unwrap();
        assert_eq!((c.hnsw.index.ef_search, index.ef_search), (10_000, 10_000));
    }

    #[test]
    fn created_configurations_are_checked_and_capped() {
        let mut c = stored();
        assert!(c.validate().is_ok());
        c.hnsw.index.ef_construction = usize::MAX;
        assert!(c.validate().is_err());
        assert!(c.capped().validate().is_ok());
        c.embedding_function = Some(EmbeddingFunction("null".into()));
        assert!(c.capped().validate().is_err());
    }
}
