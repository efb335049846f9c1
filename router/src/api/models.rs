//! Chroma's JSON shapes of the catalogue's models (http-api.md, "Collection
//! model"; `rust/types/src/collection.rs` and `api_types.rs` in Chroma).

use common::catalog::{CollectionModel, DatabaseModel, TenantModel};
use common::record::metadata_to_json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::configuration::{self, ConfigurationJson};
#[allow(unused_imports)] // named by the schema derive's `value_type`s
use super::schemas::{AnyObject, Metadata};

/// Chroma's `GetTenantResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    /// Chroma Cloud's resource name; always null here.
    #[schema(value_type = Option<String>)]
    pub resource_name: (),
}

impl From<&TenantModel> for Tenant {
    fn from(t: &TenantModel) -> Self {
        Tenant {
            name: t.name.clone(),
            resource_name: (),
        }
    }
}

/// Chroma's `Database`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Database {
    pub id: String,
    pub name: String,
    pub tenant: String,
}

impl From<&DatabaseModel> for Database {
    fn from(d: &DatabaseModel) -> Self {
        Database {
            id: d.id.clone(),
            name: d.name.clone(),
            tenant: d.tenant.clone(),
        }
    }
}

/// The schema of what [`collection_json`] renders (that builds the JSON directly:
/// `schema` is a large fixed shape of which Chroma's clients read a few keys).
#[derive(ToSchema)]
#[schema(as = Collection)]
#[allow(dead_code)]
pub struct CollectionSchema {
    id: String,
    name: String,
    /// Chroma's index schema (which keys are indexed how), derived from the configuration.
    #[schema(value_type = AnyObject)]
    schema: (),
    configuration_json: ConfigurationJson,
    #[schema(value_type = Option<Metadata>)]
    metadata: (),
    /// The embedding dimension, fixed by the first write; null before it.
    dimension: Option<u32>,
    tenant: String,
    database: String,
    /// Always 0: there is no log position to show.
    log_position: i64,
    version: i64,
}

/// The collection model: `{"id", "name", "configuration_json", "schema",
/// "metadata", "dimension", "tenant", "database", "log_position", "version"}`
/// (`Collection`'s serde shape). `schema` is derived from the index settings
/// ([`schema_json`]).
pub fn collection_json(c: &CollectionModel) -> Value {
    let configuration = json!(configuration::render(&c.configuration));
    json!({
        "id": c.id,
        "name": c.name,
        "schema": schema_json(c, &configuration),
        "configuration_json": configuration,
        "metadata": c.metadata.as_ref().map(metadata_to_json),
        "dimension": c.dimension,
        "tenant": c.tenant,
        "database": c.database,
        "log_position": 0,
        "version": c.version,
    })
}

/// Chroma 1.x's default collection schema (`rust/types/src/
/// collection_schema.rs`) with this collection's vector index settings.
/// We keep no schema of our own, but the Python client rebuilds one from
/// the response and refuses e.g. `modify(configuration=...)` when
/// `defaults.float_list.vector_index` is missing, so it must be there.
fn schema_json(c: &CollectionModel, configuration: &Value) -> Value {
    let i = &c.index_config;
    let space = i.space.as_str();
    let hnsw = json!({
        "ef_construction": i.ef_construction,
        "max_neighbors": i.max_neighbors,
        "ef_search": i.ef_search,
        "num_threads": 2,
        "batch_size": 100,
        "sync_threshold": 1000,
        "resize_factor": 1.2,
    });
    let mut embedding_config = json!({"space": space, "source_key": "#document", "hnsw": hnsw});
    let ef = &configuration["embedding_function"];
    if !ef.is_null() {
        embedding_config["embedding_function"] = ef.clone();
    }
    let on = |enabled: bool| json!({"enabled": enabled, "config": {}});
    json!({
        "defaults": {
            "string": {"fts_index": on(false), "string_inverted_index": on(true)},
            "float_list": {"vector_index": {"enabled": false, "config": {"space": space, "hnsw": hnsw}}},
            "sparse_vector": {"sparse_vector_index": {"enabled": false,
                "config": {"embedding_function": {"type": "unknown"}, "bm25": false}}},
            "int": {"int_inverted_index": on(true)},
            "float": {"float_inverted_index": on(true)},
            "bool": {"bool_inverted_index": on(true)},
        },
        "keys": {
            "#embedding": {"float_list": {"vector_index": {"enabled": true, "config": embedding_config}}},
            "#document": {"string": {"fts_index": on(true), "string_inverted_index": on(false)}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::catalog::{CollectionConfiguration, EmbeddingFunction};
    use common::command::IndexConfig;
    use common::{Metadata, MetadataValue, Space};

    #[test]
    fn collection_json_has_chromas_shape() {
        let mut metadata = Metadata::new();
        metadata.insert("a".into(), MetadataValue::Int(1));
        let index = IndexConfig {
            space: Space::Cosine,
            ..IndexConfig::default()
        };
        let c = CollectionModel {
            id: "0a1b2c3d-4e5f-6789-abcd-ef0123456789".into(),
            name: "docs".into(),
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            metadata: Some(metadata),
            configuration: CollectionConfiguration {
                embedding_function: Some(EmbeddingFunction(r#"{"type":"legacy"}"#.into())),
                ..CollectionConfiguration::new(index.clone())
            },
            index_config: index,
            dimension: Some(3),
            version: 2,
            shards: vec![7, 8],
        };
        let mut got = collection_json(&c);
        let schema = got["schema"].take();
        let embedding = &schema["keys"]["#embedding"]["float_list"]["vector_index"]["config"];
        assert_eq!(embedding["space"], "cosine");
        assert_eq!(embedding["embedding_function"], json!({"type": "legacy"}));
        assert!(schema["defaults"]["float_list"]["vector_index"].is_object());
        assert_eq!(
            got,
            json!({
                "id": "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                "name": "docs",
                "configuration_json": {"hnsw": {"space": "cosine", "ef_construction": 100,
                    "ef_search": 100, "max_neighbors": 16, "resize_factor": 1.2,
                    "sync_threshold": 1000}, "spann": null, "embedding_function": {"type": "legacy"}},
                "schema": null,
                "metadata": {"a": 1},
                "dimension": 3,
                "tenant": "default_tenant",
                "database": "default_database",
                "log_position": 0,
                "version": 2,
            })
        );
        let bare = CollectionModel {
            metadata: None,
            dimension: None,
            ..c
        };
        assert_eq!(collection_json(&bare)["metadata"], Value::Null);
        assert_eq!(collection_json(&bare)["dimension"], Value::Null);
    }

    #[test]
    fn tenant_and_database_json() {
        assert_eq!(
            serde_json::to_value(Tenant::from(&TenantModel { name: "t".into() })).unwrap(),
            json!({"name": "t", "resource_name": null})
        );
        let d = DatabaseModel {
            id: "i".into(),
            name: "n".into(),
            tenant: "t".into(),
        };
        assert_eq!(
            serde_json::to_value(Database::from(&d)).unwrap(),
            json!({"id": "i", "name": "n", "tenant": "t"})
        );
    }
}
