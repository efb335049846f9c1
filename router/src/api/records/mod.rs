//! The Collection methods: count, add, upsert, update, delete, get (peek is
//! a get with a limit), query. `parse` validates bodies, `embed` fills in
//! document embeddings, `crate::records` runs them across the collection's
//! shards, `response` shapes the JSON.

mod embed;
mod parse;
mod response;

use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde_json::json;

use self::parse::{Included, WriteBatch};
use super::body::{self, JsonBody};
use super::collections::collection_id;
use super::AppState;
use crate::error::ApiError;
use crate::records::{self, WriteKind};
use crate::shards::CollectionShards;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/tenants/{tenant}/databases/{database}/collections/{id}";
    cfg.route(&format!("{base}/count"), web::get().to(count))
        .route(
            &format!("{base}/add"),
            write_route(|s| WriteKind::Add(s.settings.add_mode), true),
        )
        .route(
            &format!("{base}/upsert"),
            write_route(|_| WriteKind::Upsert, false),
        )
        .route(
            &format!("{base}/update"),
            write_route(|_| WriteKind::Update, false),
        )
        .route(&format!("{base}/delete"), web::post().to(delete))
        .route(&format!("{base}/get"), web::post().to(get))
        .route(&format!("{base}/query"), web::post().to(query));
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

/// An add / upsert / update endpoint: `kind` picks the write from the
/// settings, `created` is add's 201.
async fn write_endpoint(
    state: web::Data<AppState>,
    path: RecordPath,
    bytes: JsonBody,
    kind: fn(&AppState) -> WriteKind,
    created: bool,
) -> Result<HttpResponse, ApiError> {
    run_write(&state, path, &bytes, kind(&state)).await?;
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(json!({})))
}

fn write_route(kind: fn(&AppState) -> WriteKind, created: bool) -> actix_web::Route {
    web::post().to(move |state, path, bytes| write_endpoint(state, path, bytes, kind, created))
}

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
    Ok(HttpResponse::Ok().json(json!({ "deleted": deleted })))
}

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
