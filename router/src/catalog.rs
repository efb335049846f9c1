//! The catalogue as the router sees it: commands and reads on the metadata
//! Raft group, and a cache of collections by id for the record paths.
//!
//! What a cached collection is used for never goes stale in a way that
//! matters: its id, shard list and space never change, and its dimension only
//! goes from unset to set (a compare-and-set on the metadata group, so an
//! unset cached dimension is checked there). A collection deleted through
//! another router shows up as "does not exist" on its shards; the record
//! paths then drop the cached entry and ask the metadata group again
//! ([`Catalog::refresh`]). Metadata endpoints (get / list / count) always
//! read the metadata group, so a collection created through one router is
//! usable through every other at once.

use std::collections::HashMap;
use std::time::Instant;

use common::catalog::{
    CatalogCommand, CatalogOutcome, CatalogRead, CatalogReadReply, CatalogReadValue,
    CatalogSuccess, CollectionModel,
};
use common::placement::METADATA_GROUP;
use parking_lot::RwLock;

use crate::cluster::{ClusterClient, ClusterError};
use crate::error::ApiError;

pub struct Catalog<'a> {
    cluster: &'a ClusterClient,
    cache: &'a CollectionCache,
}

/// Collections by id, as last read from the metadata group.
#[derive(Default)]
pub struct CollectionCache {
    by_id: RwLock<HashMap<String, CollectionModel>>,
}

impl CollectionCache {
    pub fn get(&self, id: &str) -> Option<CollectionModel> {
        self.by_id.read().get(id).cloned()
    }

    pub fn remember(&self, model: &CollectionModel) {
        self.by_id.write().insert(model.id.clone(), model.clone());
    }

    pub fn forget(&self, id: &str) {
        self.by_id.write().remove(id);
    }

    pub fn clear(&self) {
        self.by_id.write().clear();
    }
}

/// The metadata group's unavailability, worded for the client.
pub fn metadata_unavailable(e: ClusterError) -> ApiError {
    match e {
        ClusterError::Unavailable { reason, .. } => ApiError::Unavailable(format!(
            "The metadata group (Raft group {METADATA_GROUP}) is unavailable: {reason}"
        )),
        ClusterError::Failed { reason, .. } => ApiError::Internal(format!(
            "The metadata group (Raft group {METADATA_GROUP}) failed the request: {reason}"
        )),
        ClusterError::TooLarge { size, limit, .. } => ApiError::BatchSizeExceeded(format!(
            "The request is {size} bytes encoded, over the limit of {limit} (MAX_PROPOSAL_BYTES)"
        )),
    }
}

impl<'a> Catalog<'a> {
    pub fn new(cluster: &'a ClusterClient, cache: &'a CollectionCache) -> Self {
        Catalog { cluster, cache }
    }

    /// Proposes `command` with a fresh request id (kept across the client's
    /// internal retries, so it applies once).
    pub async fn propose(
        &self,
        command: CatalogCommand,
        deadline: Instant,
    ) -> Result<CatalogSuccess, ApiError> {
        Ok(self.propose_outcome(command, deadline).await??)
    }

    /// Proposes `command`; the catalogue's refusal is the caller's to look at (the
    /// metadata group being unreachable is not).
    pub async fn propose_outcome(
        &self,
        command: CatalogCommand,
        deadline: Instant,
    ) -> Result<CatalogOutcome, ApiError> {
        let outcome = self
            .cluster
            .propose_catalog(command, deadline)
            .await
            .map_err(metadata_unavailable)?;
        if let Ok(success) = &outcome {
            self.observe(success);
        }
        Ok(outcome)
    }

    pub async fn read(
        &self,
        read: CatalogRead,
        deadline: Instant,
    ) -> Result<CatalogReadValue, ApiError> {
        let reply: CatalogReadReply = self
            .cluster
            .read(METADATA_GROUP, &read, deadline)
            .await
            .map_err(metadata_unavailable)?;
        let value = reply?;
        if let CatalogReadValue::Collection(c) = &value {
            self.cache.remember(c);
        }
        Ok(value)
    }

    /// Keeps the cache in step with what a command did.
    fn observe(&self, success: &CatalogSuccess) {
        match success {
            CatalogSuccess::CollectionCreated { collection: c, .. }
            | CatalogSuccess::CollectionModified(c)
            | CatalogSuccess::DimensionSet(c) => self.cache.remember(c),
            CatalogSuccess::CollectionDeleted(c) => self.cache.forget(&c.id),
            CatalogSuccess::DatabaseDeleted { dropped, .. } => {
                dropped.iter().for_each(|c| self.cache.forget(&c.id))
            }
            CatalogSuccess::Reset { .. } => self.cache.clear(),
            CatalogSuccess::TenantCreated(_)
            | CatalogSuccess::DatabaseCreated(_)
            | CatalogSuccess::NodeRegistered(_)
            | CatalogSuccess::ClusterMapChanged { .. }
            | CatalogSuccess::ShardGroupCreated { .. } => {}
        }
    }

    /// The collection `id` of `tenant`/`database`, from the cache or the
    /// metadata group. 404 when it does not exist there.
    pub async fn collection(
        &self,
        tenant: &str,
        database: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<CollectionModel, ApiError> {
        let model = match self.cache.get(id) {
            Some(m) => m,
            None => self.fetch(id, deadline).await?,
        };
        if model.tenant != tenant || model.database != database {
            return Err(ApiError::NotFound(format!(
                "Collection [{id}] does not exist"
            )));
        }
        Ok(model)
    }

    /// Drops a cached collection (it turned out to be gone).
    pub fn forget(&self, id: &str) {
        self.cache.forget(id);
    }

    /// Drops the cached collection and reads it again from the metadata group.
    pub async fn refresh(&self, id: &str, deadline: Instant) -> Result<CollectionModel, ApiError> {
        self.cache.forget(id);
        self.fetch(id, deadline).await
    }

    async fn fetch(&self, id: &str, deadline: Instant) -> Result<CollectionModel, ApiError> {
        match self
            .read(
                CatalogRead::GetCollectionById { id: id.to_owned() },
                deadline,
            )
            .await?
        {
            CatalogReadValue::Collection(c) => Ok(*c),
            other => Err(unexpected(&other)),
        }
    }

    /// Fixes the collection's dimension at `dimension` if unset; fails (400,
    /// naming both) when it is set to another.
    pub async fn ensure_dimension(
        &self,
        collection: &CollectionModel,
        dimension: u32,
        deadline: Instant,
    ) -> Result<CollectionModel, ApiError> {
        match collection.dimension {
            Some(d) if d == dimension => Ok(collection.clone()),
            Some(d) => Err(common::catalog::CatalogError::dimension_mismatch(d, dimension).into()),
            None => match self
                .propose(
                    CatalogCommand::SetDimension {
                        id: collection.id.clone(),
                        dimension,
                    },
                    deadline,
                )
                .await?
            {
                CatalogSuccess::DimensionSet(c) => Ok(c),
                other => Err(unexpected(&other)),
            },
        }
    }
}

/// A catalogue answer of the wrong kind: a bug somewhere, never the user's.
pub fn unexpected(value: &impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("unexpected catalogue answer {value:?}"))
}
