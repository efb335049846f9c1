//! What can go wrong when turning documents into vectors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddingError {
    /// The model directory (or a file the model needs) is not there. The
    /// router starts without it; only embedding requests fail, with this.
    #[error(
        "embedding model not found: {missing} does not exist; run scripts/fetch-model \
         (it fills data/models/all-MiniLM-L6-v2) or point EMBEDDING_MODEL_DIR at a copy"
    )]
    ModelMissing { missing: PathBuf },

    /// The files are there but could not be read or do not describe the
    /// model we implement (wrong pooling, bad weights, bad JSON).
    #[error("cannot load the embedding model from {path}: {message}")]
    Load { path: PathBuf, message: String },

    #[error("tokenizer failed: {0}")]
    Tokenizer(String),

    #[error("embedding inference failed: {0}")]
    Inference(String),

    /// The service's threads could not be started, or a job was lost
    /// because its thread went away.
    #[error("embedding thread pool unavailable: {0}")]
    ThreadPool(String),
}

impl From<candle_core::Error> for EmbeddingError {
    fn from(err: candle_core::Error) -> Self {
        EmbeddingError::Inference(err.to_string())
    }
}
