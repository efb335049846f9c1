//! `restore DIR [--force]`: check everything first, then catalogue, records, digests.
//!
//! 1. Every file's size and SHA-256 against the manifest, and its frames, order and
//!    summary (`common::backup::verify`) — one pass per file. A damaged backup is refused
//!    here and the cluster is not touched.
//! 2. The cluster's own catalogue (`/internal/0/backup` without records): a cluster with
//!    any collection is refused unless `--force`; a database of the backup whose name
//!    exists with another id, or whose id exists under another name, is refused always.
//! 3. With `--force`, each existing collection with the id or the name of a backup
//!    collection is deleted (catalogue entry and shard data); others are left alone.
//! 4. Tenants, databases (same ids) and collections (same ids, names, metadata,
//!    configuration, dimension) through the catalogue's commands, each collection spread
//!    over the current cluster's shard groups; then its part on each of them.
//! 5. Records, file by file, routed by the current placement (`routing::Placement`), as
//!    `Upsert`s of at most [`BATCH_RECORDS`] records / [`BATCH_BYTES`] bytes, at most
//!    [`IN_FLIGHT`] at once, each tried [`ATTEMPTS`] times when its group has no quorum: memory is bounded by those, whatever the backup's size.
//!    Upserts are idempotent, so a retried batch applies once.
//! 6. Every restored collection's record count and digest, read back from the cluster
//!    (`/internal/{group}/backup` without records), must equal the manifest's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use common::backup::{
    verify, BackupItem, BackupRecord, CollectionCount, FrameReader, Verifier, FORMAT_VERSION,
};
use common::catalog::{CatalogCommand, CatalogSuccess, CollectionModel};
use common::command::{ApplyOutcome, Proposal, RecordWrite, ShardCommand};
use common::config::ClusterConfig;
use common::placement::{self, GroupKind, METADATA_GROUP};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use super::fetch::GroupFetcher;
use super::manifest::{parse_hex, GroupEntry, Manifest};
use super::take::sha256_hex;
use super::{read_catalogue, BackupError, CatalogueContent};
use crate::catalog::{Catalog, CollectionCache};
use crate::cluster::{ClusterClient, ClusterError};
use crate::routing::Placement;
use crate::shards::ShardClient;

/// Records per `Upsert` (every replica applies one as a unit: a smaller batch keeps
/// the apply, and so the group's heartbeats, short on a loaded machine).
pub const BATCH_RECORDS: usize = 250;
/// Encoded bytes per `Upsert` (a single larger record goes alone; a record came from a
/// Raft entry, so it fits one).
pub const BATCH_BYTES: u64 = 8 << 20;
/// `Upsert`s in flight at once.
pub const IN_FLIGHT: usize = 4;
/// Attempts of one `Upsert` whose group had no quorum in time, each with the full
/// request timeout and the same request id: a retry waits on the entry already in the
/// log instead of appending a copy behind the backlog (and applies once).
pub const ATTEMPTS: usize = 5;
/// The most a cluster's answer without records may hold.
const MAX_SUMMARY_BYTES: usize = 256 << 20;

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub collections: usize,
    pub records: u64,
    /// Size of the group files read.
    pub bytes: u64,
    pub elapsed: Duration,
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    sha: ring::digest::Context,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

fn mismatch(entry: &GroupEntry, what: String) -> BackupError {
    BackupError::Mismatch {
        file: entry.file.clone(),
        what,
    }
}

/// The file of `entry`, checked against the manifest in one pass.
fn check_file(dir: &Path, entry: &GroupEntry) -> Result<(), BackupError> {
    if entry.file.contains('/') || entry.file.contains("..") || entry.file.is_empty() {
        return Err(BackupError::Manifest(format!(
            "bad file name {:?}",
            entry.file
        )));
    }
    let path = dir.join(&entry.file);
    let mut input = Hashing {
        inner: BufReader::with_capacity(
            1 << 20,
            File::open(&path).map_err(BackupError::io(&path))?,
        ),
        sha: ring::digest::Context::new(&ring::digest::SHA256),
        bytes: 0,
    };
    let checked = verify(&mut input);
    // Size and checksum first: they name damage to the file itself.
    std::io::copy(&mut input, &mut std::io::sink()).map_err(BackupError::io(&path))?;
    if input.bytes != entry.bytes {
        return Err(mismatch(
            entry,
            format!("size {} (manifest: {})", input.bytes, entry.bytes),
        ));
    }
    let sha = sha256_hex(input.sha.finish());
    if sha != entry.sha256 {
        return Err(mismatch(
            entry,
            format!("SHA-256 {sha} (manifest: {})", entry.sha256),
        ));
    }
    let checked = checked.map_err(BackupError::format(&path))?;
    let header = &checked.header;
    if header.group != entry.group
        || header.kind != entry.kind
        || header.applied_index != entry.applied_index
        || checked.records() != entry.records
        || checked.digest() != parse_hex(&entry.digest)?
    {
        return Err(mismatch(entry, "the content".into()));
    }
    Ok(())
}

/// Checks the manifest and every file; returns the backup's catalogue.
fn check_backup(dir: &Path, manifest: &Manifest) -> Result<CatalogueContent, BackupError> {
    if manifest.format != FORMAT_VERSION {
        return Err(BackupError::Manifest(format!(
            "format {} (this build reads {FORMAT_VERSION})",
            manifest.format
        )));
    }
    let catalogues: Vec<&GroupEntry> = manifest
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Metadata)
        .collect();
    let [catalogue] = catalogues.as_slice() else {
        return Err(BackupError::Manifest(format!(
            "{} catalogue groups (need exactly one)",
            catalogues.len()
        )));
    };
    for entry in &manifest.groups {
        check_file(dir, entry)?;
    }
    let path = dir.join(&catalogue.file);
    let content = read_catalogue(BufReader::new(
        File::open(&path).map_err(BackupError::io(&path))?,
    ))
    .map_err(BackupError::format(&path))?;
    let in_catalogue: BTreeSet<&str> = content.collections.iter().map(|c| c.id.as_str()).collect();
    let in_manifest: BTreeSet<&str> = manifest.collections.iter().map(|c| c.id.as_str()).collect();
    if in_catalogue != in_manifest {
        return Err(BackupError::Manifest(
            "its collections are not the catalogue file's".into(),
        ));
    }
    Ok(content)
}

/// A group's answer without records, read whole (it is small: one entry per collection).
async fn summary_stream(
    fetcher: &GroupFetcher,
    group: u64,
    deadline: Instant,
) -> Result<Vec<u8>, BackupError> {
    let mut bytes = Vec::new();
    fetcher
        .fetch(group, false, deadline, &mut |chunk| {
            if bytes.len() + chunk.len() > MAX_SUMMARY_BYTES {
                return Err(std::io::Error::other("the answer is too large"));
            }
            bytes.extend_from_slice(chunk);
            Ok(())
        })
        .await?;
    Ok(bytes)
}

/// Per collection, what the cluster's shard groups hold now.
async fn cluster_counts(
    fetcher: &GroupFetcher,
    groups: &[u64],
    deadline: Instant,
) -> Result<BTreeMap<String, CollectionCount>, BackupError> {
    let mut counts: BTreeMap<String, CollectionCount> = BTreeMap::new();
    for &group in groups {
        let bytes = summary_stream(fetcher, group, deadline).await?;
        let node = |e| BackupError::Node {
            group,
            reason: format!("an unusable answer: {e}"),
        };
        let mut reader = FrameReader::new(bytes.as_slice()).map_err(node)?;
        let mut verifier = Verifier::new();
        while let Some(item) = reader.next_item().map_err(node)? {
            verifier.observe(&item).map_err(node)?;
        }
        let (_, summary) = verifier.finish_summary_only().map_err(node)?;
        for (id, count) in summary {
            counts.entry(id).or_default().add(count);
        }
    }
    Ok(counts)
}

/// Refuses what cannot be restored before anything changes.
fn check_target(
    backup: &CatalogueContent,
    target: &CatalogueContent,
    force: bool,
) -> Result<(), BackupError> {
    if !target.collections.is_empty() && !force {
        return Err(BackupError::ClusterNotEmpty(target.collections.len()));
    }
    for db in &backup.databases {
        for existing in &target.databases {
            let same_name = existing.tenant == db.tenant && existing.name == db.name;
            if same_name != (existing.id == db.id) {
                return Err(BackupError::Conflict(format!(
                    "database {}/{} (id {}) of the backup meets database {}/{} (id {}) of the cluster",
                    db.tenant, db.name, db.id, existing.tenant, existing.name, existing.id
                )));
            }
        }
    }
    Ok(())
}

struct Restorer<'a> {
    catalog: Catalog<'a>,
    cluster: &'a ClusterClient,
    timeout: Duration,
}

impl Restorer<'_> {
    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    async fn catalogue(&self, command: CatalogCommand) -> Result<CatalogSuccess, BackupError> {
        self.catalog
            .propose(command, self.deadline())
            .await
            .map_err(|e| BackupError::Node {
                group: METADATA_GROUP,
                reason: e.to_string(),
            })
    }

    async fn shard(&self, group: u64, command: &ShardCommand) -> Result<(), BackupError> {
        match ShardClient::propose(self.cluster, group, command, self.deadline()).await? {
            ApplyOutcome::Done | ApplyOutcome::Deleted(_) => Ok(()),
            other => Err(BackupError::Node {
                group,
                reason: format!("refused: {other:?}"),
            }),
        }
    }

    /// `--force`: each cluster collection with a backup collection's id or name goes,
    /// with its records.
    async fn drop_colliding(
        &self,
        backup: &CatalogueContent,
        target: &CatalogueContent,
    ) -> Result<usize, BackupError> {
        let mut dropped = 0;
        for existing in &target.collections {
            let collides = backup.collections.iter().any(|c| {
                c.id == existing.id
                    || (c.tenant == existing.tenant
                        && c.database == existing.database
                        && c.name == existing.name)
            });
            if !collides {
                continue;
            }
            self.catalogue(CatalogCommand::DeleteCollection {
                tenant: existing.tenant.clone(),
                database: existing.database.clone(),
                name: existing.name.clone(),
            })
            .await?;
            for &group in &existing.shards {
                let drop = ShardCommand::DropCollection {
                    collection: existing.id.clone(),
                };
                self.shard(group, &drop).await?;
            }
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Tenants, databases and collections; returns the new collection models by id.
    async fn create_catalogue(
        &self,
        backup: &CatalogueContent,
        target: &CatalogueContent,
        shards: impl Fn(&str) -> Vec<u64>,
    ) -> Result<BTreeMap<String, CollectionModel>, BackupError> {
        for tenant in backup
            .tenants
            .iter()
            .filter(|t| !target.tenants.contains(t))
        {
            self.catalogue(CatalogCommand::CreateTenant {
                name: tenant.clone(),
            })
            .await?;
        }
        for db in backup
            .databases
            .iter()
            .filter(|d| !target.databases.contains(d))
        {
            self.catalogue(CatalogCommand::CreateDatabase {
                tenant: db.tenant.clone(),
                name: db.name.clone(),
                id: db.id.clone(),
            })
            .await?;
        }
        let mut models = BTreeMap::new();
        for c in &backup.collections {
            let created = self
                .catalogue(CatalogCommand::CreateCollection {
                    tenant: c.tenant.clone(),
                    database: c.database.clone(),
                    id: c.id.clone(),
                    name: c.name.clone(),
                    metadata: c.metadata.clone(),
                    configuration: c.configuration.clone(),
                    shards: shards(&c.id),
                    get_or_create: false,
                })
                .await?;
            let mut model = match created {
                CatalogSuccess::CollectionCreated { collection, .. } => collection,
                other => return Err(BackupError::Conflict(format!("create {}: {other:?}", c.id))),
            };
            if let Some(dimension) = c.dimension {
                if let CatalogSuccess::DimensionSet(m) = self
                    .catalogue(CatalogCommand::SetDimension {
                        id: c.id.clone(),
                        dimension,
                    })
                    .await?
                {
                    model = m;
                }
            }
            for &group in &model.shards {
                // Restore, not create: with --force the same id may have been dropped
                // just before, and a shard refuses to create a dropped part again.
                let create = ShardCommand::RestoreCollection {
                    collection: c.id.clone(),
                    config: c.index_config.clone(),
                };
                self.shard(group, &create).await?;
            }
            models.insert(c.id.clone(), model);
        }
        Ok(models)
    }
}

/// Buffers records per target group and writes them as bounded `Upsert`s.
struct RecordWriter<'a> {
    cluster: &'a ClusterClient,
    timeout: Duration,
    collection: String,
    /// Target group → records and their encoded bytes.
    buffers: BTreeMap<u64, (Vec<RecordWrite>, u64)>,
    in_flight: FuturesUnordered<BoxFuture<'a, Result<u64, BackupError>>>,
    written: u64,
}

impl<'a> RecordWriter<'a> {
    fn new(cluster: &'a ClusterClient, timeout: Duration) -> Self {
        RecordWriter {
            cluster,
            timeout,
            collection: String::new(),
            buffers: BTreeMap::new(),
            in_flight: FuturesUnordered::new(),
            written: 0,
        }
    }

    async fn push(&mut self, group: u64, record: BackupRecord) -> Result<(), BackupError> {
        let write = RecordWrite {
            id: record.id,
            embedding: Some(record.embedding),
            metadata: record
                .metadata
                .map(|m| m.into_iter().map(|(k, v)| (k, Some(v))).collect()),
            document: record.document,
            uri: record.uri,
        };
        let size = common::wire::encoded_size(&write).unwrap_or(BATCH_BYTES);
        let (records, bytes) = self.buffers.entry(group).or_default();
        if !records.is_empty() && *bytes + size > BATCH_BYTES {
            self.flush(group).await?;
        }
        let (records, bytes) = self.buffers.entry(group).or_default();
        records.push(write);
        *bytes += size;
        if records.len() >= BATCH_RECORDS {
            self.flush(group).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, group: u64) -> Result<(), BackupError> {
        let Some((records, _)) = self.buffers.remove(&group) else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        while self.in_flight.len() >= IN_FLIGHT {
            self.settle_one().await?;
        }
        let cluster = self.cluster;
        let deadline = Instant::now() + self.timeout;
        let n = records.len() as u64;
        let mut proposal = Proposal {
            request_id: rand::random(),
            deadline_ms: common::clock::wall_deadline(deadline),
            command: ShardCommand::Upsert {
                collection: self.collection.clone(),
                records,
            },
        };
        let timeout = self.timeout;
        self.in_flight.push(Box::pin(async move {
            let mut attempt = 1;
            let mut deadline = deadline;
            loop {
                match cluster
                    .propose::<_, ApplyOutcome>(group, &proposal, deadline)
                    .await
                {
                    Ok(ApplyOutcome::Done) => return Ok(n),
                    Ok(other) => {
                        return Err(BackupError::Node {
                            group,
                            reason: format!("an upsert was refused: {other:?}"),
                        })
                    }
                    Err(e @ ClusterError::Unavailable { .. }) if attempt < ATTEMPTS => {
                        tracing::warn!(group, attempt, error = %e, "upsert batch: trying again");
                        attempt += 1;
                        deadline = Instant::now() + timeout;
                        // Same request id, a new deadline: the retry joins the first copy
                        // if it is still pending. An upsert of the same records applying
                        // twice leaves the same records (restore is the only writer).
                        proposal.deadline_ms = common::clock::wall_deadline(deadline);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }));
        Ok(())
    }

    async fn settle_one(&mut self) -> Result<(), BackupError> {
        if let Some(done) = self.in_flight.next().await {
            self.written += done?;
        }
        Ok(())
    }

    /// Writes everything buffered and waits for every write.
    async fn finish_collection(&mut self) -> Result<(), BackupError> {
        let groups: Vec<u64> = self.buffers.keys().copied().collect();
        for group in groups {
            self.flush(group).await?;
        }
        while !self.in_flight.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }

    async fn start_collection(&mut self, id: &str) -> Result<(), BackupError> {
        self.finish_collection().await?;
        self.collection = id.to_owned();
        Ok(())
    }
}

/// Writes the records of one shard group's file to the groups that hold them now.
async fn restore_records(
    path: &Path,
    models: &BTreeMap<String, CollectionModel>,
    writer: &mut RecordWriter<'_>,
) -> Result<(), BackupError> {
    let input = BufReader::with_capacity(1 << 20, File::open(path).map_err(BackupError::io(path))?);
    let mut reader = FrameReader::new(input).map_err(BackupError::format(path))?;
    let mut current: Option<&CollectionModel> = None;
    while let Some(item) = reader.next_item().map_err(BackupError::format(path))? {
        match item {
            BackupItem::ShardCollection { id, .. } => {
                // Checked before: a collection not in the catalogue was created or
                // deleted during the backup and is left out.
                current = models.get(&id);
                writer.start_collection(&id).await?;
            }
            BackupItem::Records(records) => {
                let Some(model) = current else { continue };
                let placement = Placement::of(model);
                for r in records {
                    writer.push(placement.group_of(&r.id), r).await?;
                }
            }
            _ => {}
        }
    }
    writer.finish_collection().await
}

/// Restores the backup in `dir` into the cluster of `config`.
pub async fn restore(
    config: &ClusterConfig,
    dir: &Path,
    force: bool,
) -> Result<RestoreReport, BackupError> {
    let clock = Instant::now();
    let manifest = Manifest::read(dir)?;
    let backup = check_backup(dir, &manifest)?;
    tracing::info!(
        groups = manifest.groups.len(),
        "every backup file matches the manifest"
    );

    let timeout = Duration::from_millis(config.router.request_timeout_ms.max(1000));
    let patience = timeout * 3;
    let mut fetcher = GroupFetcher::new(config)?;
    let cluster = ClusterClient::new(config).map_err(|e| BackupError::Setup(e.to_string()))?;
    // Where the target's groups are now (replicas move; it may have grown since it
    // started).
    fetcher.follow(&cluster, Instant::now() + patience).await?;
    let target = read_catalogue(
        summary_stream(&fetcher, METADATA_GROUP, Instant::now() + patience)
            .await?
            .as_slice(),
    )
    .map_err(|e| BackupError::Node {
        group: METADATA_GROUP,
        reason: format!("an unusable catalogue: {e}"),
    })?;
    check_target(&backup, &target, force)?;

    let cache = CollectionCache::default();
    let restorer = Restorer {
        catalog: Catalog::new(&cluster, &cache),
        cluster: &cluster,
        timeout,
    };
    if force {
        let dropped = restorer.drop_colliding(&backup, &target).await?;
        tracing::warn!(
            dropped,
            "--force: replaced the cluster's collections that had a backup collection's id or name"
        );
    }
    // Each restored collection is spread over the target's groups as a new one would be.
    let pool = cluster.shard_pool();
    let per_collection = config.cluster.shard_count;
    let models = restorer
        .create_catalogue(&backup, &target, |id| {
            placement::shards_for_collection(&pool, per_collection, id)
        })
        .await?;
    let shards = cluster.all_shard_groups();

    let mut writer = RecordWriter::new(&cluster, timeout);
    let mut bytes = 0;
    for entry in manifest
        .groups
        .iter()
        .filter(|g| g.kind == GroupKind::Shard)
    {
        restore_records(&dir.join(&entry.file), &models, &mut writer).await?;
        bytes += entry.bytes;
        tracing::info!(
            group = entry.group,
            written = writer.written,
            "group restored"
        );
    }

    let found = cluster_counts(&fetcher, &shards, Instant::now() + patience).await?;
    for c in &manifest.collections {
        let expected = c.count()?;
        let got = found.get(&c.id).copied().unwrap_or_default();
        if got != expected {
            return Err(BackupError::Verify(format!(
                "collection {} ({}/{}/{}): the cluster holds {} records (digest {:016x}), the backup {} (digest {:016x})",
                c.id, c.tenant, c.database, c.name, got.records, got.digest, expected.records, expected.digest
            )));
        }
    }
    Ok(RestoreReport {
        collections: models.len(),
        records: writer.written,
        bytes,
        elapsed: clock.elapsed(),
    })
}
