//! Background rebuild: compacts tombstones away by building a fresh graph of
//! the live points on another thread while the old segment keeps serving.
//!
//! 1. `start` copies the live points of the active segment into a compacted
//!    store (the snapshot) and builds a graph over it on a thread of its own
//!    (the graph insert itself fans out on rayon's pool).
//! 2. Every write applied to the active segment while the rebuild runs is also
//!    appended, in order, to a queue shared with the build thread (inserts with
//!    a copy of their vector, removals by id).
//! 3. Once its graph is built, the build thread catches up: it drains the
//!    queue and applies the writes to the new segment, round after round, until
//!    a round finds only a short tail, then exits.
//! 4. `finish` (from `maintain` once the thread is done, or waiting for it)
//!    applies what is left in the queue on the caller's thread, checks that the
//!    new segment's live set and vectors equal the active one's, and returns
//!    it for the caller to swap in. The queue is applied exactly once and in
//!    order, so an insert followed by a remove, a remove followed by an insert
//!    of the same id, or a replacement ends as it did in the active segment:
//!    nothing is lost or resurrected (new = snapshot + queue = active, by
//!    construction and by check).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::Mutex;

use super::segment::Segment;
use super::{PointId, Vector};

/// Runs on the build thread before the build starts (tests use it to hold the
/// build back while they write).
pub(crate) type BuildHook = Box<dyn FnOnce() + Send>;

/// The build thread stops catching up once a round finds fewer writes than this...
const CATCH_UP_TAIL: usize = 256;
/// ...or after this many rounds (writes arriving faster than it applies them).
const CATCH_UP_ROUNDS: usize = 8;

enum WriteOp {
    Insert { id: PointId, vector: Vector },
    Remove(PointId),
}

type Queue = Arc<Mutex<Vec<WriteOp>>>;

pub(crate) struct Rebuild {
    handle: Option<JoinHandle<Option<Segment>>>,
    cancel: Arc<AtomicBool>,
    queue: Queue,
    started: Instant,
    snapshot_live: usize,
    logged: usize,
}

impl Rebuild {
    pub fn start(active: &Segment, hook: Option<BuildHook>) -> std::io::Result<Self> {
        let snapshot = active.store.compacted();
        let snapshot_live = snapshot.live_count();
        let params = active.params;
        let cancel = Arc::new(AtomicBool::new(false));
        let queue: Queue = Arc::default();
        let (flag, pending) = (Arc::clone(&cancel), Arc::clone(&queue));
        let handle = std::thread::Builder::new()
            .name("index-rebuild".into())
            .spawn(move || {
                if let Some(hook) = hook {
                    hook();
                }
                let cancelled = || flag.load(Ordering::Relaxed);
                let mut seg = Segment::build(snapshot, params, cancelled)?;
                for _ in 0..CATCH_UP_ROUNDS {
                    if cancelled() {
                        return None;
                    }
                    let ops = std::mem::take(&mut *pending.lock());
                    apply(&mut seg, &ops);
                    if ops.len() < CATCH_UP_TAIL {
                        break;
                    }
                }
                Some(seg)
            })?;
        Ok(Rebuild {
            handle: Some(handle),
            cancel,
            queue,
            started: Instant::now(),
            snapshot_live,
            logged: 0,
        })
    }

    /// Records points just inserted into the active segment.
    pub fn record_inserts(&mut self, points: &[(PointId, Vector)]) {
        self.logged += points.len();
        let ops = points.iter().map(|(id, v)| WriteOp::Insert {
            id: *id,
            vector: v.clone(),
        });
        self.queue.lock().extend(ops);
    }

    /// Records a point just removed from the active segment.
    pub fn record_remove(&mut self, id: PointId) {
        self.logged += 1;
        self.queue.lock().push(WriteOp::Remove(id));
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for the build thread, applies the writes it has not applied, and
    /// checks the result against `active`.
    pub fn finish(mut self, active: &Segment) -> Result<Segment, String> {
        let handle = self.handle.take().ok_or("rebuild already finished")?;
        let mut fresh = match handle.join() {
            Ok(Some(seg)) => seg,
            Ok(None) => return Err("rebuild was cancelled".into()),
            Err(_) => return Err("rebuild thread panicked".into()),
        };
        let tail = std::mem::take(&mut *self.queue.lock());
        apply(&mut fresh, &tail);
        verify_same_live_set(active, &fresh)?;
        tracing::info!(
            snapshot = self.snapshot_live,
            writes_during_rebuild = self.logged,
            replayed_on_install = tail.len(),
            live = fresh.store.live_count(),
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "index rebuild finished"
        );
        Ok(fresh)
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        // An abandoned build stops at its next chunk; its thread is detached.
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// Applies logged writes in order, inserting runs of inserts as one batch.
fn apply(seg: &mut Segment, ops: &[WriteOp]) {
    let mut batch: Vec<(PointId, Vector)> = Vec::new();
    for op in ops {
        match op {
            WriteOp::Insert { id, vector } => batch.push((*id, vector.clone())),
            WriteOp::Remove(id) => {
                if !batch.is_empty() {
                    seg.insert_batch(&batch);
                    batch.clear();
                }
                seg.remove(*id);
            }
        }
    }
    if !batch.is_empty() {
        seg.insert_batch(&batch);
    }
}

fn verify_same_live_set(active: &Segment, fresh: &Segment) -> Result<(), String> {
    let (a, f) = (&active.store, &fresh.store);
    if a.live_count() != f.live_count() {
        return Err(format!(
            "rebuilt segment has {} live points, active has {}",
            f.live_count(),
            a.live_count()
        ));
    }
    for s in a.live_slots() {
        let id = a.id(s);
        match f.slot_of(id) {
            Some(t) if same_bits(f.vector(t), a.vector(s)) => {}
            _ => return Err(format!("point {id} differs after rebuild")),
        }
    }
    Ok(())
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
