//! Tenants and databases.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use common::catalog::{
    validate_database_name, validate_tenant_name, CatalogCommand, CatalogRead, CatalogReadValue,
    CatalogSuccess,
};
use serde_json::{json, Value};

use super::body::{self, JsonBody, Paging};
use super::collections::drop_shard_parts;
use super::models::{database_json, tenant_json};
use super::AppState;
use crate::auth;
use crate::catalog::unexpected;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tenants", web::post().to(create_tenant))
        .route("/tenants/{tenant}", web::get().to(get_tenant))
        .route(
            "/tenants/{tenant}/databases",
            web::post().to(create_database),
        )
        .route("/tenants/{tenant}/databases", web::get().to(list_databases))
        .route(
            "/tenants/{tenant}/databases/{database}",
            web::get().to(get_database),
        )
        .route(
            "/tenants/{tenant}/databases/{database}",
            web::delete().to(delete_database),
        );
}

fn empty_object() -> HttpResponse {
    HttpResponse::Ok().json(json!({}))
}

async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let name = body::string(&body::object(&bytes)?, "name")?;
    auth::authorize(&req, &name, None)?;
    validate_tenant_name(&name)?;
    state
        .catalog()
        .propose(CatalogCommand::CreateTenant { name }, state.deadline())
        .await?;
    Ok(empty_object())
}

async fn get_tenant(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let read = CatalogRead::GetTenant {
        name: path.into_inner(),
    };
    match state.catalog().read(read, state.deadline()).await? {
        CatalogReadValue::Tenant(t) => Ok(HttpResponse::Ok().json(tenant_json(&t))),
        other => Err(unexpected(&other)),
    }
}

async fn create_database(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    bytes: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let name = body::string(&body::object(&bytes)?, "name")?;
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
            Ok(HttpResponse::Ok().json(list.iter().map(database_json).collect::<Vec<Value>>()))
        }
        other => Err(unexpected(&other)),
    }
}

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
        CatalogReadValue::Database(d) => Ok(HttpResponse::Ok().json(database_json(&d))),
        other => Err(unexpected(&other)),
    }
}

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
