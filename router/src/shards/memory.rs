//! In-memory shard groups and catalogue for unit tests of the record path.
//!
//! A real, small shard: each group keeps its collections' records in id
//! order and applies the same commands and reads as a node's state machine
//! (add modes, metadata patches, the filter language of `common::filter`,
//! distances of `common::distance`, exact nearest neighbours instead of
//! HNSW). A group can be marked down: it then answers like a group without
//! a leader, which is how tests make one shard of several fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::catalog::CollectionModel;
use common::command::{
    apply_metadata_patch, AddMode, ApplyOutcome, CollectionId, IndexConfig, RecordWrite,
    ShardCommand,
};
use common::read::{
    GetRequest, Include, QueryHit, QueryRequest, RecordView, ShardRead, ShardReadError,
    ShardReadReply, ShardReadValue,
};
use common::{Filter, Metadata};
use parking_lot::Mutex;

use super::client::{Catalogue, ShardClient};
use crate::cluster::ClusterError;
use crate::error::ApiError;

#[derive(Debug, Clone)]
struct Stored {
    embedding: Vec<f32>,
    metadata: Option<Metadata>,
    document: Option<String>,
    uri: Option<String>,
}

/// A collection's part on one group.
#[derive(Debug, Default)]
struct Part {
    config: IndexConfig,
    /// Fixed by the first embedding stored.
    dimension: Option<usize>,
    records: BTreeMap<String, Stored>,
}

/// What one call asked of a group (tests check which groups a request reached).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Propose(ShardCommand),
    Read(ShardRead),
}

/// One group's state: its collections' parts and the ids it dropped (never created again,
/// as on a node).
#[derive(Default)]
struct Group {
    parts: BTreeMap<CollectionId, Part>,
    dropped: BTreeSet<CollectionId>,
}

#[derive(Default)]
pub struct MemoryShards {
    groups: Mutex<BTreeMap<u64, Group>>,
    down: Mutex<BTreeSet<u64>>,
    calls: Mutex<Vec<(u64, Call)>>,
}

impl MemoryShards {
    /// Groups that exist and host no collection yet.
    pub fn new(groups: &[u64]) -> Self {
        let shards = MemoryShards::default();
        shards
            .groups
            .lock()
            .extend(groups.iter().map(|g| (*g, Group::default())));
        shards
    }

    /// From now on `group` answers like a group without a leader.
    pub fn take_down(&self, group: u64) {
        self.down.lock().insert(group);
    }

    /// Every call so far, in order, and forgets them.
    pub fn take_calls(&self) -> Vec<(u64, Call)> {
        std::mem::take(&mut *self.calls.lock())
    }

    /// The ids `group` holds of `collection`, in id order.
    pub fn ids_on(&self, group: u64, collection: &str) -> Vec<String> {
        self.groups
            .lock()
            .get(&group)
            .and_then(|g| g.parts.get(collection))
            .map(|part| part.records.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes `collection`'s part from `group` as if it had never been created there (the
    /// router that created the collection died before creating its parts).
    pub fn lose_part(&self, group: u64, collection: &str) {
        if let Some(g) = self.groups.lock().get_mut(&group) {
            g.parts.remove(collection);
        }
    }

    /// Why `group` cannot answer now, if it cannot.
    fn unavailable(&self, group: u64, call: Call, deadline: Instant) -> Option<ClusterError> {
        self.calls.lock().push((group, call));
        let reason = if Instant::now() >= deadline {
            "the deadline passed"
        } else if self.down.lock().contains(&group) {
            "no leader with a quorum (in-memory group marked down)"
        } else if !self.groups.lock().contains_key(&group) {
            return Some(ClusterError::Failed {
                group,
                reason: "no such group in the cluster config".into(),
            });
        } else {
            return None;
        };
        Some(ClusterError::Unavailable {
            group,
            reason: reason.into(),
        })
    }
}

impl ShardClient for MemoryShards {
    async fn propose(
        &self,
        group: u64,
        command: &ShardCommand,
        deadline: Instant,
    ) -> Result<ApplyOutcome, ClusterError> {
        if let Some(e) = self.unavailable(group, Call::Propose(command.clone()), deadline) {
            return Err(e);
        }
        let mut groups = self.groups.lock();
        Ok(apply(groups.entry(group).or_default(), command))
    }

    async fn read(
        &self,
        group: u64,
        read: &ShardRead,
        deadline: Instant,
    ) -> Result<ShardReadReply, ClusterError> {
        if let Some(e) = self.unavailable(group, Call::Read(read.clone()), deadline) {
            return Err(e);
        }
        let groups = self.groups.lock();
        let parts = groups.get(&group).map(|g| &g.parts);
        let collection = match read {
            ShardRead::Get(r) | ShardRead::Count(r) => &r.collection,
            ShardRead::Query(q) => &q.collection,
        };
        let Some(part) = parts.and_then(|p| p.get(collection)) else {
            return Ok(Err(ShardReadError::NoSuchCollection));
        };
        Ok(answer(part, read))
    }
}

fn apply(group: &mut Group, command: &ShardCommand) -> ApplyOutcome {
    if let Err(e) = command.check_limits() {
        return ApplyOutcome::Rejected(e.to_string());
    }
    let missing = ApplyOutcome::NoSuchCollection;
    let parts = &mut group.parts;
    match command {
        ShardCommand::CreateCollection { collection, .. } if group.dropped.contains(collection) => {
            ApplyOutcome::CollectionDropped
        }
        ShardCommand::CreateCollection { collection, config }
        | ShardCommand::RestoreCollection { collection, config } => {
            group.dropped.remove(collection);
            group
                .parts
                .entry(collection.clone())
                .or_insert_with(|| Part {
                    config: config.clone(),
                    ..Part::default()
                });
            ApplyOutcome::Done
        }
        ShardCommand::DropCollection { collection } => {
            parts.remove(collection);
            group.dropped.insert(collection.clone());
            ApplyOutcome::Done
        }
        ShardCommand::Reset => {
            group.dropped.extend(std::mem::take(parts).into_keys());
            ApplyOutcome::Done
        }
        // Graph hints between replicas: this store has no graph.
        ShardCommand::LinkHints { .. } => ApplyOutcome::Done,
        ShardCommand::ModifyCollection { collection, config } => {
            parts.get_mut(collection).map_or(missing, |p| {
                p.config = config.clone();
                ApplyOutcome::Done
            })
        }
        ShardCommand::Add {
            collection,
            records,
            mode,
        } => parts
            .get_mut(collection)
            .map_or(missing, |p| p.add(records, *mode)),
        ShardCommand::Upsert {
            collection,
            records,
        } => parts
            .get_mut(collection)
            .map_or(missing, |p| p.upsert(records)),
        ShardCommand::Update {
            collection,
            records,
        } => parts
            .get_mut(collection)
            .map_or(missing, |p| p.update(records)),
        ShardCommand::Delete {
            collection,
            ids,
            filter,
            limit,
        } => parts.get_mut(collection).map_or(missing, |p| {
            let selected = p
                .matching(ids.as_deref(), filter)
                .map(|(id, _)| id.clone())
                .collect();
            p.delete(selected, *limit)
        }),
    }
}

fn answer(part: &Part, read: &ShardRead) -> ShardReadReply {
    match read {
        ShardRead::Get(r) => Ok(ShardReadValue::Records(part.get(r))),
        ShardRead::Count(r) => {
            let n = part.matching(r.ids.as_deref(), &r.filter).count();
            Ok(ShardReadValue::Count(n as u64))
        }
        ShardRead::Query(q) => part.query(q).map(ShardReadValue::Hits),
    }
}

impl Part {
    /// The dimension every embedding of `records` has, if it fits the part's.
    fn check_embeddings(&self, records: &[RecordWrite]) -> Result<Option<usize>, ApplyOutcome> {
        let mut dim = self.dimension;
        for e in records.iter().filter_map(|r| r.embedding.as_ref()) {
            match dim {
                Some(d) if d != e.len() => {
                    return Err(ApplyOutcome::Rejected(format!(
                        "Collection expecting embedding with dimension of {d}, got {}",
                        e.len()
                    )))
                }
                _ => dim = Some(e.len()),
            }
        }
        Ok(dim)
    }

    fn add(&mut self, records: &[RecordWrite], mode: AddMode) -> ApplyOutcome {
        let dim = match self.check_embeddings(records) {
            Ok(d) => d,
            Err(refused) => return refused,
        };
        let existing: Vec<String> = records
            .iter()
            .filter(|r| self.records.contains_key(&r.id))
            .map(|r| r.id.clone())
            .collect();
        if mode == AddMode::RejectExisting && !existing.is_empty() {
            return ApplyOutcome::IdsAlreadyExist(existing);
        }
        let new: Vec<&RecordWrite> = records
            .iter()
            .filter(|r| !self.records.contains_key(&r.id))
            .collect();
        if let Some(r) = new.iter().find(|r| r.embedding.is_none()) {
            return ApplyOutcome::Rejected(format!("Add of id {} has no embedding", r.id));
        }
        new.into_iter().for_each(|r| self.insert(r, dim));
        ApplyOutcome::Done
    }

    fn upsert(&mut self, records: &[RecordWrite]) -> ApplyOutcome {
        let dim = match self.check_embeddings(records) {
            Ok(d) => d,
            Err(refused) => return refused,
        };
        if let Some(r) = records
            .iter()
            .find(|r| r.embedding.is_none() && !self.records.contains_key(&r.id))
        {
            return ApplyOutcome::Rejected(format!("Upsert of new id {} has no embedding", r.id));
        }
        for r in records {
            if self.records.contains_key(&r.id) {
                self.merge(r);
            } else {
                self.insert(r, dim);
            }
        }
        ApplyOutcome::Done
    }

    fn update(&mut self, records: &[RecordWrite]) -> ApplyOutcome {
        if let Err(refused) = self.check_embeddings(records) {
            return refused;
        }
        records.iter().for_each(|r| self.merge(r));
        ApplyOutcome::Done
    }

    /// Stores a new record; `check_embeddings` and the callers made sure it
    /// has an embedding of the part's dimension.
    fn insert(&mut self, w: &RecordWrite, dim: Option<usize>) {
        let Some(embedding) = w.embedding.clone() else {
            return;
        };
        self.dimension = self.dimension.or(dim);
        let stored = Stored {
            embedding,
            metadata: w
                .metadata
                .as_ref()
                .and_then(|p| apply_metadata_patch(None, p)),
            document: w.document.clone(),
            uri: w.uri.clone(),
        };
        self.records.insert(w.id.clone(), stored);
    }

    /// Merges into an existing record; ignores ids that do not exist.
    fn merge(&mut self, w: &RecordWrite) {
        let Some(r) = self.records.get_mut(&w.id) else {
            return;
        };
        if let Some(patch) = &w.metadata {
            r.metadata = apply_metadata_patch(r.metadata.take(), patch);
        }
        // A field the write leaves out keeps its value.
        r.document = w.document.clone().or(r.document.take());
        r.uri = w.uri.clone().or(r.uri.take());
        r.embedding = w
            .embedding
            .clone()
            .unwrap_or_else(|| std::mem::take(&mut r.embedding));
    }

    /// Deletes the first `limit` selected records in id order.
    fn delete(&mut self, selected: Vec<String>, limit: Option<usize>) -> ApplyOutcome {
        let limit = limit.unwrap_or(usize::MAX);
        let gone = selected
            .iter()
            .take(limit)
            .filter(|id| self.records.remove(*id).is_some())
            .count();
        ApplyOutcome::Deleted(gone as u64)
    }

    /// Records selected by `ids` (when given) that pass `filter`, in id order.
    fn matching<'a>(
        &'a self,
        ids: Option<&'a [String]>,
        filter: &'a Filter,
    ) -> impl Iterator<Item = (&'a String, &'a Stored)> + 'a {
        let wanted: Option<BTreeSet<&String>> = ids.map(|ids| ids.iter().collect());
        self.records.iter().filter(move |(id, r)| {
            wanted.as_ref().is_none_or(|w| w.contains(id))
                && filter.matches(r.metadata.as_ref(), r.document.as_deref())
        })
    }

    fn get(&self, r: &GetRequest) -> Vec<RecordView> {
        self.matching(r.ids.as_deref(), &r.filter)
            .skip(r.offset)
            .take(r.limit.unwrap_or(usize::MAX))
            .map(|(id, stored)| view(id, stored, r.include))
            .collect()
    }

    /// Exact nearest neighbours per query embedding.
    fn query(&self, q: &QueryRequest) -> Result<Vec<Vec<QueryHit>>, ShardReadError> {
        let mut answers = Vec::with_capacity(q.embeddings.len());
        for embedding in &q.embeddings {
            if let Some(expected) = self.dimension.filter(|d| *d != embedding.len()) {
                return Err(ShardReadError::DimensionMismatch {
                    expected: expected as u32,
                    got: embedding.len() as u32,
                });
            }
            let mut hits: Vec<QueryHit> = self
                .matching(q.ids.as_deref(), &q.filter)
                .map(|(id, stored)| QueryHit {
                    distance: self.config.space.distance(embedding, &stored.embedding),
                    record: view(id, stored, q.include),
                })
                .collect();
            hits.sort_by(common::read::hit_order);
            hits.truncate(q.n_results);
            answers.push(hits);
        }
        Ok(answers)
    }
}

fn view(id: &str, r: &Stored, include: Include) -> RecordView {
    RecordView {
        id: id.to_owned(),
        embedding: include.embeddings.then(|| r.embedding.clone()),
        metadata: r.metadata.clone().filter(|_| include.metadatas),
        document: r.document.clone().filter(|_| include.documents),
        uri: r.uri.clone().filter(|_| include.uris),
    }
}

/// The metadata group, holding the collections a test created.
#[derive(Default)]
pub struct MemoryCatalogue {
    collections: Mutex<BTreeMap<String, CollectionModel>>,
    forgotten: Mutex<Vec<String>>,
}

impl MemoryCatalogue {
    pub fn with(collection: &CollectionModel) -> Self {
        let catalogue = MemoryCatalogue::default();
        catalogue
            .collections
            .lock()
            .insert(collection.id.clone(), collection.clone());
        catalogue
    }

    /// Deletes the collection, as another router would.
    pub fn delete(&self, id: &str) {
        self.collections.lock().remove(id);
    }

    /// The ids the record path dropped from its cache.
    pub fn forgotten(&self) -> Vec<String> {
        self.forgotten.lock().clone()
    }
}

impl Catalogue for MemoryCatalogue {
    async fn refresh(&self, id: &str, _deadline: Instant) -> Result<CollectionModel, ApiError> {
        self.collections
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("Collection [{id}] does not exist")))
    }

    fn forget(&self, id: &str) {
        self.forgotten.lock().push(id.to_owned());
    }

    async fn ensure_dimension(
        &self,
        collection: &CollectionModel,
        dimension: u32,
        _deadline: Instant,
    ) -> Result<CollectionModel, ApiError> {
        let mut collections = self.collections.lock();
        let Some(current) = collections.get_mut(&collection.id) else {
            return Err(ApiError::NotFound(format!(
                "Collection [{}] does not exist",
                collection.id
            )));
        };
        match current.dimension {
            Some(d) if d != dimension => {
                Err(common::catalog::CatalogError::dimension_mismatch(d, dimension).into())
            }
            _ => {
                current.dimension = Some(dimension);
                Ok(current.clone())
            }
        }
    }
}
