//! Applying one catalogue command. Each command is checked completely before
//! anything changes, so a refused command leaves the catalogue as it was; a
//! command that changes something bumps the catalogue version once.
//!
//! The order of checks follows Chroma's frontend and sqlite sysdb
//! (`rust/frontend/src/impls/service_based_frontend.rs`,
//! `rust/sysdb/src/sqlite.rs`): request validation (names, metadata) first,
//! then the lookups.

use common::catalog::{
    is_canonical_uuid, validate_collection_metadata, validate_collection_name,
    validate_database_name, validate_tenant_name, CatalogCommand, CatalogError, CatalogOutcome,
    CatalogSuccess, CollectionConfiguration, CollectionModel, ConfigurationUpdate, DatabaseModel,
    ShardGroupId, TenantModel,
};
use common::record::Metadata;
use common::registry::RegistryError;

use super::state::CatalogState;

/// The fields of [`CatalogCommand::CreateCollection`].
struct NewCollection<'a> {
    tenant: &'a str,
    database: &'a str,
    id: &'a str,
    name: &'a str,
    metadata: Option<&'a Metadata>,
    configuration: &'a CollectionConfiguration,
    shards: &'a [ShardGroupId],
    get_or_create: bool,
}

/// Cluster-map refusals travel as catalogue errors (the map lives in the catalogue's log).
fn registry_error(e: RegistryError) -> CatalogError {
    match e {
        RegistryError::UnknownNode(_) => CatalogError::NotFound(e.to_string()),
        RegistryError::Removed(_) | RegistryError::Invalid(_) | RegistryError::Full(_) => {
            CatalogError::InvalidArgument(e.to_string())
        }
    }
}

impl CatalogState {
    fn map_changed(&self) -> CatalogSuccess {
        CatalogSuccess::ClusterMapChanged {
            version: self.map.version,
        }
    }

    pub(super) fn apply_command(&mut self, command: &CatalogCommand) -> CatalogOutcome {
        match command {
            CatalogCommand::CreateTenant { name } => self.create_tenant(name),
            CatalogCommand::CreateDatabase { tenant, name, id } => {
                self.create_database(tenant, name, id)
            }
            CatalogCommand::DeleteDatabase { tenant, name } => self.delete_database(tenant, name),
            CatalogCommand::CreateCollection {
                tenant,
                database,
                id,
                name,
                metadata,
                configuration,
                shards,
                get_or_create,
            } => self.create_collection(NewCollection {
                tenant,
                database,
                id,
                name,
                metadata: metadata.as_ref(),
                configuration,
                shards,
                get_or_create: *get_or_create,
            }),
            CatalogCommand::ModifyCollection {
                id,
                new_name,
                new_metadata,
                new_configuration,
            } => self.modify_collection(
                id,
                new_name.as_deref(),
                new_metadata.as_ref(),
                new_configuration.as_ref(),
            ),
            CatalogCommand::DeleteCollection {
                tenant,
                database,
                name,
            } => self.delete_collection(tenant, database, name),
            CatalogCommand::SetDimension { id, dimension } => self.set_dimension(id, *dimension),
            CatalogCommand::Reset => Ok(self.reset()),
            CatalogCommand::RegisterNode {
                id,
                addr,
                incarnation,
            } => self
                .map
                .register(*id, addr, *incarnation)
                .map(CatalogSuccess::NodeRegistered)
                .map_err(registry_error),
            CatalogCommand::SetNodeState { id, state } => self
                .map
                .set_state(*id, *state)
                .map(|()| self.map_changed())
                .map_err(registry_error),
            CatalogCommand::SetGroupReplicas { group, replicas } => self
                .map
                .set_group(*group, replicas)
                .map(|()| self.map_changed())
                .map_err(registry_error),
            CatalogCommand::CreateShardGroup {
                first_free,
                voters,
                leader,
            } => self
                .map
                .create_group(*first_free, voters, *leader)
                .map(|group| CatalogSuccess::ShardGroupCreated {
                    group,
                    version: self.map.version,
                })
                .map_err(registry_error),
            CatalogCommand::ShardGroupReady { group } => self
                .map
                .mark_group_ready(*group)
                .map(|()| self.map_changed())
                .map_err(registry_error),
            CatalogCommand::SetPlacementPaused { paused } => {
                self.map.set_placement_paused(*paused);
                Ok(self.map_changed())
            }
            CatalogCommand::RetireShardGroup { group } => self.retire_shard_group(*group),
        }
    }

    fn retire_shard_group(&mut self, group: u64) -> CatalogOutcome {
        if let Some(c) = self
            .collections
            .values()
            .find(|c| c.shards.contains(&group))
        {
            return Err(CatalogError::invalid(format!(
                "shard group {group} holds collection {}: it cannot be retired",
                c.id
            )));
        }
        self.map
            .retire_group(group)
            .map(|()| self.map_changed())
            .map_err(registry_error)
    }

    fn create_tenant(&mut self, name: &str) -> CatalogOutcome {
        validate_tenant_name(name)?;
        if self.tenants.contains(name) {
            return Err(CatalogError::tenant_exists(name));
        }
        self.tenants.insert(name.to_owned());
        self.bump_version();
        Ok(CatalogSuccess::TenantCreated(TenantModel {
            name: name.to_owned(),
        }))
    }

    fn create_database(&mut self, tenant: &str, name: &str, id: &str) -> CatalogOutcome {
        validate_database_name(name)?;
        if !is_canonical_uuid(id) {
            return Err(CatalogError::invalid(format!("Invalid database id [{id}]")));
        }
        if !self.tenants.contains(tenant) {
            return Err(CatalogError::tenant_not_found(tenant));
        }
        let key = (tenant.to_owned(), name.to_owned());
        if self.databases.contains_key(&key) {
            return Err(CatalogError::database_exists(name));
        }
        if self.databases.values().any(|existing| existing == id) {
            return Err(CatalogError::AlreadyExists(format!(
                "Database id [{id}] already exists"
            )));
        }
        self.databases.insert(key, id.to_owned());
        self.bump_version();
        Ok(CatalogSuccess::DatabaseCreated(DatabaseModel {
            id: id.to_owned(),
            name: name.to_owned(),
            tenant: tenant.to_owned(),
        }))
    }

    fn delete_database(&mut self, tenant: &str, name: &str) -> CatalogOutcome {
        let database = self
            .database(tenant, name)
            .ok_or_else(|| CatalogError::database_to_delete_not_found(name))?;
        let ids: Vec<String> = self
            .collections_in(tenant, name)
            .map(|c| c.id.clone())
            .collect();
        let dropped = ids
            .iter()
            .filter_map(|id| self.remove_collection(id))
            .collect();
        self.databases.remove(&(tenant.to_owned(), name.to_owned()));
        self.bump_version();
        Ok(CatalogSuccess::DatabaseDeleted { database, dropped })
    }

    fn create_collection(&mut self, new: NewCollection<'_>) -> CatalogOutcome {
        validate_collection_name("name", new.name)?;
        if let Some(metadata) = new.metadata {
            validate_collection_metadata("metadata", metadata)?;
        }
        // What only a faulty router would send; refused whatever the state.
        if !is_canonical_uuid(new.id) {
            return Err(CatalogError::invalid(format!(
                "Invalid collection id [{}]",
                new.id
            )));
        }
        // Capped, not refused, above the ranges: see `IndexConfig::capped`.
        let configuration = new.configuration.capped();
        configuration.validate()?;
        validate_shards(new.shards)?;
        if let Some(&retired) = new.shards.iter().find(|g| self.map.retired.contains(g)) {
            return Err(CatalogError::ShardGroupRetired(retired));
        }

        if let Some(existing) = self.collection_by_name(new.tenant, new.database, new.name) {
            return if new.get_or_create {
                Ok(CatalogSuccess::CollectionCreated {
                    collection: existing.clone(),
                    created: false,
                })
            } else {
                Err(CatalogError::collection_exists(new.name))
            };
        }
        if self.database(new.tenant, new.database).is_none() {
            return Err(CatalogError::database_missing_for_collection(new.database));
        }
        if self.collections.contains_key(new.id) {
            return Err(CatalogError::AlreadyExists(format!(
                "Collection id [{}] already exists",
                new.id
            )));
        }
        let collection = CollectionModel {
            id: new.id.to_owned(),
            name: new.name.to_owned(),
            tenant: new.tenant.to_owned(),
            database: new.database.to_owned(),
            metadata: new.metadata.cloned(),
            index_config: configuration.hnsw.index.clone(),
            configuration,
            dimension: None,
            version: 0,
            shards: new.shards.to_vec(),
        };
        self.insert_collection(collection.clone());
        self.bump_version();
        Ok(CatalogSuccess::CollectionCreated {
            collection,
            created: true,
        })
    }

    fn modify_collection(
        &mut self,
        id: &str,
        new_name: Option<&str>,
        new_metadata: Option<&Metadata>,
        new_configuration: Option<&ConfigurationUpdate>,
    ) -> CatalogOutcome {
        if let Some(name) = new_name {
            validate_collection_name("new_name", name)?;
        }
        if let Some(metadata) = new_metadata {
            validate_collection_metadata("new_metadata", metadata)?;
        }
        let current = self
            .collections
            .get(id)
            .ok_or_else(|| CatalogError::collection_not_found(id))?;
        if let Some(name) = new_name {
            if name != current.name
                && self
                    .collection_by_name(&current.tenant, &current.database, name)
                    .is_some()
            {
                return Err(CatalogError::collection_exists(name));
            }
        }
        let configuration = match new_configuration {
            Some(update) => Some(current.configuration.merge(&current.index_config, update)?),
            None => None,
        };
        if new_name.is_none() && new_metadata.is_none() && configuration.is_none() {
            return Ok(CatalogSuccess::CollectionModified(current.clone()));
        }

        let mut collection = self
            .remove_collection(id)
            .ok_or_else(|| CatalogError::collection_not_found(id))?;
        if let Some(name) = new_name {
            collection.name = name.to_owned();
        }
        if let Some(metadata) = new_metadata {
            collection.metadata = Some(metadata.clone());
        }
        if let Some((configuration, index_config)) = configuration {
            collection.configuration = configuration;
            collection.index_config = index_config;
        }
        collection.version = collection.version.saturating_add(1);
        self.insert_collection(collection.clone());
        self.bump_version();
        Ok(CatalogSuccess::CollectionModified(collection))
    }

    fn delete_collection(&mut self, tenant: &str, database: &str, name: &str) -> CatalogOutcome {
        let id = self
            .collection_by_name(tenant, database, name)
            .map(|c| c.id.clone())
            .ok_or_else(|| CatalogError::collection_not_found(name))?;
        let collection = self
            .remove_collection(&id)
            .ok_or_else(|| CatalogError::collection_not_found(name))?;
        self.bump_version();
        Ok(CatalogSuccess::CollectionDeleted(collection))
    }

    fn set_dimension(&mut self, id: &str, dimension: u32) -> CatalogOutcome {
        if dimension == 0 {
            return Err(CatalogError::invalid(
                "Embedding dimension must be at least 1, got 0",
            ));
        }
        let collection = self
            .collections
            .get_mut(id)
            .ok_or_else(|| CatalogError::collection_not_found(id))?;
        match collection.dimension {
            Some(current) if current == dimension => {
                Ok(CatalogSuccess::DimensionSet(collection.clone()))
            }
            Some(current) => Err(CatalogError::dimension_mismatch(current, dimension)),
            None => {
                collection.dimension = Some(dimension);
                collection.version = collection.version.saturating_add(1);
                let collection = collection.clone();
                self.bump_version();
                Ok(CatalogSuccess::DimensionSet(collection))
            }
        }
    }

    fn reset(&mut self) -> CatalogSuccess {
        let dropped = std::mem::take(&mut self.collections)
            .into_values()
            .collect();
        self.names.clear();
        self.databases.clear();
        self.tenants.clear();
        self.bootstrap();
        self.bump_version();
        CatalogSuccess::Reset { dropped }
    }
}

fn validate_shards(shards: &[ShardGroupId]) -> Result<(), CatalogError> {
    if shards.is_empty() {
        return Err(CatalogError::invalid(
            "A collection needs at least one shard",
        ));
    }
    let mut sorted = shards.to_vec();
    sorted.sort_unstable();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(CatalogError::invalid(format!(
            "Shard groups of a collection must be distinct, got {shards:?}"
        )));
    }
    Ok(())
}
