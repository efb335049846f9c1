//! `POST /internal/{group}/backup`: a consistent copy of one group's content, taken on its
//! leader while the group keeps serving (`common::backup` has the format).
//!
//! 1. ReadIndex on the local replica: it must lead, and it waits until it applied
//!    everything committed before the request arrived, so every write acknowledged before
//!    the backup started is in it (a linearizable point).
//! 2. Under one hold of the state machine's read lock, the whole content is written as
//!    frames to a spill file in `{node data dir}/backup-scratch/` (unlinked as soon as it
//!    is created, so a crash leaves nothing behind). That hold is the only time the group's
//!    writes wait: a sequential write of the records to the page cache, the same cost as the
//!    Raft snapshot writer's hold (README, "Reads do not block writes"), and never as long
//!    as the client takes to read the stream.
//! 3. The file is streamed back in 1 MiB chunks: memory stays bounded whatever the group's
//!    size; the disk holds one copy of the group's records while the stream lasts.
//!
//! One export at a time per node ([`MAX_EXPORTS`]); another answers `Overloaded` (503) and
//! the CLI retries. Errors before the stream starts are the bincode [`InternalReply`] of
//! every internal route (404 unknown group, 421 not leader, 400 a body that does not
//! decode, 503 replica failed or busy).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use common::backup::{BackupHeader, BackupItem, BackupRequest, FrameWriter, FORMAT_VERSION};
use common::placement::group_kind;
use common::wire::{self, InternalError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::internal::{body_bytes, budget, reply, running, wait};
use super::ApiState;
use crate::raft::messages::ReadIndex;
use crate::raft::pending::Waiter;
use crate::raft::ReplicaHandle;

/// Exports a node runs at once (each holds a spill file as large as its group's records).
pub const MAX_EXPORTS: usize = 1;

/// Bytes per chunk of the streamed response.
const CHUNK_BYTES: usize = 1 << 20;

/// The node's exports in progress and where they spill.
pub struct Exports {
    dir: PathBuf,
    permits: Arc<Semaphore>,
}

impl Exports {
    /// Exports spilling into `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        Exports {
            dir,
            permits: Arc::new(Semaphore::new(MAX_EXPORTS)),
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/internal/{group}/backup", web::post().to(backup));
}

async fn backup(
    path: web::Path<u64>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    match export(&state, path.into_inner(), &req, body).await {
        Ok(spill) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .streaming(chunks(spill)),
        Err(e) => reply(Err(e)),
    }
}

async fn export(
    state: &ApiState,
    group: u64,
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<Spill, InternalError> {
    let request: BackupRequest = wire::decode(&body_bytes(req, body)?)
        .map_err(|e| InternalError::Invalid(format!("undecodable backup request: {e}")))?;
    let handle = running(state, group)?;
    let permit = state
        .exports
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| InternalError::Overloaded)?;
    let budget = budget(req, state);
    let (waiter, rx) = Waiter::new(Instant::now() + budget);
    handle.addr.do_send(ReadIndex { waiter });
    wait(rx, budget).await?;
    let dir = state.exports.dir.clone();
    let file = web::block(move || write_spill(&dir, &handle, request.include_records))
        .await
        .map_err(|e| InternalError::Internal(e.to_string()))??;
    Ok(Spill {
        file,
        _permit: permit,
    })
}

/// The spill file of one export, read from the start; holds the node's export permit
/// until the response is done.
struct Spill {
    file: File,
    _permit: OwnedSemaphorePermit,
}

fn io_error<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> InternalError + 'a {
    move |e| InternalError::Internal(format!("backup spill {}: {what}: {e}", path.display()))
}

/// Writes the group's content, at one applied position, to a fresh unlinked file.
fn write_spill(
    dir: &Path,
    handle: &ReplicaHandle,
    include_records: bool,
) -> Result<File, InternalError> {
    fs::create_dir_all(dir).map_err(io_error("create dir", dir))?;
    let path = dir.join(format!("group-{}.spill", handle.group));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(io_error("create", &path))?;
    // Unlinked at once: the open file is all there is, and a crash leaves nothing.
    fs::remove_file(&path).map_err(io_error("unlink", &path))?;
    let mut out = FrameWriter::new(BufWriter::with_capacity(CHUNK_BYTES, &file))
        .map_err(io_error("write", &path))?;
    {
        let sm = handle.state_machine.read();
        // Checked under the lock: a failed apply marks the replica before releasing it.
        if let Some(reason) = handle.failure() {
            return Err(InternalError::ReplicaFailed(reason));
        }
        let applied = sm.applied();
        out.write(&BackupItem::Header(BackupHeader {
            format: FORMAT_VERSION,
            group: handle.group,
            kind: group_kind(handle.group),
            applied_index: applied.index,
            applied_term: applied.term,
        }))
        .map_err(io_error("write", &path))?;
        let summary = sm
            .export(include_records, &mut |item| out.write(&item))
            .map_err(|e| match e.kind() {
                io::ErrorKind::Unsupported => InternalError::Invalid(e.to_string()),
                _ => InternalError::Internal(format!("backup of group {}: {e}", handle.group)),
            })?;
        out.write(&BackupItem::Summary(summary))
            .map_err(io_error("write", &path))?;
    }
    out.into_inner().flush().map_err(io_error("write", &path))?;
    file.seek(SeekFrom::Start(0))
        .map_err(io_error("rewind", &path))?;
    Ok(file)
}

/// The spill file as a stream of chunks, each read off the async workers.
fn chunks(
    spill: Spill,
) -> impl futures::Stream<Item = Result<web::Bytes, actix_web::Error>> + 'static {
    futures::stream::try_unfold(Some(spill), |spill| async move {
        let Some(mut spill) = spill else {
            return Ok(None);
        };
        let (spill, chunk) = web::block(move || {
            let mut buf = vec![0u8; CHUNK_BYTES];
            let n = spill.file.read(&mut buf)?;
            buf.truncate(n);
            Ok::<_, io::Error>((spill, buf))
        })
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?
        .map_err(actix_web::error::ErrorInternalServerError)?;
        Ok(if chunk.is_empty() {
            None
        } else {
            Some((web::Bytes::from(chunk), Some(spill)))
        })
    })
}
