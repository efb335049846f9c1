//! Answering catalogue reads. Orders follow Chroma's sqlite sysdb
//! (`rust/sysdb/src/sqlite.rs`): databases by name, collections by id. A
//! listing or count in a database (or tenant) that does not exist is empty,
//! as there.

use common::catalog::{
    canonical_uuid, CatalogError, CatalogRead, CatalogReadReply, CatalogReadValue, TenantModel,
};

use super::state::CatalogState;

fn page<T>(items: impl Iterator<Item = T>, limit: Option<u32>, offset: u32) -> Vec<T> {
    let limit = limit.map_or(usize::MAX, |l| l as usize);
    items.skip(offset as usize).take(limit).collect()
}

impl CatalogState {
    pub(super) fn read(&self, read: &CatalogRead) -> CatalogReadReply {
        match read {
            CatalogRead::GetTenant { name } => {
                if self.tenants.contains(name) {
                    Ok(CatalogReadValue::Tenant(TenantModel { name: name.clone() }))
                } else {
                    Err(CatalogError::tenant_not_found(name))
                }
            }
            CatalogRead::GetDatabase { tenant, name } => self
                .database(tenant, name)
                .map(CatalogReadValue::Database)
                .ok_or_else(|| CatalogError::database_not_found(name)),
            CatalogRead::ListDatabases {
                tenant,
                limit,
                offset,
            } => {
                // `databases` is ordered by (tenant, name): one tenant's are by name.
                let databases = self
                    .databases
                    .keys()
                    .filter(|(t, _)| t == tenant)
                    .filter_map(|(t, name)| self.database(t, name));
                Ok(CatalogReadValue::Databases(page(
                    databases, *limit, *offset,
                )))
            }
            CatalogRead::ListCollections {
                tenant,
                database,
                limit,
                offset,
            } => {
                let collections = self.collections_in(tenant, database).cloned();
                Ok(CatalogReadValue::Collections(page(
                    collections,
                    *limit,
                    *offset,
                )))
            }
            CatalogRead::CountCollections { tenant, database } => Ok(CatalogReadValue::Count(
                self.collections_in(tenant, database).count() as u64,
            )),
            CatalogRead::GetCollectionByName {
                tenant,
                database,
                name,
            } => self
                .collection_by_name(tenant, database, name)
                .map(|c| CatalogReadValue::Collection(Box::new(c.clone())))
                .ok_or_else(|| CatalogError::collection_not_found(name)),
            CatalogRead::GetCollectionById { id } => canonical_uuid(id)
                .and_then(|canonical| self.collections.get(&canonical))
                .map(|c| CatalogReadValue::Collection(Box::new(c.clone())))
                .ok_or_else(|| CatalogError::collection_not_found(id)),
            CatalogRead::Version => Ok(CatalogReadValue::Version(self.version)),
            CatalogRead::ClusterMap => Ok(CatalogReadValue::ClusterMap(Box::new(self.map.clone()))),
            CatalogRead::AllCollections { limit } => Ok(CatalogReadValue::Collections(page(
                self.collections.values().cloned(),
                Some(*limit),
                0,
            ))),
            CatalogRead::ShardGroupsInUse => {
                let used: std::collections::BTreeSet<u64> = self
                    .collections
                    .values()
                    .flat_map(|c| c.shards.iter().copied())
                    .collect();
                Ok(CatalogReadValue::Groups(used.into_iter().collect()))
            }
        }
    }
}
