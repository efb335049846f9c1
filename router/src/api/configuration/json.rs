//! The typed JSON shapes of a collection's configuration: `configuration_json` as every
//! collection answer renders it (built from these structs, so its schema is theirs), and
//! the shapes a create's `configuration` and a modify's `new_configuration` take (parsed
//! field by field in `super`, for errors that name the field; these describe the same
//! fields for the OpenAPI document).

use std::borrow::Cow;

use common::Space;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::api::schemas::AnyObject;

/// A distance space's name, one of [`Space::ALL`].
pub struct SpaceName;

impl PartialSchema for SpaceName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Space::ALL.iter().map(|s| s.as_str())))
            .into()
    }
}

impl ToSchema for SpaceName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Space")
    }
}

/// A collection's `configuration_json`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CollectionConfiguration)]
pub struct ConfigurationJson {
    pub hnsw: HnswJson,
    pub spann: Option<SpannJson>,
    /// The embedding function object as the client gave it (`{"type": "known", "name":
    /// "default", ...}` is the one the server computes), or null.
    #[schema(value_type = Option<AnyObject>)]
    pub embedding_function: Value,
}

/// The HNSW settings; the numbers the index does not use are kept as given.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HnswConfiguration)]
pub struct HnswJson {
    #[schema(value_type = SpaceName)]
    pub space: &'static str,
    pub ef_construction: usize,
    pub ef_search: usize,
    pub max_neighbors: usize,
    #[schema(value_type = Option<f64>)]
    pub resize_factor: Value,
    #[schema(value_type = Option<f64>)]
    pub sync_threshold: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub num_threads: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub batch_size: Option<Value>,
}

/// SPANN settings a modify set (the index is HNSW; these are kept and answered).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SpannConfiguration)]
pub struct SpannJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_nprobe: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ef_search: Option<u64>,
}

/// A create's `configuration` (Chroma's `CollectionConfiguration`): hnsw and spann
/// exclusive; it wins over the legacy `hnsw:*` metadata keys.
#[derive(ToSchema)]
#[schema(as = CreateCollectionConfiguration)]
pub struct CreateConfiguration {
    pub hnsw: Option<CreateHnsw>,
    pub spann: Option<CreateSpann>,
    /// `{"type": "known" | "legacy" | "unknown", ...}`; with `{"type": "known", "name":
    /// "default"}` the server embeds documents and `query_texts` itself.
    #[schema(value_type = Option<AnyObject>)]
    pub embedding_function: Value,
}

/// HNSW settings of a create; any other field is 400.
#[derive(ToSchema)]
#[schema(as = CreateHnswConfiguration)]
pub struct CreateHnsw {
    #[schema(value_type = Option<SpaceName>)]
    pub space: Option<&'static str>,
    #[schema(minimum = 1)]
    pub ef_construction: Option<u64>,
    #[schema(minimum = 1)]
    pub ef_search: Option<u64>,
    #[schema(minimum = 1)]
    pub max_neighbors: Option<u64>,
    pub num_threads: Option<f64>,
    pub resize_factor: Option<f64>,
    pub sync_threshold: Option<f64>,
    pub batch_size: Option<f64>,
}

/// SPANN settings of a create: only its space is used (the index is HNSW).
#[derive(ToSchema)]
#[schema(as = CreateSpannConfiguration)]
pub struct CreateSpann {
    #[schema(value_type = Option<SpaceName>)]
    pub space: Option<&'static str>,
}

/// A modify's `new_configuration` (Chroma's `UpdateCollectionConfiguration`); any other
/// section or field is 400.
#[derive(ToSchema)]
#[schema(as = UpdateCollectionConfiguration)]
pub struct UpdateConfiguration {
    pub hnsw: Option<UpdateHnsw>,
    pub spann: Option<UpdateSpann>,
    #[schema(value_type = Option<AnyObject>)]
    pub embedding_function: Value,
}

#[derive(ToSchema)]
#[schema(as = UpdateHnswConfiguration)]
pub struct UpdateHnsw {
    pub ef_search: Option<u64>,
    pub max_neighbors: Option<u64>,
    pub num_threads: Option<u64>,
    pub resize_factor: Option<f64>,
    pub sync_threshold: Option<u64>,
    pub batch_size: Option<u64>,
}

#[derive(ToSchema)]
#[schema(as = UpdateSpannConfiguration)]
pub struct UpdateSpann {
    pub search_nprobe: Option<u64>,
    pub ef_search: Option<u64>,
}
