//! The shard state machine: applies committed commands in log order,
//! deterministically, so every replica that applies the same log holds the
//! same records (and so reports the same digest).

use std::collections::{BTreeMap, BTreeSet};

use common::command::{ApplyOutcome, CollectionId, ShardCommand};
use common::read::{GetRequest, QueryHit, QueryRequest, RecordView, ShardRead, ShardReadValue};

use super::collection::CollectionShard;
use super::error::ShardError;
use super::indexer::IndexJob;
use super::read::{GetProgress, QueryProgress};
use crate::raft::dedup::RequestDedup;
use crate::raft::state_machine::BackgroundRole;
pub use crate::raft::AppliedPosition;

/// How many request ids a shard remembers. A retry arrives within seconds;
/// this many writes is far more than a shard applies in that time.
pub const DEFAULT_DEDUP_WINDOW: usize = 100_000;

pub struct ShardStateMachine {
    pub(super) collections: BTreeMap<CollectionId, CollectionShard>,
    /// Ids of collections dropped here: never created again. A router repairing a missing
    /// part can race with a delete through another router; if the drop is first in the
    /// log, the late create is refused instead of bringing back an orphan part that
    /// routers with the collection cached would keep writing to. Collection ids are
    /// random and never reused, so a tombstone costs its id (about 60 bytes) and nothing
    /// else.
    pub(super) dropped: BTreeSet<CollectionId>,
    pub(super) applied: AppliedPosition,
    pub(super) dedup: RequestDedup<ApplyOutcome>,
}

/// A read and how far it got, between its steps (see
/// [`ShardStateMachine::answer_step`]).
#[derive(Debug)]
pub enum ReadInProgress {
    Get(GetRequest, Option<GetProgress>),
    Count(GetRequest, Option<GetProgress>),
    Query(QueryRequest, Option<QueryProgress>),
}

impl From<ShardRead> for ReadInProgress {
    fn from(read: ShardRead) -> Self {
        match read {
            ShardRead::Get(req) => ReadInProgress::Get(req, None),
            ShardRead::Count(req) => ReadInProgress::Count(req, None),
            ShardRead::Query(req) => ReadInProgress::Query(req, None),
        }
    }
}

fn check_dimension(c: &CollectionShard, req: &QueryRequest) -> Result<(), ShardError> {
    if let Some(dim) = c.state().dimension {
        if let Some(bad) = req.embeddings.iter().find(|e| e.len() != dim) {
            return Err(ShardError::DimensionMismatch {
                expected: dim,
                got: bad.len(),
            });
        }
    }
    Ok(())
}

impl Default for ShardStateMachine {
    fn default() -> Self {
        ShardStateMachine {
            collections: BTreeMap::new(),
            dropped: BTreeSet::new(),
            applied: AppliedPosition::default(),
            dedup: RequestDedup::with_capacity(DEFAULT_DEDUP_WINDOW),
        }
    }
}

impl ShardStateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    /// HNSW parameters are capped to their ranges (`IndexConfig::capped`):
    /// a configuration above them, from an old log entry or a command that
    /// never went through a router, cannot reach the index.
    pub(super) fn apply_command(&mut self, command: &ShardCommand) -> ApplyOutcome {
        if let Err(e) = command.check_limits() {
            return ApplyOutcome::Rejected(e.to_string());
        }
        match command {
            ShardCommand::CreateCollection { collection, .. }
                if self.dropped.contains(collection) =>
            {
                ApplyOutcome::CollectionDropped
            }
            // A create of a part never dropped here, or a restore (which lifts the drop).
            ShardCommand::CreateCollection { collection, config }
            | ShardCommand::RestoreCollection { collection, config } => {
                self.dropped.remove(collection);
                self.collections
                    .entry(collection.clone())
                    .or_insert_with(|| CollectionShard::new(config.capped()));
                ApplyOutcome::Done
            }
            ShardCommand::DropCollection { collection } => {
                self.collections.remove(collection);
                self.dropped.insert(collection.clone());
                ApplyOutcome::Done
            }
            ShardCommand::ModifyCollection { collection, config } => {
                self.with_collection(collection, |c| {
                    c.set_config(config.capped());
                    ApplyOutcome::Done
                })
            }
            ShardCommand::Add {
                collection,
                records,
                mode,
            } => self.with_collection(collection, |c| c.add(records, *mode)),
            ShardCommand::Upsert {
                collection,
                records,
            } => self.with_collection(collection, |c| c.upsert(records)),
            ShardCommand::Update {
                collection,
                records,
            } => self.with_collection(collection, |c| c.update(records)),
            ShardCommand::Delete {
                collection,
                ids,
                filter,
                limit,
            } => self.with_collection(collection, |c| c.delete(ids.as_deref(), filter, *limit)),
            ShardCommand::Reset => {
                let collections = std::mem::take(&mut self.collections);
                self.dropped.extend(collections.into_keys());
                ApplyOutcome::Done
            }
            // Derived state only: a collection dropped since is no error.
            ShardCommand::LinkHints { collection, links } => {
                if let Some(c) = self.collections.get(collection) {
                    c.index().add_hints(links);
                }
                ApplyOutcome::Done
            }
        }
    }

    fn with_collection(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut CollectionShard) -> ApplyOutcome,
    ) -> ApplyOutcome {
        match self.collections.get_mut(id) {
            Some(c) => f(c),
            None => ApplyOutcome::NoSuchCollection,
        }
    }

    pub fn collection(&self, id: &str) -> Result<&CollectionShard, ShardError> {
        self.collections
            .get(id)
            .ok_or_else(|| ShardError::CollectionNotFound(id.to_owned()))
    }

    pub fn collection_ids(&self) -> impl Iterator<Item = &CollectionId> {
        self.collections.keys()
    }

    pub fn get(&self, req: &GetRequest) -> Result<Vec<RecordView>, ShardError> {
        Ok(self.collection(&req.collection)?.get(req))
    }

    pub fn count(&self, req: &GetRequest) -> Result<usize, ShardError> {
        Ok(self.collection(&req.collection)?.count_matching(req))
    }

    pub fn query(&self, req: &QueryRequest) -> Result<Vec<Vec<QueryHit>>, ShardError> {
        let c = self.collection(&req.collection)?;
        check_dimension(c, req)?;
        Ok(c.query(req))
    }

    /// One step of a read (see `read.rs`): the answer, or `None` to be
    /// called again with the same `read`, possibly after writes were applied.
    /// The collection is looked up at every step: one dropped in between
    /// ends the read as not found.
    pub fn answer_step(
        &self,
        read: &mut ReadInProgress,
    ) -> Option<Result<ShardReadValue, ShardError>> {
        let step = match read {
            ReadInProgress::Get(req, p) => self
                .collection(&req.collection)
                .map(|c| c.get_step(req, p).map(ShardReadValue::Records)),
            ReadInProgress::Count(req, p) => self.collection(&req.collection).map(|c| {
                c.count_step(req, p)
                    .map(|n| ShardReadValue::Count(n as u64))
            }),
            ReadInProgress::Query(req, p) => self.collection(&req.collection).and_then(|c| {
                check_dimension(c, req)?;
                Ok(c.query_step(req, p).map(ShardReadValue::Hits))
            }),
        };
        step.transpose()
    }

    /// Order-independent digest of every record on the shard.
    pub fn digest(&self) -> u64 {
        self.collections
            .iter()
            .fold(0u64, |acc, (id, c)| c.digest(id, acc))
    }

    /// Record versions applied but not yet in their collection's graph, over
    /// every collection (see [`CollectionShard::index_lag`]).
    pub fn index_lag(&self) -> u64 {
        self.collections
            .values()
            .map(CollectionShard::index_lag)
            .sum()
    }

    /// Points linked from the leader's hints, without a search, over every collection
    /// (see `shard::indexer`).
    pub fn linked_from_hints(&self) -> u64 {
        self.collections
            .values()
            .map(|c| c.index().linked_from_hints())
            .sum()
    }

    /// The next chunk for the background indexer of a replica in `role`: of the
    /// collection furthest behind, so one busy collection does not starve the
    /// others' tails.
    pub fn index_job(&self, role: BackgroundRole) -> Option<(CollectionId, IndexJob)> {
        let mut by_lag: Vec<(&CollectionId, &CollectionShard)> = self.collections.iter().collect();
        by_lag.sort_by_key(|(_, c)| std::cmp::Reverse(c.index_lag()));
        by_lag
            .into_iter()
            .find_map(|(id, c)| c.index_job(role).map(|job| (id.clone(), job)))
    }

    /// Indexes every tail now, on this thread, as a leader does (tests, and tools
    /// without a replica).
    pub fn index_everything(&self) {
        let role = BackgroundRole {
            leading: true,
            ..BackgroundRole::default()
        };
        while let Some((_, job)) = self.index_job(role) {
            job.run();
        }
    }

    pub fn record_count(&self) -> usize {
        self.collections.values().map(CollectionShard::len).sum()
    }
}
