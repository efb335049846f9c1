//! The Collection methods: count, add, upsert, update, delete, get (peek is
//! a get with a limit), query. `parse` validates bodies, `embed` fills in
//! document embeddings, `crate::records` runs them across the collection's
//! shards, `response` shapes the JSON.

mod embed;
mod parse;
mod response;

use std::time::Instant;

use actix_web::{get, post, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use self::parse::{Included, WriteBatch};
use self::response::{GetResult, QueryResult};
use super::body::{self, JsonBody};
use super::collections::{collection_id, CollectionIdPath};
use super::schemas::{EmbeddingInput, UpdateMetadata, Where, WhereDocument};
use super::tenants::EmptyResponse;
use super::{failures, AppState};
use crate::error::ApiError;
use crate::records::{self, WriteKind};
use crate::shards::CollectionShards;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(count)
        .service(add)
        .service(upsert)
        .service(update)
        .service(delete)
        .service(get)
        .service(query);
}

/// The body of add and upsert: every list as long as `ids`. A record needs an
/// embedding, or a document when the collection has an embedding function the router
/// runs (Chroma's default); update needs neither.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AddCollectionRecordsPayload {
    /// Non-empty, distinct; at most pre-flight's max_batch_size.
    ids: Vec<String>,
    embeddings: Option<Vec<Option<EmbeddingInput>>>,
    documents: Option<Vec<Option<String>>>,
    metadatas: Option<Vec<Option<UpdateMetadata>>>,
    uris: Option<Vec<Option<String>>>,
}

/// The body of delete: at least one of the three; a filter selects among the ids when
/// both are given.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeleteCollectionRecordsPayload {
    ids: Option<Vec<String>>,
    #[schema(rename = "where", value_type = Option<Where>)]
    r#where: (),
    #[schema(value_type = Option<WhereDocument>)]
    where_document: (),
}

/// The body of get (peek is a get with a limit); every field is optional.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GetRequestPayload {
    ids: Option<Vec<String>>,
    #[schema(rename = "where", value_type = Option<Where>)]
    r#where: (),
    #[schema(value_type = Option<WhereDocument>)]
    where_document: (),
    #[schema(minimum = 0)]
    limit: Option<u64>,
    #[schema(minimum = 0)]
    offset: Option<u64>,
    /// Of `documents`, `embeddings`, `metadatas`, `uris`; `["metadatas", "documents"]`
    /// when absent.
    include: Option<Vec<String>>,
}

/// The body of query: `query_embeddings`, or (our extension) `query_texts` that the
/// router embeds with the collection's embedding function; not both.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct QueryRequestPayload {
    query_embeddings: Option<Vec<EmbeddingInput>>,
    /// Extension: texts to embed with the collection's embedding function, as
    /// Chroma's clients do before sending query_embeddings.
    query_texts: Option<Vec<String>>,
    /// 10 when absent.
    #[schema(minimum = 0)]
    n_results: Option<u64>,
    /// Only these records are candidates.
    ids: Option<Vec<String>>,
    #[schema(rename = "where", value_type = Option<Where>)]
    r#where: (),
    #[schema(value_type = Option<WhereDocument>)]
    where_document: (),
    /// Of `documents`, `embeddings`, `metadatas`, `uris`, `distances`;
    /// `["metadatas", "documents", "distances"]` when absent.
    include: Option<Vec<String>>,
}

/// What delete answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    /// How many records were deleted.
    deleted: u64,
}

type RecordPath = web::Path<(String, String, String)>;

/// The collection of a record request and its shards.
async fn collection_shards<'a>(
    state: &'a AppState,
    path: RecordPath,
    deadline: Instant,
) -> Result<CollectionShards<'a>, ApiError> {
    let (tenant, database, id) = path.into_inner();
    let id = collection_id(&id)?;
    let catalog = state.catalog();
    let collection = catalog
        .collection(&tenant, &database, &id, deadline)
        .await?;
    Ok(CollectionShards {
        cluster: &state.cluster,
        catalog,
        collection,
        deadline,
    })
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_count",
    params(CollectionIdPath),
    responses((status = 200, description = "How many records the collection has", content_type = "application/json", body = u64), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/count")]
async fn count(state: web::Data<AppState>, path: RecordPath) -> Result<HttpResponse, ApiError> {
    let shards = collection_shards(&state, path, state.deadline()).await?;
    Ok(HttpResponse::Ok().json(records::count(&shards).await?))
}

/// add and upsert need an embedding for every record, after the
/// collection's embedding function had its turn (`embed.rs`).
fn require_embeddings(batch: &WriteBatch) -> Result<(), ApiError> {
    let missing = match &batch.embeddings {
        None => batch.ids.first(),
        Some(e) => batch
            .ids
            .iter()
            .zip(e)
            .find(|(_, e)| e.is_none())
            .map(|(id, _)| id),
    };
    let Some(id) = missing else {
        return Ok(());
    };
    let has_document = match &batch.documents {
        None => false,
        Some(d) => batch.ids.iter().zip(d).any(|(i, d)| i == id && d.is_some()),
    };
    if has_document {
        return Err(ApiError::Internal(format!(
            "record {id} has a document but was not embedded"
        )));
    }
    Err(ApiError::invalid(format!(
        "You must provide embeddings or documents; record {id} has neither"
    )))
}

async fn run_write(
    state: &AppState,
    path: RecordPath,
    bytes: &[u8],
    kind: WriteKind,
) -> Result<(), ApiError> {
    let map = body::object(bytes)?;
    let mut batch = parse::write_batch(&map, state.settings.max_batch_size)?;
    let deadline = state.deadline();
    let mut shards = collection_shards(state, path, deadline).await?;
    if batch.ids.is_empty() {
        return Ok(());
    }
    embed::embed_documents(state, &shards.collection, kind, &mut batch).await?;
    if kind != WriteKind::Update {
        require_embeddings(&batch)?;
    }
    let dimension = batch.dimension()?;
    records::write(&mut shards, kind, batch.into_records(), dimension).await
}

/// An add / upsert / update: `created` is add's 201.
async fn write_endpoint(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
    kind: WriteKind,
    created: bool,
) -> Result<HttpResponse, ApiError> {
    run_write(&state, path, &bytes, kind).await?;
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(EmptyResponse {}))
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_add",
    description = "Adds records. Ids that already exist are handled by the router's \
        add_existing mode (config `[router] add_existing`, env ROUTER_ADD_EXISTING): \
        `reject` (the default) answers 409 `IdAlreadyExistsError` and writes nothing of \
        the request; `skip` writes the new ids and leaves existing ones as they are, as \
        Chroma 1.x does.",
    params(CollectionIdPath),
    request_body = AddCollectionRecordsPayload,
    responses((status = 201, description = "The records were written", body = EmptyResponse), failures::RecordAdd)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/add")]
async fn add(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let kind = WriteKind::Add(state.settings.add_mode);
    write_endpoint(state, path, bytes, kind, true).await
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_upsert",
    params(CollectionIdPath),
    request_body = AddCollectionRecordsPayload,
    responses((status = 200, description = "The records were written", body = EmptyResponse), failures::RecordWrite)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/upsert")]
async fn upsert(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_endpoint(state, path, bytes, WriteKind::Upsert, false).await
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_update",
    description = "Updates existing records: given fields replace the stored ones, \
        metadatas are merged key by key (null removes a key); ids that do not exist are \
        ignored.",
    params(CollectionIdPath),
    request_body = AddCollectionRecordsPayload,
    responses((status = 200, description = "The records were written", body = EmptyResponse), failures::RecordWrite)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/update")]
async fn update(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    write_endpoint(state, path, bytes, WriteKind::Update, false).await
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_delete",
    params(CollectionIdPath),
    request_body = DeleteCollectionRecordsPayload,
    responses((status = 200, description = "The records were deleted", body = DeleteResponse), failures::RecordRead)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/delete")]
async fn delete(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let selection = parse::selection(&body::object(&bytes)?)?;
    if selection.ids.is_none() && selection.filter.is_empty() {
        return Err(ApiError::invalid(
            "Delete needs ids, a where filter or a where_document filter; to delete every record, delete the collection",
        ));
    }
    let shards = collection_shards(&state, path, state.deadline()).await?;
    let deleted = if selection.is_nothing() {
        0
    } else {
        records::delete(&shards, selection).await?
    };
    Ok(HttpResponse::Ok().json(DeleteResponse { deleted }))
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_get",
    params(CollectionIdPath),
    request_body = GetRequestPayload,
    responses((status = 200, description = "The records selected", body = GetResult), failures::RecordRead)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/get")]
async fn get(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = body::object(&bytes)?;
    let selection = parse::selection(&map)?;
    let offset = parse::count(&map, "offset")?.unwrap_or(0);
    common::limits::check_limit_offset("offset", offset)?;
    let include: Included = parse::include(&map, parse::GET_DEFAULT, false)?;
    let shards = collection_shards(&state, path, state.deadline()).await?;
    let records = if selection.is_nothing() {
        Vec::new()
    } else {
        records::get(&shards, selection, offset, include.fields).await?
    };
    Ok(HttpResponse::Ok().json(response::get_result(records, &include)))
}

#[utoipa::path(
    tag = "records",
    operation_id = "collection_query",
    params(CollectionIdPath),
    request_body = QueryRequestPayload,
    responses((status = 200, description = "The nearest records of each query embedding", body = QueryResult), failures::RecordRead)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections/{id}/query")]
async fn query(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let map = body::object(&bytes)?;
    let n_results = parse::count(&map, "n_results")?.unwrap_or(10);
    let ids = parse::select_ids(&map)?;
    let filter = parse::filter(&map)?;
    let include = parse::include(&map, parse::QUERY_DEFAULT, true)?;
    let deadline = state.deadline();
    let mut shards = collection_shards(&state, path, deadline).await?;
    let embeddings = embed::query_embeddings(&state, &shards.collection, &map, n_results).await?;
    let query = records::Query {
        dimension: parse::shared_dimension(embeddings.iter())?,
        embeddings,
        n_results,
        ids,
        filter,
        include: include.fields,
    };
    let hits = records::query(&mut shards, query).await?;
    Ok(HttpResponse::Ok().json(response::query_result(hits, &include)))
}
