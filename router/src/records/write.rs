//! add / upsert / update / delete across a collection's shards.
//!
//! A write is split into one command per shard (records placed by
//! `crate::routing`), and the commands are proposed in parallel, each on its
//! shard's leader. Each shard applies its command atomically. The contract
//! when one shard fails is in the README ("Writes across shards"): the
//! router answers 503 naming every failed shard; the other shards' parts
//! are applied; retrying the request converges (upsert, update and delete
//! are idempotent).

use std::collections::BTreeMap;

use common::command::{AddMode, ApplyOutcome, RecordWrite, ShardCommand};
use common::read::{GetRequest, Include, ShardRead, ShardReadValue};
use common::Filter;
use futures::future::join_all;

use super::read::matching_ids;
use super::Selection;
use crate::error::ApiError;
use crate::merge::split;
use crate::routing::Placement;
use crate::shards::{check_part_sizes, Catalogue, CollectionShards, ShardClient};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Add(AddMode),
    Upsert,
    Update,
}

fn command(kind: WriteKind, collection: &str, records: Vec<RecordWrite>) -> ShardCommand {
    let collection = collection.to_owned();
    match kind {
        WriteKind::Add(mode) => ShardCommand::Add {
            collection,
            records,
            mode,
        },
        WriteKind::Upsert => ShardCommand::Upsert {
            collection,
            records,
        },
        WriteKind::Update => ShardCommand::Update {
            collection,
            records,
        },
    }
}

fn already_exist(ids: &[String]) -> ApiError {
    ApiError::IdAlreadyExists(format!(
        "Cannot add records with ids that already exist (add_existing = reject); existing ids: {}",
        ids.join(", ")
    ))
}

/// Proposes `(group, command)` pairs in parallel; all outcomes, or the
/// combined error when any shard failed. Every part is measured first, so
/// a part too large for a node writes nothing anywhere.
async fn propose_all<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
    commands: Vec<(u64, ShardCommand)>,
) -> Result<Vec<ApplyOutcome>, ApiError> {
    check_part_sizes(shards.id(), &commands)?;
    let results = join_all(commands.iter().map(|(g, c)| shards.propose(*g, c))).await;
    split(results)
}

/// In reject mode nothing of an add may be written when any id exists. Each
/// shard refuses its own part atomically, but a shard cannot see the
/// others: so when the add spans several shards, every one is asked first.
async fn existing_ids<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
    by_group: &BTreeMap<u64, Vec<RecordWrite>>,
) -> Result<Vec<String>, ApiError> {
    let reads = by_group
        .iter()
        .map(|(g, records)| {
            let get = GetRequest {
                collection: shards.id().to_owned(),
                ids: Some(records.iter().map(|r| r.id.clone()).collect()),
                filter: Filter::default(),
                offset: 0,
                limit: None,
                include: Include::default(),
            };
            (*g, ShardRead::Get(get))
        })
        .collect();
    let mut found = Vec::new();
    for value in shards.read_all(reads).await? {
        if let ShardReadValue::Records(records) = value {
            found.extend(records.into_iter().map(|r| r.id));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes validated records (every one with an embedding where `kind`
/// needs it) whose embeddings share `dimension`: the collection's dimension
/// is fixed by its first write, and a write of another is refused (400)
/// before anything is written.
pub async fn write<S: ShardClient, K: Catalogue>(
    shards: &mut CollectionShards<'_, S, K>,
    kind: WriteKind,
    records: Vec<RecordWrite>,
    dimension: Option<u32>,
) -> Result<(), ApiError> {
    if records.is_empty() {
        return Ok(());
    }
    if let Some(dimension) = dimension {
        shards.collection = shards
            .catalog
            .ensure_dimension(&shards.collection, dimension, shards.deadline)
            .await?;
    }
    let shards = &*shards;
    let by_group = Placement::of(&shards.collection).scatter(records, |r| r.id.as_str());
    if kind == WriteKind::Add(AddMode::RejectExisting) && by_group.len() > 1 {
        let existing = existing_ids(shards, &by_group).await?;
        if !existing.is_empty() {
            return Err(already_exist(&existing));
        }
    }
    let commands: Vec<(u64, ShardCommand)> = by_group
        .into_iter()
        .map(|(g, rs)| (g, command(kind, shards.id(), rs)))
        .collect();
    let mut existing = Vec::new();
    for outcome in propose_all(shards, commands).await? {
        match outcome {
            ApplyOutcome::Done | ApplyOutcome::Deleted(_) => {}
            ApplyOutcome::IdsAlreadyExist(ids) => existing.extend(ids),
            ApplyOutcome::Rejected(m) => return Err(ApiError::invalid(m)),
            ApplyOutcome::NoSuchCollection | ApplyOutcome::CollectionDropped => {
                return Err(ApiError::NotFound(format!(
                    "Collection [{}] does not exist",
                    shards.id()
                )))
            }
        }
    }
    if !existing.is_empty() {
        existing.sort();
        return Err(already_exist(&existing));
    }
    Ok(())
}

/// Deletes by ids (only their shards are asked) and/or filter (every
/// shard). With a `limit`, the first `limit` matching records in the stable
/// id order are chosen first, so the limit holds across shards.
pub async fn delete<S: ShardClient, K: Catalogue>(
    shards: &CollectionShards<'_, S, K>,
    selection: Selection,
) -> Result<u64, ApiError> {
    let filter = selection.filter.clone();
    let ids = match selection.limit {
        Some(_) => Some(matching_ids(shards, selection).await?),
        None => selection.ids,
    };
    let commands: Vec<(u64, ShardCommand)> = Placement::of(&shards.collection)
        .targets(ids.as_deref())
        .into_iter()
        .map(|(g, ids)| {
            let delete = ShardCommand::Delete {
                collection: shards.id().to_owned(),
                ids,
                filter: filter.clone(),
                limit: None,
            };
            (g, delete)
        })
        .collect();
    let mut deleted = 0;
    for outcome in propose_all(shards, commands).await? {
        match outcome {
            ApplyOutcome::Deleted(n) => deleted += n,
            ApplyOutcome::Done => {}
            ApplyOutcome::Rejected(m) => return Err(ApiError::invalid(m)),
            other => {
                return Err(ApiError::Internal(format!(
                    "unexpected delete outcome {other:?}"
                )))
            }
        }
    }
    Ok(deleted)
}
