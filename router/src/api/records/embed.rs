//! Server-side embeddings (issue 5): records that carry a document but no
//! embedding, and `query_texts`, are embedded with the collection's
//! embedding function when it is Chroma's default (all-MiniLM-L6-v2, see
//! `crate::embedding`). Any other embedding function cannot be computed
//! here: the request needs embeddings then (400 saying so).

use common::catalog::CollectionModel;
use serde_json::{Map, Value};

use super::parse::{self, WriteBatch};
use crate::api::configuration::{document_embedding, DocumentEmbedding};
use crate::api::AppState;
use crate::embedding::EmbeddingError;
use crate::error::ApiError;
use crate::records::WriteKind;

impl From<EmbeddingError> for ApiError {
    fn from(e: EmbeddingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

const HOW_TO_ENABLE: &str = "send embeddings, or create the collection with configuration {\"embedding_function\": {\"type\": \"known\", \"name\": \"default\"}}";

/// Why `collection` cannot embed texts, or `None` when it can.
fn unavailable(collection: &CollectionModel) -> Option<String> {
    match document_embedding(&collection.configuration) {
        DocumentEmbedding::MiniLm => None,
        DocumentEmbedding::Unavailable(why) => Some(format!(
            "Cannot compute embeddings for collection {}: {why}; {HOW_TO_ENABLE}",
            collection.name
        )),
    }
}

/// Fills in the embeddings of records that have a document and no
/// embedding. For `update` on a collection that cannot embed, a new
/// document simply keeps the record's old embedding.
pub async fn embed_documents(
    state: &AppState,
    collection: &CollectionModel,
    kind: WriteKind,
    batch: &mut WriteBatch,
) -> Result<(), ApiError> {
    let Some(documents) = &batch.documents else {
        return Ok(());
    };
    let has_embedding = |i: usize| {
        batch
            .embeddings
            .as_ref()
            .is_some_and(|e| e.get(i).is_some_and(Option::is_some))
    };
    let (positions, texts): (Vec<usize>, Vec<String>) = documents
        .iter()
        .enumerate()
        .filter(|(i, _)| !has_embedding(*i))
        .filter_map(|(i, d)| d.clone().map(|d| (i, d)))
        .unzip();
    if positions.is_empty() {
        return Ok(());
    }
    if let Some(why) = unavailable(collection) {
        return match kind {
            WriteKind::Update => Ok(()),
            _ => Err(ApiError::invalid(why)),
        };
    }
    let vectors = state.embedder.embed(texts).await?;
    let n = batch.ids.len();
    let embeddings = batch.embeddings.get_or_insert_with(|| vec![None; n]);
    for (i, v) in positions.into_iter().zip(vectors) {
        if let Some(slot) = embeddings.get_mut(i) {
            *slot = Some(v);
        }
    }
    Ok(())
}

/// The query embeddings of a query body: `query_embeddings`, or
/// `query_texts` embedded with the collection's embedding function (an
/// extension of Chroma's HTTP API, where the client embeds texts itself).
pub async fn query_embeddings(
    state: &AppState,
    collection: &CollectionModel,
    map: &Map<String, Value>,
    n_results: usize,
) -> Result<Vec<Vec<f32>>, ApiError> {
    let embeddings = parse::embeddings(map, "query_embeddings")?;
    let texts = parse::string_list(map, "query_texts")?;
    // Before anything is embedded: texts cost the embedding model.
    let queries = embeddings.as_ref().map_or(0, Vec::len) + texts.as_ref().map_or(0, Vec::len);
    common::limits::check_query(queries, n_results)?;
    for e in embeddings.iter().flatten() {
        common::limits::check_embedding_dimension(e.len())?;
    }
    match (embeddings, texts) {
        (Some(e), None) => Ok(e),
        (None, Some(texts)) => match unavailable(collection) {
            Some(why) => Err(ApiError::invalid(why)),
            None => Ok(state.embedder.embed(texts).await?),
        },
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "Provide query_embeddings or query_texts, not both",
        )),
        (None, None) => Err(ApiError::invalid(
            "Missing required field: query_embeddings (or query_texts)",
        )),
    }
}
