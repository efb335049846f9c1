//! The catalogue kept by the metadata Raft group: tenants, databases and
//! collections (with their configuration, dimension and shard list).
//!
//! This module holds what crosses processes: the commands the metadata
//! group's log carries ([`CatalogProposal`]), the reads ([`CatalogRead`]),
//! their replies, the models, the typed collection configuration and its
//! updates, and the validation rules the router and the state machine share.
//! Everything is plain data that bincode can carry (no HTTP, no Chroma JSON:
//! the router's `api` parses and renders that), and every command is
//! deterministic: ids are chosen by the router and carried in the command.

mod configuration;
mod error;
mod model;
mod validate;

use serde::{Deserialize, Serialize};

use crate::record::Metadata;
use crate::registry::{ClusterMap, NodeState, Registration};

pub use configuration::{
    not_a_positive_number, not_an_integer, CollectionConfiguration, ConfigNumber,
    ConfigurationUpdate, EmbeddingFunction, HnswConfiguration, HnswUpdate, SpannConfiguration,
    SpannUpdate, DEFAULT_RESIZE_FACTOR, DEFAULT_SYNC_THRESHOLD,
};
pub use error::CatalogError;
pub use model::{CollectionModel, DatabaseModel, ShardGroupId, TenantModel};
pub use validate::{
    canonical_uuid, is_canonical_uuid, validate_collection_metadata, validate_collection_name,
    validate_database_name, validate_index_config, validate_tenant_name, COLLECTION_NAME_MAX,
    COLLECTION_NAME_MIN, TENANT_DATABASE_NAME_MIN,
};

/// The tenant that exists from bootstrap (and again after a reset).
pub const DEFAULT_TENANT: &str = "default_tenant";
/// The database of [`DEFAULT_TENANT`] that exists from bootstrap.
pub const DEFAULT_DATABASE: &str = "default_database";
/// Its id, as in Chroma's sqlite migration `00004-tenants-databases`.
pub const DEFAULT_DATABASE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// A change to the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogCommand {
    CreateTenant {
        name: String,
    },
    /// `id`: the new database's UUID, chosen by the router.
    CreateDatabase {
        tenant: String,
        name: String,
        id: String,
    },
    /// Also drops every collection of the database; the reply lists them.
    DeleteDatabase {
        tenant: String,
        name: String,
    },
    CreateCollection {
        tenant: String,
        database: String,
        /// The new collection's UUID, chosen by the router.
        id: String,
        name: String,
        metadata: Option<Metadata>,
        /// Parsed by the router from the request's configuration and the
        /// legacy `hnsw:*` metadata keys; its `hnsw` index parameters are the
        /// collection's index settings.
        configuration: CollectionConfiguration,
        /// The Raft groups that will hold the collection's shards.
        shards: Vec<ShardGroupId>,
        /// An existing collection of that name is returned unchanged.
        get_or_create: bool,
    },
    /// `None` leaves a field as it is. `new_metadata` replaces the metadata
    /// (as Chroma does). `new_configuration` is merged into the stored
    /// configuration ([`CollectionConfiguration::merge`]).
    ModifyCollection {
        id: String,
        new_name: Option<String>,
        new_metadata: Option<Metadata>,
        new_configuration: Option<ConfigurationUpdate>,
    },
    DeleteCollection {
        tenant: String,
        database: String,
        name: String,
    },
    /// Compare-and-set of a collection's dimension: sets it when unset,
    /// succeeds when equal, fails naming both dimensions when different.
    SetDimension {
        id: String,
        dimension: u32,
    },
    /// Drops everything and recreates the default tenant and database (the cluster map
    /// stays).
    Reset,
    /// A node announces itself on every start (see [`crate::registry`]).
    RegisterNode {
        id: u64,
        addr: String,
        incarnation: u64,
    },
    /// An operator drains or removes a node.
    SetNodeState {
        id: u64,
        state: NodeState,
    },
    /// The placement driver records the replicas of a group after a change.
    SetGroupReplicas {
        group: u64,
        replicas: Vec<u64>,
    },
    /// The placement driver creates a shard group (see
    /// [`crate::registry::ClusterMap::create_group`]); answered with
    /// [`CatalogSuccess::ShardGroupCreated`].
    CreateShardGroup {
        /// The first group id the config does not use (`shard_count + 1`).
        first_free: u64,
        voters: Vec<u64>,
        leader: u64,
    },
    /// A group created at run time has a leader and its replicas: new collections may
    /// use it.
    ShardGroupReady {
        group: u64,
    },
    /// An operator pauses (or resumes) the placement driver.
    SetPlacementPaused {
        paused: bool,
    },
    /// The placement driver retires a group it created at run time that no collection
    /// uses (refused while one does).
    RetireShardGroup {
        group: u64,
    },
}

impl CatalogCommand {
    /// Whether the command changes the cluster map rather than the catalogue.
    pub fn is_cluster_map(&self) -> bool {
        matches!(
            self,
            CatalogCommand::RegisterNode { .. }
                | CatalogCommand::SetNodeState { .. }
                | CatalogCommand::SetGroupReplicas { .. }
                | CatalogCommand::CreateShardGroup { .. }
                | CatalogCommand::ShardGroupReady { .. }
                | CatalogCommand::SetPlacementPaused { .. }
                | CatalogCommand::RetireShardGroup { .. }
        )
    }
}

/// A catalogue command as proposed, with the id that makes a retried proposal apply once.
pub type CatalogProposal = crate::wire::Proposal<CatalogCommand>;

/// What a command that succeeded did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogSuccess {
    TenantCreated(TenantModel),
    DatabaseCreated(DatabaseModel),
    /// `dropped`: the database's collections, now gone from the catalogue;
    /// the router drops their shard data.
    DatabaseDeleted {
        database: DatabaseModel,
        dropped: Vec<CollectionModel>,
    },
    /// `created` is false when `get_or_create` found the collection; it is then
    /// returned as it was (metadata and configuration of the command ignored).
    CollectionCreated {
        collection: CollectionModel,
        created: bool,
    },
    /// The collection after the change.
    CollectionModified(CollectionModel),
    /// The collection as it was; the router drops its shard data.
    CollectionDeleted(CollectionModel),
    /// The collection, whose dimension is now the one asked for.
    DimensionSet(CollectionModel),
    /// Every collection that existed; the router drops their shard data.
    Reset {
        dropped: Vec<CollectionModel>,
    },
    NodeRegistered(Registration),
    /// The cluster map after the change.
    ClusterMapChanged {
        version: u64,
    },
    /// A shard group was created at run time.
    ShardGroupCreated {
        group: u64,
        version: u64,
    },
}

/// The reply to a command, remembered per request id.
pub type CatalogOutcome = Result<CatalogSuccess, CatalogError>;

/// A read of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogRead {
    GetTenant {
        name: String,
    },
    GetDatabase {
        tenant: String,
        name: String,
    },
    /// Ordered by name (Chroma: `ORDER BY name`).
    ListDatabases {
        tenant: String,
        limit: Option<u32>,
        offset: u32,
    },
    /// Ordered by collection id (Chroma: `ORDER BY collections.id`).
    ListCollections {
        tenant: String,
        database: String,
        limit: Option<u32>,
        offset: u32,
    },
    CountCollections {
        tenant: String,
        database: String,
    },
    GetCollectionByName {
        tenant: String,
        database: String,
        name: String,
    },
    /// Any UUID text form; the tenant and database are the caller's to check.
    GetCollectionById {
        id: String,
    },
    /// The catalogue version: bumped by every change, so routers cache by it.
    Version,
    /// The cluster map (nodes and group replicas).
    ClusterMap,
    /// Collections of every tenant and database, ordered by id, at most `limit` (the
    /// router's dashboard). Last in the enum so older variants keep their encoding.
    AllCollections {
        limit: u32,
    },
    /// The shard groups some collection is spread over, ascending (the placement
    /// driver retires only groups outside it).
    ShardGroupsInUse,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogReadValue {
    Tenant(TenantModel),
    Database(DatabaseModel),
    Databases(Vec<DatabaseModel>),
    /// Boxed: a collection is much larger than every other answer.
    Collection(Box<CollectionModel>),
    Collections(Vec<CollectionModel>),
    Count(u64),
    Version(u64),
    ClusterMap(Box<ClusterMap>),
    Groups(Vec<u64>),
}

pub type CatalogReadReply = Result<CatalogReadValue, CatalogError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_chromas() {
        let e = CatalogError::collection_exists("foo");
        assert_eq!(
            e,
            CatalogError::AlreadyExists("Collection [foo] already exists".into())
        );
        let e = CatalogError::collection_not_found("foo");
        assert_eq!(
            e,
            CatalogError::NotFound("Collection [foo] does not exist".into())
        );
        let e = CatalogError::dimension_mismatch(3, 2);
        assert_eq!(
            e,
            CatalogError::InvalidArgument(
                "Collection expecting embedding with dimension of 3, got 2".into()
            )
        );
        assert_eq!(
            CatalogError::database_missing_for_collection("db"),
            CatalogError::InvalidArgument("Database [db] does not exist".into())
        );
        assert_eq!(
            CatalogError::database_not_found("db").message(),
            "Database [db] not found. Are you sure it exists?"
        );
        assert_eq!(
            CatalogError::database_to_delete_not_found("db").message(),
            "Database [db] not found"
        );
        assert_eq!(
            CatalogError::tenant_not_found("t").message(),
            "Tenant [t] not found"
        );
        assert_eq!(
            CatalogError::tenant_exists("t").message(),
            "Tenant [t] already exists"
        );
        assert_eq!(
            CatalogError::database_exists("d").message(),
            "Database [d] already exists"
        );
    }

    #[test]
    fn wire_types_round_trip_through_serde() {
        let p = CatalogProposal {
            request_id: u128::MAX - 7,
            deadline_ms: 0,
            command: CatalogCommand::CreateCollection {
                tenant: DEFAULT_TENANT.into(),
                database: DEFAULT_DATABASE.into(),
                id: "0a1b2c3d-4e5f-6789-abcd-ef0123456789".into(),
                name: "docs".into(),
                metadata: Some([("k".to_owned(), crate::MetadataValue::Float(0.5))].into()),
                configuration: CollectionConfiguration {
                    embedding_function: Some(EmbeddingFunction(r#"{"type":"legacy"}"#.into())),
                    ..CollectionConfiguration::new(crate::command::IndexConfig::default())
                },
                shards: vec![1, 2],
                get_or_create: true,
            },
        };
        assert_eq!(serde_roundtrip(&p), p);
        let modify = CatalogCommand::ModifyCollection {
            id: "x".into(),
            new_name: None,
            new_metadata: None,
            new_configuration: Some(ConfigurationUpdate {
                hnsw: Some(HnswUpdate {
                    resize_factor: Some(ConfigNumber::Float(2.5)),
                    ..HnswUpdate::default()
                }),
                spann: Some(SpannUpdate::default()),
                embedding_function: None,
            }),
        };
        assert_eq!(serde_roundtrip(&modify), modify);
        let r: CatalogReadReply = Err(CatalogError::tenant_not_found("x"));
        assert_eq!(serde_roundtrip(&r), r);
    }

    /// `common` has no bincode; a serde_json round trip checks the derives
    /// (no untagged enums, no `Value` fields). The node tests use bincode.
    fn serde_roundtrip<T: Serialize + for<'de> Deserialize<'de>>(v: &T) -> T {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }
}
