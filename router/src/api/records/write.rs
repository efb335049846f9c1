//! add / upsert / update / delete across a collection's shards.
//!
//! A write is split into one command per shard (records placed by
//! `common::hash::shard_index`), and the commands are proposed in parallel,
//! each on its shard's leader. Each shard applies its command atomically.
//! The contract when one shard fails is in the README ("Writes across
//! shards"): the router answers 503 naming every failed shard; the other
//! shards' parts are applied; retrying the request converges (upsert,
//! update and delete are idempotent).

use std::collections::BTreeMap;

use common::command::{AddMode, ApplyOutcome, RecordWrite, ShardCommand};
use common::hash::shard_index;
use common::read::{GetRequest, Include, ShardRead, ShardReadValue};
use common::Filter;
use futures::future::join_all;

use super::parse::{Selection, WriteBatch};
use crate::error::ApiError;
use crate::shards::{check_part_sizes, split, CollectionShards};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Add(AddMode),
    Upsert,
    Update,
}

/// The shard group that holds `id` in this collection.
pub fn group_of(shards: &CollectionShards<'_>, id: &str) -> u64 {
    let groups = &shards.collection.shards;
    groups[shard_index(shards.id(), id, groups.len())]
}

/// Splits ids over the collection's shard groups, keeping request order
/// within each group.
pub fn ids_by_group(shards: &CollectionShards<'_>, ids: &[String]) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for id in ids {
        out.entry(group_of(shards, id))
            .or_default()
            .push(id.clone());
    }
    out
}

fn records(batch: WriteBatch) -> Vec<RecordWrite> {
    let n = batch.ids.len();
    let mut embeddings = batch.embeddings.map(Vec::into_iter);
    let mut metadatas = batch.metadatas.map(Vec::into_iter);
    let mut documents = batch.documents.map(Vec::into_iter);
    let mut uris = batch.uris.map(Vec::into_iter);
    let mut out = Vec::with_capacity(n);
    for id in batch.ids {
        out.push(RecordWrite {
            id,
            embedding: embeddings.as_mut().and_then(Iterator::next).flatten(),
            metadata: metadatas.as_mut().and_then(Iterator::next).flatten(),
            document: documents.as_mut().and_then(Iterator::next).flatten(),
            uri: uris.as_mut().and_then(Iterator::next).flatten(),
        });
    }
    out
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

/// The ids a write command carries.
fn record_ids(command: &ShardCommand) -> Vec<String> {
    match command {
        ShardCommand::Add { records, .. }
        | ShardCommand::Upsert { records, .. }
        | ShardCommand::Update { records, .. } => records.iter().map(|r| r.id.clone()).collect(),
        _ => Vec::new(),
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
async fn propose_all(
    shards: &CollectionShards<'_>,
    commands: Vec<(u64, ShardCommand)>,
) -> Result<Vec<ApplyOutcome>, ApiError> {
    check_part_sizes(shards.id(), &commands)?;
    let results = join_all(commands.iter().map(|(g, c)| shards.propose(*g, c))).await;
    split(results)
}

/// In reject mode nothing of an add may be written when any id exists. Each
/// shard refuses its own part atomically, but a shard cannot see the
/// others: so when the add spans several shards, every one is asked first.
async fn existing_ids(
    shards: &CollectionShards<'_>,
    by_group: &BTreeMap<u64, Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let reads = by_group
        .iter()
        .map(|(g, ids)| {
            let get = GetRequest {
                collection: shards.id().to_owned(),
                ids: Some(ids.clone()),
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

/// Writes a validated batch whose embeddings are all present where needed.
pub async fn write(
    shards: &CollectionShards<'_>,
    kind: WriteKind,
    batch: WriteBatch,
) -> Result<(), ApiError> {
    if batch.ids.is_empty() {
        return Ok(());
    }
    let mut by_group: BTreeMap<u64, Vec<RecordWrite>> = BTreeMap::new();
    for record in records(batch) {
        by_group
            .entry(group_of(shards, &record.id))
            .or_default()
            .push(record);
    }
    let commands: Vec<(u64, ShardCommand)> = by_group
        .into_iter()
        .map(|(g, rs)| (g, command(kind, shards.id(), rs)))
        .collect();
    if kind == WriteKind::Add(AddMode::RejectExisting) && commands.len() > 1 {
        let ids = commands.iter().map(|(g, c)| (*g, record_ids(c))).collect();
        let existing = existing_ids(shards, &ids).await?;
        if !existing.is_empty() {
            return Err(already_exist(&existing));
        }
    }
    let mut existing = Vec::new();
    for outcome in propose_all(shards, commands).await? {
        match outcome {
            ApplyOutcome::Done | ApplyOutcome::Deleted(_) => {}
            ApplyOutcome::IdsAlreadyExist(ids) => existing.extend(ids),
            ApplyOutcome::Rejected(m) => return Err(ApiError::invalid(m)),
            ApplyOutcome::NoSuchCollection => {
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
pub async fn delete(shards: &CollectionShards<'_>, selection: Selection) -> Result<u64, ApiError> {
    let filter = selection.filter.clone();
    let ids = match selection.limit {
        Some(_) => Some(super::read::matching_ids(shards, selection).await?),
        None => selection.ids,
    };
    let commands: Vec<(u64, ShardCommand)> = match &ids {
        Some(ids) => ids_by_group(shards, ids)
            .into_iter()
            .map(|(g, ids)| (g, delete_command(shards, Some(ids), &filter)))
            .collect(),
        None => shards
            .collection
            .shards
            .iter()
            .map(|g| (*g, delete_command(shards, None, &filter)))
            .collect(),
    };
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

fn delete_command(
    shards: &CollectionShards<'_>,
    ids: Option<Vec<String>>,
    filter: &Filter,
) -> ShardCommand {
    ShardCommand::Delete {
        collection: shards.id().to_owned(),
        ids,
        filter: filter.clone(),
        limit: None,
    }
}
