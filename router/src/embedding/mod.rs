//! Document embeddings for collections whose embedding function is Chroma's
//! default, all-MiniLM-L6-v2: a 6-layer BERT run with candle on the CPU,
//! mean-pooled and L2-normalised exactly as sentence-transformers does, so
//! vectors match what a Chroma client would have computed itself.
//!
//! - `config`: reads the sentence-transformers directory layout;
//! - `model`: `Embedder`, the synchronous load + forward + pooling;
//! - `pool`: `EmbeddingService`, async calls served by dedicated threads.
//!
//! The model files are not in git; `scripts/fetch-model` puts them in
//! `data/models/all-MiniLM-L6-v2`.

mod config;
mod error;
mod model;
mod pool;

use std::path::PathBuf;

pub use error::EmbeddingError;
pub use model::{Embedder, BATCH_SIZE};
pub use pool::EmbeddingService;

/// Environment variable that overrides where the model directory is.
pub const MODEL_DIR_ENV: &str = "EMBEDDING_MODEL_DIR";

/// `$EMBEDDING_MODEL_DIR` if set, else `data/models/all-MiniLM-L6-v2` in this
/// source tree (where `scripts/fetch-model` puts it).
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os(MODEL_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .join("data/models/all-MiniLM-L6-v2"),
    }
}
