//! `backup DIR`: one file per group, checked as it lands, then the manifest.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::backup::{verify, CollectionCount, FORMAT_VERSION};
use common::config::ClusterConfig;
use common::group_client::ClusterClient;
use common::placement::{self, GroupKind, METADATA_GROUP};

use super::fetch::GroupFetcher;
use super::manifest::{hex64, CollectionEntry, GroupEntry, Manifest};
use super::{read_catalogue, BackupError};

/// Refuses a directory with anything in it, so a backup never mixes with another.
fn prepare_dir(dir: &Path) -> Result<(), BackupError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::DirectoryNotEmpty(dir.to_owned()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(BackupError::io(dir))
        }
        Err(e) => Err(BackupError::io(dir)(e)),
    }
}

/// Hex of a SHA-256 digest.
pub fn sha256_hex(digest: ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams `group`'s backup into a new file at `path`, fsynced; returns its size and
/// SHA-256.
async fn fetch_to_file(
    fetcher: &GroupFetcher,
    group: u64,
    path: &Path,
    deadline: Instant,
) -> Result<(u64, String), BackupError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(BackupError::io(path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let bytes = fetcher
        .fetch(group, true, deadline, &mut |chunk| {
            sha.update(chunk);
            out.write_all(chunk)
        })
        .await?;
    let file = out
        .into_inner()
        .map_err(|e| BackupError::io(path)(e.into_error()))?;
    file.sync_all().map_err(BackupError::io(path))?;
    Ok((bytes, sha256_hex(sha.finish())))
}

/// Takes a backup of every group into `dir` (new or empty). The manifest is written last.
pub async fn take_backup(config: &ClusterConfig, dir: &Path) -> Result<Manifest, BackupError> {
    prepare_dir(dir)?;
    let mut fetcher = GroupFetcher::new(config)?;
    let started = SystemTime::now();
    let clock = Instant::now();
    // Finding a leader gets a few request timeouts; the stream itself is not cut.
    let patience = Duration::from_millis(config.router.request_timeout_ms.max(1000) * 3);
    // Where every group is now, and the groups created at run time.
    let cluster = ClusterClient::new(config).map_err(|e| BackupError::Setup(e.to_string()))?;
    let map = fetcher.follow(&cluster, Instant::now() + patience).await?;
    let every_group = std::iter::once(METADATA_GROUP)
        .chain(map.all_shard_groups(placement::shard_groups(config)));
    let mut groups = Vec::new();
    let mut per_collection: BTreeMap<String, CollectionCount> = BTreeMap::new();
    // The catalogue first: a collection created during the backup then has no entry
    // and is left out of a restore, rather than restored without its records.
    for group in every_group {
        let file = format!("group-{group}.vdbbak");
        let path = dir.join(&file);
        let (bytes, sha256) =
            fetch_to_file(&fetcher, group, &path, Instant::now() + patience).await?;
        let reader = BufReader::new(File::open(&path).map_err(BackupError::io(&path))?);
        let checked = verify(reader).map_err(BackupError::format(&path))?;
        if checked.header.group != group {
            return Err(BackupError::Node {
                group,
                reason: format!("answered with group {}", checked.header.group),
            });
        }
        for (id, count) in &checked.collections {
            if checked.header.kind == GroupKind::Shard {
                per_collection.entry(id.clone()).or_default().add(*count);
            }
        }
        tracing::info!(group, bytes, records = checked.records(), "group backed up");
        groups.push(GroupEntry {
            group,
            kind: checked.header.kind,
            file,
            bytes,
            sha256,
            applied_index: checked.header.applied_index,
            applied_term: checked.header.applied_term,
            records: checked.records(),
            digest: hex64(checked.digest()),
        });
    }
    let catalogue_path = dir.join(&groups[0].file);
    let catalogue = read_catalogue(BufReader::new(
        File::open(&catalogue_path).map_err(BackupError::io(&catalogue_path))?,
    ))
    .map_err(BackupError::format(&catalogue_path))?;
    let collections: Vec<CollectionEntry> = catalogue
        .collections
        .iter()
        .map(|c| {
            let count = per_collection.remove(&c.id).unwrap_or_default();
            CollectionEntry {
                id: c.id.clone(),
                tenant: c.tenant.clone(),
                database: c.database.clone(),
                name: c.name.clone(),
                records: count.records,
                digest: hex64(count.digest),
            }
        })
        .collect();
    for (id, count) in &per_collection {
        tracing::warn!(
            collection = %id,
            records = count.records,
            "shard data of a collection not in the catalogue (created or deleted during the backup); a restore leaves it out"
        );
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        cluster: config.cluster.name.clone(),
        started_unix_ms: started
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        elapsed_ms: clock.elapsed().as_millis() as u64,
        groups,
        collections,
    };
    manifest.write(dir)?;
    Ok(manifest)
}
