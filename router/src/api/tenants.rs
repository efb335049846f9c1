//! Tenants and databases.

use std::collections::HashMap;

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use common::catalog::{
    validate_database_name, validate_tenant_name, CatalogCommand, CatalogRead, CatalogReadValue,
    CatalogSuccess,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::{self, JsonBody, Paging};
use super::collections::drop_shard_parts;
use super::models::{Database, Tenant};
use super::{failures, AppState};
use crate::auth;
use crate::catalog::unexpected;
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_tenant)
        .service(get_tenant)
        .service(create_database)
        .service(list_databases)
        .service(get_database)
        .service(delete_database);
}

/// The body of a create: a tenant's or a database's name.
#[derive(Debug, ToSchema)]
pub struct CreateNamePayload {
    name: String,
}

impl CreateNamePayload {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        Ok(CreateNamePayload {
            name: body::string(&body::object(bytes)?, "name")?,
        })
    }
}

/// What a create, modify or delete of a tenant, database or collection answers.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct EmptyResponse {}

pub fn empty_object() -> HttpResponse {
    HttpResponse::Ok().json(EmptyResponse {})
}

// The path parameters of each operation come from its `web::Path` argument (utoipa's
// actix_extras), named by the route's template.

#[utoipa::path(
    tag = "tenants",
    request_body = CreateNamePayload,
    responses((status = 200, description = "The tenant was created", body = EmptyResponse), failures::CatalogueWrite)
)]
#[post("/api/v2/tenants")]
async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let CreateNamePayload { name } = CreateNamePayload::parse(&bytes)?;
    auth::authorize(&req, &name, None)?;
    validate_tenant_name(&name)?;
    state
        .catalog()
        .propose(CatalogCommand::CreateTenant { name }, state.deadline())
        .await?;
    Ok(empty_object())
}

#[utoipa::path(
    tag = "tenants",
    responses((status = 200, description = "The tenant", body = Tenant), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}")]
async fn get_tenant(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let read = CatalogRead::GetTenant {
        name: path.into_inner(),
    };
    match state.catalog().read(read, state.deadline()).await? {
        CatalogReadValue::Tenant(t) => Ok(HttpResponse::Ok().json(Tenant::from(&t))),
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(
    tag = "tenants",
    request_body = CreateNamePayload,
    responses((status = 200, description = "The database was created", body = EmptyResponse), failures::CatalogueWrite)
)]
#[post("/api/v2/tenants/{tenant}/databases")]
async fn create_database(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let CreateNamePayload { name } = CreateNamePayload::parse(&bytes)?;
    let tenant = path.into_inner();
    auth::authorize(&req, &tenant, Some(&name))?;
    validate_database_name(&name)?;
    let command = CatalogCommand::CreateDatabase {
        tenant,
        name,
        id: uuid::Uuid::new_v4().to_string(),
    };
    state.catalog().propose(command, state.deadline()).await?;
    Ok(empty_object())
}

#[utoipa::path(
    tag = "tenants",
    params(Paging),
    responses((status = 200, description = "The tenant's databases, a page of them with limit and offset", body = Vec<Database>), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases")]
async fn list_databases(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let paging = Paging::from_query(&query)?;
    let read = CatalogRead::ListDatabases {
        tenant: path.into_inner(),
        limit: paging.limit,
        offset: paging.offset,
    };
    match state.catalog().read(read, state.deadline()).await? {
        CatalogReadValue::Databases(list) => {
            Ok(HttpResponse::Ok().json(list.iter().map(Database::from).collect::<Vec<_>>()))
        }
        other => Err(unexpected(&other)),
    }
}

#[utoipa::path(
    tag = "tenants",
    responses((status = 200, description = "The database", body = Database), failures::PathOnly)
)]
#[get("/api/v2/tenants/{tenant}/databases/{database}")]
async fn get_database(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    match state
        .catalog()
        .read(CatalogRead::GetDatabase { tenant, name }, state.deadline())
        .await?
    {
        CatalogReadValue::Database(d) => Ok(HttpResponse::Ok().json(Database::from(&d))),
        other => Err(unexpected(&other)),
    }
}

/// Deletes the database and every collection in it, on every shard.
#[utoipa::path(
    tag = "tenants",
    responses((status = 200, description = "The database and its collections were deleted", body = EmptyResponse), failures::PathOnly)
)]
#[delete("/api/v2/tenants/{tenant}/databases/{database}")]
async fn delete_database(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, name) = path.into_inner();
    let deadline = state.deadline();
    match state
        .catalog()
        .propose(CatalogCommand::DeleteDatabase { tenant, name }, deadline)
        .await?
    {
        CatalogSuccess::DatabaseDeleted { dropped, .. } => {
            drop_shard_parts(&state, &dropped, deadline).await?;
            Ok(empty_object())
        }
        other => Err(unexpected(&other)),
    }
}
