//! `EmbeddingService`: the async face of `Embedder`. Inference is seconds of
//! pure CPU for large batches, so it runs on a dedicated rayon pool, never
//! on the async runtime's workers; request handlers just await a oneshot.
//!
//! The same pool also runs candle's parallel matmuls (gemm splits work with
//! rayon on the *current* pool), so `threads` bounds the CPU that
//! embedding takes in total and it cannot oversubscribe the machine.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{Embedder, EmbeddingError};

/// Cheap to clone; all clones share one pool and one loaded model.
#[derive(Clone)]
pub struct EmbeddingService {
    inner: Arc<Inner>,
}

struct Inner {
    model_dir: PathBuf,
    pool: rayon::ThreadPool,
    /// Loaded on first use so a router without the model still starts. A
    /// failed load is not remembered: once scripts/fetch-model has run, the
    /// next request loads it without a restart.
    model: Mutex<Option<Arc<Embedder>>>,
}

impl EmbeddingService {
    /// Starts `threads` embedding threads (at least one). The model in
    /// `model_dir` is not touched until the first `embed` or `preload`.
    pub fn new(model_dir: PathBuf, threads: usize) -> Result<Self, EmbeddingError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("embed-{i}"))
            .build()
            .map_err(|e| EmbeddingError::ThreadPool(e.to_string()))?;
        Ok(EmbeddingService {
            inner: Arc::new(Inner {
                model_dir,
                pool,
                model: Mutex::new(None),
            }),
        })
    }

    pub fn model_dir(&self) -> &Path {
        &self.inner.model_dir
    }

    /// One vector per text, in input order, computed on the service's
    /// threads. If the caller stops waiting before the job starts, the
    /// job is skipped.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |embedder| embedder.embed(&texts)).await
    }

    /// Loads the model now (on the service's threads) instead of on the
    /// first request, e.g. at startup when the directory is known to exist.
    pub async fn preload(&self) -> Result<(), EmbeddingError> {
        self.run(|_| Ok(())).await
    }

    async fn run<T, F>(&self, job: F) -> Result<T, EmbeddingError>
    where
        T: Send + 'static,
        F: FnOnce(&Embedder) -> Result<T, EmbeddingError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::clone(&self.inner);
        self.inner.pool.spawn(move || {
            if tx.is_closed() {
                return;
            }
            // A panic inside candle or the tokenizer must fail this request,
            // not take the pool thread (and with rayon's default handler, the
            // process) down with it. `Embedder` is immutable, so nothing is
            // left half-updated.
            let result = catch_unwind(AssertUnwindSafe(|| job(&*inner.embedder()?)))
                .unwrap_or_else(|panic| Err(EmbeddingError::Inference(panic_message(&panic))));
            // The receiver is gone if the request was cancelled; nothing to do.
            let _ = tx.send(result);
        });
        rx.await.map_err(|_| {
            EmbeddingError::ThreadPool("the embedding job was dropped before it answered".into())
        })?
    }
}

impl Inner {
    fn embedder(&self) -> Result<Arc<Embedder>, EmbeddingError> {
        // Held across the load so concurrent first requests load it once.
        let mut slot = self.model.lock();
        if let Some(model) = &*slot {
            return Ok(Arc::clone(model));
        }
        let model = Arc::new(Embedder::load(&self.model_dir)?);
        *slot = Some(Arc::clone(&model));
        Ok(model)
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    format!("panicked: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_model_fails_each_request_with_the_directory_and_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("all-MiniLM-L6-v2");
        let service = EmbeddingService::new(absent.clone(), 1).unwrap();
        for _ in 0..2 {
            let err = service.embed(vec!["hello".into()]).await.unwrap_err();
            assert!(matches!(err, EmbeddingError::ModelMissing { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&absent.display().to_string()), "{msg}");
            assert!(msg.contains("scripts/fetch-model"), "{msg}");
        }
        // No texts, no model needed.
        assert!(service.embed(Vec::new()).await.unwrap().is_empty());
    }
}
