//! Collections: create / get_or_create, list, count, get by name or id,
//! modify, delete. The catalogue (metadata group) is the truth; each
//! collection also has a part on every shard group, created right after the
//! catalogue entry and dropped right after it is deleted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::{delete, get, post, put, web, HttpResponse};
use common::catalog::{
    canonical_uuid, validate_collection_metadata, validate_collection_name, CatalogCommand,
    CatalogError, CatalogRead, CatalogReadValue, CatalogSuccess, CollectionModel,
};
use common::command::ShardCommand;
use common::record::metadata_from_json;
use common::Metadata;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::{self, JsonBody, Paging};
use super::configuration::{self, CreateConfiguration, UpdateConfiguration};
use super::models::collection_json;
use super::models::CollectionSchema;
use super::tenants::{empty_object, EmptyResponse};
use super::{failures, AppState};
use crate::catalog::{metadata_unavailable, unexpected};
use crate::error::ApiError;
use crate::shards::{on_every_group, CollectionShards};

pub fn configure(cfg: &mut ServiceConfig) {
    // by-id before the by-name GET, whose `{collection}` would also match `by-id`.
    cfg.service(create)
        .service(list)
        .service(count)
        .service(get_by_id)
        .service(get_by_name)
        .service(modify)
        .service(delete);
}

// Chroma's clients name the collection by name to get or delete it and by id to
// modify it; the three share the template `{collection}`, as OpenAPI forbids two
// templates of one path.

/// The path of one collection by id, for the record routes (whose `RecordPath`
/// argument utoipa does not see through).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CollectionIdPath {
    /// The tenant's name.
    tenant: String,
    /// The database's name.
    database: String,
    /// The collection's id, any UUID text form.
    id: String,
}

/// The body of a create.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CreateCollectionPayload {
    /// 3-512 characters of `[a-zA-Z0-9._-]`, starting and ending with a letter or digit.
    name: String,
    #[schema(value_type = Option<crate::api::schemas::Metadata>)]
    metadata: (),
    configuration: Option<CreateConfiguration>,
    /// Answer the existing collection of that name instead of 409.
    get_or_create: Option<bool>,
}

/// The body of a modify; absent or null fields are left as they are.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UpdateCollectionPayload {
    new_name: Option<String>,
    /// Replaces the collection's metadata.
    #[schema(value_type = Option<crate::api::schemas::Metadata>)]
    new_metadata: (),
    new_configuration: Option<UpdateConfiguration>,
}

/// A collection id from a path: any UUID text form, canonicalised.
pub fn collection_id(text: &str) -> Result<String, ApiError> {
    canonical_uuid(text).ok_or_else(|| ApiError::invalid(format!("Invalid collection id: {text}")))
}

/// A metadata object of a collection request (`field` names it in errors);
/// absent or null is `None`.
fn collection_metadata(
    map: &Map<String, Value>,
    field: &str,
) -> Result<Option<Metadata>, ApiError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let m = metadata_from_json(v)?;
            validate_collection_metadata(field, &m)?;
            Ok(Some(m))
        }
    }
}

fn collection_response(model: &CollectionModel) -> HttpResponse {
    HttpResponse::Ok().json(collection_json(model))
}

#[utoipa::path(
    tag = "collections",
    request_body = CreateCollectionPayload,
    responses((status = 200, description = "The collection created (or, with get_or_create, found)", body = CollectionSchema), failures::CatalogueWrite)
)]
#[post("/api/v2/tenants/{tenant}/databases/{database}/collections")]
async fn create(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database) = path.into_inner();
    let map = body::object(&bytes)?;
    let name = body::string(&map, "name")?;
    validate_collection_name("name", &name)?;
    let metadata = collection_metadata(&map, "metadata")?;
    let configuration = configuration::parse_create(map.get("configuration"), metadata.as_ref())?;
    let get_or_create = body::opt_bool(&map, "get_or_create")?.unwrap_or(false);
    let deadline = state.deadline();
    let id = uuid::Uuid::new_v4().to_string();
    let command = |shards| CatalogCommand::CreateCollection {
        tenant: tenant.clone(),
        database: database.clone(),
        shards,
        id: id.clone(),
        name: name.clone(),
        metadata: metadata.clone(),
        configuration: configuration.clone(),
        get_or_create,
    };
    let catalog = state.catalog();
    let mut outcome = catalog
        .propose_outcome(command(state.shards_for(&id)), deadline)
        .await?;
    if let Err(CatalogError::ShardGroupRetired(_)) = outcome {
        // The pool this router knew had a group the placement driver retired since.
        state
            .cluster
            .refresh_map(deadline)
            .await
            .map_err(metadata_unavailable)?;
        outcome = catalog
            .propose_outcome(command(state.shards_for(&id)), deadline)
            .await?;
    }
    match outcome? {
        CatalogSuccess::CollectionCreated {
            collection,
            created,
        } => {
            if created {
                create_shard_parts(&state, &collection, deadline).await;
            }
            Ok(collection_response(&collection))
        }
        other => Err(unexpected(&other)),
    }
}

/// Creates the collection's part on each of its shards. A shard that fails
/// here gets its part when a request first reaches it (see `shards.rs`),
/// so the create still succeeds.
async fn create_shard_parts(state: &AppState, collection: &CollectionModel, deadline: Instant) {
    let command = ShardCommand::CreateCollection {
        collection: collection.id.clone(),
        config: collection.index_config.clone(),
    };
    for (group, e) in on_every_group(&*state.cluster, &collection.shards, &command, deadline).await
    {
        tracing::warn!(collection = %collection.id, group, "creating the shard part failed: {e}; it is created on first use");
    }
}

/// How long a router keeps retrying, in the background, the drop of a deleted
/// collection's part on a shard that could not be reached before the request's deadline.
const DROP_RETRY_FOR: Duration = Duration::from_secs(600);

/// Drops the parts of deleted collections on their shards. The catalogue entries are
/// already gone, so no router finds the collections any more; but a router that cached
/// one could still write to a part that was not dropped. So the delete is acknowledged
/// only once every part is dropped: a part whose shard did not answer before the deadline
/// is 503 naming it (the outcome is unknown to the client: the catalogue entry is gone),
/// and its drop goes on in the background (drops are idempotent, and a shard never
/// creates a dropped part again).
pub async fn drop_shard_parts(
    state: &web::Data<AppState>,
    collections: &[CollectionModel],
    deadline: Instant,
) -> Result<(), ApiError> {
    let mut failed = Vec::new();
    for c in collections {
        let command = ShardCommand::DropCollection {
            collection: c.id.clone(),
        };
        let groups: Vec<u64> = on_every_group(&*state.cluster, &c.shards, &command, deadline)
            .await
            .into_iter()
            .map(|(group, e)| {
                tracing::warn!(collection = %c.id, group, "dropping the shard part failed: {e}");
                failed.push(format!("collection {} on shard {group}: {e}", c.id));
                group
            })
            .collect();
        if !groups.is_empty() {
            actix_web::rt::spawn(keep_dropping(state.clone(), command, groups));
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(ApiError::Unavailable(format!(
        "Deleted from the catalogue, but dropping these shard parts did not finish before the \
         deadline (retrying in the background): {}",
        failed.join("; ")
    )))
}

/// Retries `drop` on `groups` until each applied it or [`DROP_RETRY_FOR`] has passed.
async fn keep_dropping(state: web::Data<AppState>, drop: ShardCommand, mut groups: Vec<u64>) {
    let give_up = Instant::now() + DROP_RETRY_FOR;
    while !groups.is_empty() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_secs(2)).await;
        groups = on_every_group(&*state.cluster, &groups, &drop, state.deadline())
            .await
            .into_iter()
            .map(|(group, _)| group)
            .collect();
    }
    if !groups.is_empty() {
        tracing::error!(
            ?drop,
            ?groups,
            "gave up dropping shard parts of a deleted collection"
        );
    }
}

#[utoipa::path(
    tag = "collections",
    params(Paging),
    responses((status = 200, description = "The database's collections, a page of them with limit and offset", body = Vec<CollectionSchema>), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases/{database}/collections")]
async fn list(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database) = path.into_inner();
    let paging = Paging::from_query(&query)?;
    let read = CatalogRead::ListCollections {
        tenant,
        database,
        limit: paging.limit,
        offset: paging.offset,
    };
    match state.catalog().read(read, state.deadline()).await? {
        CatalogReadValue::Collections(list) => {
            Ok(HttpResponse::Ok().json(list.iter().map(collection_json).collect::<Vec<Value>>()))
        }
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(
    tag = "collections",
    operation_id = "count_collections",
    responses((status = 200, description = "How many collections the database has", content_type = "application/json", body = u64), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases/{database}/collections_count")]
async fn count(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database) = path.into_inner();
    let read = CatalogRead::CountCollections { tenant, database };
    match state.catalog().read(read, state.deadline()).await? {
        CatalogReadValue::Count(n) => Ok(HttpResponse::Ok().json(n)),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(
    tag = "collections",
    operation_id = "get_collection",
    responses((status = 200, description = "The collection of that name", body = CollectionSchema), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases/{database}/collections/{collection}")]
async fn get_by_name(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database, name) = path.into_inner();
    let read = CatalogRead::GetCollectionByName {
        tenant,
        database,
        name,
    };
    match state.catalog().read(read, state.deadline()).await? {
        CatalogReadValue::Collection(c) => Ok(collection_response(&c)),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(
    tag = "collections",
    operation_id = "get_collection_by_id",
    responses((status = 200, description = "The collection of that id", body = CollectionSchema), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases/{database}/collections/by-id/{id}")]
async fn get_by_id(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database, id) = path.into_inner();
    let id = collection_id(&id)?;
    let catalog = state.catalog();
    let deadline = state.deadline();
    // Always from the metadata group: this is a metadata read, and its
    // answer (name, metadata, dimension) may have changed.
    catalog.refresh(&id, deadline).await?;
    let model = catalog
        .collection(&tenant, &database, &id, deadline)
        .await?;
    Ok(collection_response(&model))
}

#[utoipa::path(
    tag = "collections",
    operation_id = "update_collection",
    request_body = UpdateCollectionPayload,
    responses((status = 200, description = "The collection was modified", body = EmptyResponse), failures::CatalogueWrite)
)]
#[put("/api/v2/tenants/{tenant}/databases/{database}/collections/{collection}")]
async fn modify(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database, id) = path.into_inner();
    let id = collection_id(&id)?;
    let map = body::object(&bytes)?;
    let new_name = body::opt_string(&map, "new_name")?;
    if let Some(n) = &new_name {
        validate_collection_name("new_name", n)?;
    }
    let new_metadata = collection_metadata(&map, "new_metadata")?;
    let new_configuration = match map.get("new_configuration") {
        None | Some(Value::Null) => None,
        Some(Value::Object(update)) => Some(configuration::parse_update(update)?),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "Expected new_configuration to be an object, got {}",
                body::kind(other)
            )))
        }
    };
    let deadline = state.deadline();
    let catalog = state.catalog();
    catalog.refresh(&id, deadline).await?;
    let before = catalog
        .collection(&tenant, &database, &id, deadline)
        .await?;
    let command = CatalogCommand::ModifyCollection {
        id: id.clone(),
        new_name,
        new_metadata,
        new_configuration,
    };
    let after = match catalog.propose(command, deadline).await? {
        CatalogSuccess::CollectionModified(c) => c,
        other => return Err(unexpected(&other)),
    };
    if after.index_config != before.index_config {
        let shards = CollectionShards {
            cluster: &*state.cluster,
            catalog: state.catalog(),
            collection: after.clone(),
            deadline,
        };
        let command = ShardCommand::ModifyCollection {
            collection: after.id.clone(),
            config: after.index_config.clone(),
        };
        for group in &after.shards {
            shards.propose(*group, &command).await?;
        }
    }
    Ok(empty_object())
}

/// Deletes the collection from the catalogue, then its part on every shard.
#[utoipa::path(
    tag = "collections",
    operation_id = "delete_collection",
    responses((status = 200, description = "The collection was deleted", body = EmptyResponse), failures::PathOnly)
)]
#[delete("/api/v2/tenants/{tenant}/databases/{database}/collections/{collection}")]
async fn delete(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, database, name) = path.into_inner();
    let deadline = state.deadline();
    let command = CatalogCommand::DeleteCollection {
        tenant,
        database,
        name,
    };
    match state.catalog().propose(command, deadline).await? {
        CatalogSuccess::CollectionDeleted(c) => {
            drop_shard_parts(&state, std::slice::from_ref(&c), deadline).await?;
            Ok(empty_object())
        }
        other => Err(unexpected(&other)),
    }
}
