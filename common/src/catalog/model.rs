//! What the catalogue holds about tenants, databases and collections, with the
//! JSON shapes of Chroma's HTTP API (http-api.md, "Collection model").
//!
//! The serde derives give the bincode form used between processes; the HTTP
//! JSON goes through the `to_json` methods only.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::command::IndexConfig;
use crate::record::{metadata_to_json, Metadata};

/// Identifies a shard's Raft group.
pub type ShardGroupId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantModel {
    pub name: String,
}

impl TenantModel {
    /// Chroma's `GetTenantResponse`: `{"name", "resource_name"}`.
    pub fn to_json(&self) -> Value {
        json!({ "name": self.name, "resource_name": null })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseModel {
    /// UUID, hyphenated lower case.
    pub id: String,
    pub name: String,
    pub tenant: String,
}

impl DatabaseModel {
    /// Chroma's `Database`: `{"id", "name", "tenant"}`.
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id, "name": self.name, "tenant": self.tenant })
    }
}

/// One collection as the catalogue holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionModel {
    /// UUID, hyphenated lower case; chosen by the router at creation.
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub database: String,
    /// `None` or a non-empty map (Chroma refuses empty collection metadata).
    pub metadata: Option<Metadata>,
    /// Chroma's `configuration_json` object, as JSON text (so bincode can
    /// carry it); always a JSON object.
    pub configuration_json: String,
    /// Space and HNSW parameters parsed from the configuration.
    pub index_config: IndexConfig,
    /// Fixed by the first write; `None` until then.
    pub dimension: Option<u32>,
    /// Starts at 0; bumped by every change to this collection.
    pub version: u64,
    /// The Raft groups holding the collection's shards, in shard order.
    pub shards: Vec<ShardGroupId>,
}

impl CollectionModel {
    /// The collection model of Chroma's HTTP API: `{"id", "name",
    /// "configuration_json", "schema", "metadata", "dimension", "tenant",
    /// "database", "log_position", "version"}` (`rust/types/src/collection.rs`,
    /// `Collection`'s serde shape). `schema` is derived from the index
    /// settings ([`CollectionModel::schema_json`]).
    pub fn to_json(&self) -> Value {
        let configuration =
            serde_json::from_str::<Value>(&self.configuration_json).unwrap_or(Value::Null);
        json!({
            "id": self.id,
            "name": self.name,
            "configuration_json": configuration,
            "schema": self.schema_json(&configuration),
            "metadata": self.metadata.as_ref().map(metadata_to_json),
            "dimension": self.dimension,
            "tenant": self.tenant,
            "database": self.database,
            "log_position": 0,
            "version": self.version,
        })
    }
}

impl CollectionModel {
    /// Chroma 1.x's default collection schema (`rust/types/src/
    /// collection_schema.rs`) with this collection's vector index settings.
    /// We keep no schema of our own, but the Python client rebuilds one from
    /// the response and refuses e.g. `modify(configuration=...)` when
    /// `defaults.float_list.vector_index` is missing, so it must be there.
    fn schema_json(&self, configuration: &Value) -> Value {
        let i = &self.index_config;
        let space = match i.space {
            crate::Space::L2 => "l2",
            crate::Space::Cosine => "cosine",
            crate::Space::Ip => "ip",
        };
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::MetadataValue;

    #[test]
    fn collection_json_has_chromas_shape() {
        let mut metadata = Metadata::new();
        metadata.insert("a".into(), MetadataValue::Int(1));
        let c = CollectionModel {
            id: "0a1b2c3d-4e5f-6789-abcd-ef0123456789".into(),
            name: "docs".into(),
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            metadata: Some(metadata),
            configuration_json:
                r#"{"hnsw":{"space":"cosine","ef_search":100},"embedding_function":null}"#.into(),
            index_config: IndexConfig {
                space: crate::Space::Cosine,
                ..IndexConfig::default()
            },
            dimension: Some(3),
            version: 2,
            shards: vec![7, 8],
        };
        let mut got = c.to_json();
        let schema = got["schema"].take();
        assert_eq!(
            schema["keys"]["#embedding"]["float_list"]["vector_index"]["config"]["space"],
            "cosine"
        );
        assert!(schema["defaults"]["float_list"]["vector_index"].is_object());
        assert_eq!(
            got,
            json!({
                "id": "0a1b2c3d-4e5f-6789-abcd-ef0123456789",
                "name": "docs",
                "configuration_json": {"hnsw": {"space": "cosine", "ef_search": 100}, "embedding_function": null},
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
        assert_eq!(bare.to_json()["metadata"], Value::Null);
        assert_eq!(bare.to_json()["dimension"], Value::Null);
    }

    #[test]
    fn tenant_and_database_json() {
        assert_eq!(
            TenantModel { name: "t".into() }.to_json(),
            json!({"name": "t", "resource_name": null})
        );
        let d = DatabaseModel {
            id: "i".into(),
            name: "n".into(),
            tenant: "t".into(),
        };
        assert_eq!(d.to_json(), json!({"id": "i", "name": "n", "tenant": "t"}));
    }
}
