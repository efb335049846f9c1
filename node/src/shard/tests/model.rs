//! A straightforward model of a shard: a map from id to record, with the
//! same write rules written the obvious way, and brute-force reads.

use std::collections::BTreeMap;

use common::command::{
    apply_metadata_patch, AddMode, IndexConfig, Proposal, RecordWrite, ShardCommand,
};
use common::read::{GetRequest, Include, QueryRequest, RecordView};
use common::{Filter, Metadata, Space};

use crate::raft::StateMachine;
use crate::shard::{AppliedPosition, ShardStateMachine};

pub const COLLECTION: &str = "c";

/// (embedding, metadata, document) of one modelled record.
pub type ModelRecord = (Vec<f32>, Option<Metadata>, Option<String>);

#[derive(Default, Clone)]
pub struct Model {
    pub records: BTreeMap<String, ModelRecord>,
}

impl Model {
    pub fn apply(&mut self, cmd: &ShardCommand) {
        match cmd {
            ShardCommand::Add { records, mode, .. } => {
                if *mode == AddMode::RejectExisting
                    && records.iter().any(|r| self.records.contains_key(&r.id))
                {
                    return;
                }
                for r in records {
                    if !self.records.contains_key(&r.id) {
                        self.insert(r);
                    }
                }
            }
            ShardCommand::Upsert { records, .. } => {
                for r in records {
                    if self.records.contains_key(&r.id) {
                        self.merge(r);
                    } else {
                        self.insert(r);
                    }
                }
            }
            ShardCommand::Update { records, .. } => records.iter().for_each(|r| self.merge(r)),
            ShardCommand::Delete {
                ids, filter, limit, ..
            } => {
                let victims: Vec<String> = self
                    .select(ids.as_deref(), filter)
                    .into_iter()
                    .take(limit.unwrap_or(usize::MAX))
                    .collect();
                for v in victims {
                    self.records.remove(&v);
                }
            }
            _ => {}
        }
    }

    fn insert(&mut self, r: &RecordWrite) {
        let metadata = r
            .metadata
            .as_ref()
            .and_then(|p| apply_metadata_patch(None, p));
        let embedding = r.embedding.clone().unwrap_or_default();
        self.records
            .insert(r.id.clone(), (embedding, metadata, r.document.clone()));
    }

    fn merge(&mut self, r: &RecordWrite) {
        let Some(rec) = self.records.get_mut(&r.id) else {
            return;
        };
        if let Some(e) = &r.embedding {
            rec.0 = e.clone();
        }
        if let Some(p) = &r.metadata {
            rec.1 = apply_metadata_patch(rec.1.take(), p);
        }
        if let Some(d) = &r.document {
            rec.2 = Some(d.clone());
        }
    }

    pub fn select(&self, ids: Option<&[String]>, filter: &Filter) -> Vec<String> {
        self.records
            .iter()
            .filter(|(id, _)| ids.is_none_or(|ids| ids.contains(id)))
            .filter(|(_, (_, m, d))| filter.matches(m.as_ref(), d.as_deref()))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Exact top-k (id, distance) by (distance, id).
    pub fn query(&self, q: &[f32], k: usize, filter: &Filter, space: Space) -> Vec<(String, f32)> {
        let mut all: Vec<(String, f32)> = self
            .select(None, filter)
            .into_iter()
            .map(|id| {
                let d = space.distance(q, &self.records[&id].0);
                (id, d)
            })
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }
}

/// Applies commands to a state machine with consecutive log positions.
pub struct Driver {
    pub sm: ShardStateMachine,
    pub next_index: u64,
}

impl Driver {
    pub fn new(space: Space) -> Self {
        Driver::with_config(IndexConfig {
            space,
            ..IndexConfig::default()
        })
    }

    /// A state machine whose collection [`COLLECTION`] was created with `config`.
    pub fn with_config(config: IndexConfig) -> Self {
        let mut d = Driver {
            sm: ShardStateMachine::new(),
            next_index: 1,
        };
        d.apply(ShardCommand::CreateCollection {
            collection: COLLECTION.into(),
            config,
        });
        d
    }

    /// Applies `command` and lets the indexer catch up, as a replica whose
    /// indexer keeps pace does.
    pub fn apply(&mut self, command: ShardCommand) -> common::command::ApplyOutcome {
        let outcome = self.apply_unindexed(command);
        self.sm.index_everything();
        outcome
    }

    /// Applies `command` only: its record versions stay in the unindexed tail.
    pub fn apply_unindexed(&mut self, command: ShardCommand) -> common::command::ApplyOutcome {
        let index = self.next_index;
        self.next_index += 1;
        self.sm.apply(
            AppliedPosition { index, term: 1 },
            0,
            &Proposal {
                request_id: index as u128,
                deadline_ms: 0,
                command,
            },
        )
    }

    /// Every record passing `filter`, in `get` order, with every field.
    pub fn get_records(&self, filter: Filter) -> Vec<RecordView> {
        let req = GetRequest {
            collection: COLLECTION.into(),
            ids: None,
            filter,
            offset: 0,
            limit: None,
            include: Include::ALL,
        };
        self.sm.get(&req).expect("collection exists")
    }

    pub fn get_all(&self, filter: Filter) -> Vec<String> {
        self.get_records(filter).into_iter().map(|r| r.id).collect()
    }

    pub fn query(&self, q: &[f32], k: usize, filter: Filter) -> Vec<(String, f32)> {
        let req = QueryRequest {
            collection: COLLECTION.into(),
            embeddings: vec![q.to_vec()],
            n_results: k,
            ids: None,
            filter,
            include: Include::default(),
        };
        let mut res = self.sm.query(&req).expect("query ok");
        res.pop()
            .unwrap_or_default()
            .into_iter()
            .map(|h| (h.record.id, h.distance))
            .collect()
    }
}
