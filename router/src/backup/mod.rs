//! Backup and restore of a whole cluster (the `backup` binary; `scripts/cluster backup`
//! and `scripts/cluster restore` call it).
//!
//! - [`take`]: `backup DIR`: every group's content, the catalogue first, each a
//!   consistent copy at one applied position of its group taken on its leader while the
//!   cluster serves (`POST /internal/{group}/backup`, see the node's `api::backup`),
//!   into one file per group, checked, then `manifest.json` ([`manifest`]) with each
//!   file's SHA-256 and each collection's record count and digest.
//! - [`restore`]: `restore DIR [--force]`: checks every file against the manifest first
//!   (a damaged backup changes nothing), then recreates tenants, databases and
//!   collections with their ids through the catalogue's own commands, writes the records
//!   through Raft to the groups the *current* cluster's routing gives them (any number of
//!   shards), and checks every collection's count and digest against the manifest.
//! - [`fetch`]: the client of the backup endpoint (leader following, streaming).
//!
//! # The admin API used (every call carries `x-cluster-secret`)
//! - `POST /internal/{group}/backup`, body bincode `common::backup::BackupRequest
//!   { include_records: bool }`, content type `application/x-bincode`, optional
//!   `x-request-timeout-ms`: 200 with the group's backup stream (`common::backup`), or the
//!   bincode `InternalReply` error of every internal route (421 not leader with a hint,
//!   404 unknown group, 400 a body that does not decode or a group that cannot be backed
//!   up, 503 busy / replica failed / no quorum).
//! - `POST /internal/0/propose` with `CatalogProposal`s (`CreateTenant`,
//!   `CreateDatabase` with the database id, `CreateCollection` with the collection id,
//!   `SetDimension`, and with `--force` `DeleteCollection`), and
//!   `POST /internal/{group}/propose` with shard `Proposal`s (`RestoreCollection`,
//!   `Upsert` in batches, with `--force` `DropCollection`): the same commands the router
//!   proposes, validated the same way by the state machines.

pub mod fetch;
pub mod manifest;
pub mod restore;
pub mod take;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::backup::{BackupFormatError, BackupItem, FrameReader, Verifier};
use common::catalog::{CollectionModel, DatabaseModel};
use thiserror::Error;

use crate::cluster::ClusterError;

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{0}")]
    Setup(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: damaged or not a backup: {source}", path.display())]
    Format {
        path: PathBuf,
        source: BackupFormatError,
    },
    #[error("the backup directory {} is not empty; a backup goes into a new or empty directory", .0.display())]
    DirectoryNotEmpty(PathBuf),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error(
        "{file}: {what} does not match the manifest (the backup is damaged; nothing was restored)"
    )]
    Mismatch { file: String, what: String },
    #[error("the cluster already has {0} collection(s); restore goes into an empty cluster (--force replaces the backup's collections, see README)")]
    ClusterNotEmpty(usize),
    #[error("cannot restore: {0}")]
    Conflict(String),
    #[error("Raft group {group}: {reason}")]
    Node { group: u64, reason: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("verification after restore failed: {0}")]
    Verify(String),
}

impl BackupError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
        move |source| BackupError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn format(path: &Path) -> impl FnOnce(BackupFormatError) -> BackupError + '_ {
        move |source| BackupError::Format {
            path: path.to_owned(),
            source,
        }
    }
}

/// What a catalogue backup (or a cluster's catalogue) holds.
#[derive(Debug, Default)]
pub struct CatalogueContent {
    pub tenants: Vec<String>,
    pub databases: Vec<DatabaseModel>,
    pub collections: Vec<CollectionModel>,
}

/// Reads and checks a catalogue stream.
pub fn read_catalogue(input: impl Read) -> Result<CatalogueContent, BackupFormatError> {
    let mut reader = FrameReader::new(input)?;
    let mut verifier = Verifier::new();
    let mut content = CatalogueContent::default();
    while let Some(item) = reader.next_item()? {
        verifier.observe(&item)?;
        match item {
            BackupItem::Tenant { name } => content.tenants.push(name),
            BackupItem::Database(d) => content.databases.push(d),
            BackupItem::Collection(c) => content.collections.push(*c),
            _ => {}
        }
    }
    let group = verifier.finish()?;
    if group.header.kind != common::placement::GroupKind::Metadata {
        return Err(BackupFormatError::Structure {
            frame: 0,
            reason: format!("group {} is not the catalogue", group.header.group),
        });
    }
    Ok(content)
}
