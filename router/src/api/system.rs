//! System endpoints: heartbeat, version, pre-flight checks, identity,
//! healthcheck, reset.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use common::catalog::{
    CatalogCommand, CatalogRead, CatalogSuccess, DEFAULT_DATABASE, DEFAULT_TENANT,
};
use common::command::ShardCommand;
use serde_json::json;

use super::AppState;
use crate::auth::{self, Identity};
use crate::catalog::unexpected;
use crate::error::ApiError;
use crate::shards::{on_every_group, shard_error};

/// The Chroma version whose API this router speaks.
pub const CHROMA_API_VERSION: &str = "1.5.9";

/// A healthcheck is a quick probe: it must not take a request's full timeout.
const HEALTHCHECK_BUDGET: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/heartbeat", web::get().to(heartbeat))
        .route("/version", web::get().to(version))
        .route("/pre-flight-checks", web::get().to(pre_flight_checks))
        .route("/auth/identity", web::get().to(identity))
        .route("/healthcheck", web::get().to(healthcheck))
        .route("/reset", web::post().to(reset));
}

async fn heartbeat() -> HttpResponse {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    HttpResponse::Ok().json(json!({ "nanosecond heartbeat": nanos }))
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(CHROMA_API_VERSION)
}

async fn pre_flight_checks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "max_batch_size": state.settings.max_batch_size,
        "supports_base64_encoding": true,
    }))
}

/// The token's user; without authentication, Chroma's open identity.
async fn identity(req: HttpRequest) -> HttpResponse {
    let identity = auth::identity(&req).unwrap_or_else(|| Identity {
        user_id: String::new(),
        tenant: DEFAULT_TENANT.to_owned(),
        databases: vec![DEFAULT_DATABASE.to_owned()],
    });
    HttpResponse::Ok().json(identity)
}

/// 200 when the metadata group answers a linearizable read (so it has a
/// leader with a quorum), 503 otherwise.
async fn healthcheck(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let deadline = Instant::now() + HEALTHCHECK_BUDGET.min(state.settings.request_timeout);
    state.catalog().read(CatalogRead::Version, deadline).await?;
    Ok(HttpResponse::Ok().json(json!({
        "is_executor_ready": true,
        "is_log_client_ready": true,
    })))
}

/// Wipes the catalogue, then every shard group. Retrying after a failure is
/// safe: both steps are idempotent.
async fn reset(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.settings.allow_reset {
        return Err(ApiError::ResetDisabled);
    }
    let deadline = state.deadline();
    match state
        .catalog()
        .propose(CatalogCommand::Reset, deadline)
        .await?
    {
        CatalogSuccess::Reset { .. } => {}
        other => return Err(unexpected(&other)),
    }
    let failed = on_every_group(
        &*state.cluster,
        &state.shard_groups,
        &ShardCommand::Reset,
        deadline,
    )
    .await;
    if let Some((group, e)) = failed.into_iter().next() {
        return Err(shard_error("(all, reset)", group, e));
    }
    state.cache.clear();
    Ok(HttpResponse::Ok().json(true))
}
