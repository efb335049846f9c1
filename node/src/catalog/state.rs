//! The catalogue's data: tenants, databases, collections, the name index and
//! the catalogue version. Plain ordered maps, so iteration (and with it
//! snapshots and listings) is deterministic.

use std::collections::{BTreeMap, BTreeSet};

use common::catalog::{
    CollectionModel, DatabaseModel, DEFAULT_DATABASE, DEFAULT_DATABASE_ID, DEFAULT_TENANT,
};
use common::registry::ClusterMap;

/// `(tenant, database)`.
pub(super) type DatabaseKey = (String, String);
/// `(tenant, database, collection name)`.
pub(super) type NameKey = (String, String, String);

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogState {
    pub(super) tenants: BTreeSet<String>,
    /// Database id by `(tenant, name)`.
    pub(super) databases: BTreeMap<DatabaseKey, String>,
    /// Collections by id.
    pub(super) collections: BTreeMap<String, CollectionModel>,
    /// Collection id by `(tenant, database, name)`; derived from `collections`.
    pub(super) names: BTreeMap<NameKey, String>,
    /// Bumped by every change; never goes back, not even on reset.
    pub(super) version: u64,
    /// Nodes and group replicas; untouched by a reset, versioned on its own.
    pub(super) map: ClusterMap,
}

impl Default for CatalogState {
    /// The bootstrap catalogue: the default tenant with its default database.
    fn default() -> Self {
        let mut state = CatalogState {
            tenants: BTreeSet::new(),
            databases: BTreeMap::new(),
            collections: BTreeMap::new(),
            names: BTreeMap::new(),
            version: 0,
            map: ClusterMap::default(),
        };
        state.bootstrap();
        state
    }
}

impl CatalogState {
    /// Adds the default tenant and database (on an empty catalogue).
    pub(super) fn bootstrap(&mut self) {
        self.tenants.insert(DEFAULT_TENANT.to_owned());
        self.databases.insert(
            (DEFAULT_TENANT.to_owned(), DEFAULT_DATABASE.to_owned()),
            DEFAULT_DATABASE_ID.to_owned(),
        );
    }

    pub(super) fn bump_version(&mut self) {
        self.version = self.version.saturating_add(1);
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn cluster_map(&self) -> &ClusterMap {
        &self.map
    }

    pub(super) fn database(&self, tenant: &str, name: &str) -> Option<DatabaseModel> {
        self.databases
            .get(&(tenant.to_owned(), name.to_owned()))
            .map(|id| DatabaseModel {
                id: id.clone(),
                name: name.to_owned(),
                tenant: tenant.to_owned(),
            })
    }

    pub(super) fn collection_by_name(
        &self,
        tenant: &str,
        database: &str,
        name: &str,
    ) -> Option<&CollectionModel> {
        let key = (tenant.to_owned(), database.to_owned(), name.to_owned());
        self.names.get(&key).and_then(|id| self.collections.get(id))
    }

    /// The collections of one database, ordered by id.
    pub(super) fn collections_in<'a>(
        &'a self,
        tenant: &'a str,
        database: &'a str,
    ) -> impl Iterator<Item = &'a CollectionModel> + 'a {
        self.collections
            .values()
            .filter(move |c| c.tenant == tenant && c.database == database)
    }

    pub(super) fn insert_collection(&mut self, c: CollectionModel) {
        self.names.insert(name_key(&c), c.id.clone());
        self.collections.insert(c.id.clone(), c);
    }

    pub(super) fn remove_collection(&mut self, id: &str) -> Option<CollectionModel> {
        let c = self.collections.remove(id)?;
        self.names.remove(&name_key(&c));
        Some(c)
    }
}

pub(super) fn name_key(c: &CollectionModel) -> NameKey {
    (c.tenant.clone(), c.database.clone(), c.name.clone())
}
