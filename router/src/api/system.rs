//! System endpoints: heartbeat, version, pre-flight checks, identity,
//! healthcheck, reset.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use common::catalog::{
    CatalogCommand, CatalogRead, CatalogSuccess, DEFAULT_DATABASE, DEFAULT_TENANT,
};
use common::command::ShardCommand;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{failures, AppState};
use crate::auth::{self, Identity};
use crate::catalog::unexpected;
use crate::error::ApiError;
use crate::shards::{on_every_group, shard_error};

/// The Chroma version whose API this router speaks.
pub const CHROMA_API_VERSION: &str = "1.5.9";

/// A healthcheck is a quick probe: it must not take a request's full timeout.
const HEALTHCHECK_BUDGET: Duration = Duration::from_secs(2);

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(heartbeat)
        .service(version)
        .service(pre_flight_checks)
        .service(identity)
        .service(healthcheck)
        .service(reset);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatResponse {
    /// The router's clock, in nanoseconds since the Unix epoch.
    #[serde(rename = "nanosecond heartbeat")]
    pub nanosecond_heartbeat: u64,
}

/// Open, and not counted in flight: a liveness probe of this router alone.
#[utoipa::path(
    tag = "system",
    security(()),
    responses((status = 200, description = "The router is up", body = HeartbeatResponse))
)]
#[get("/api/v2/heartbeat")]
async fn heartbeat() -> HttpResponse {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    HttpResponse::Ok().json(HeartbeatResponse {
        nanosecond_heartbeat: nanos,
    })
}

/// The Chroma version whose API this router speaks.
#[utoipa::path(
    tag = "system",
    security(()),
    responses((status = 200, description = "Chroma's version string", content_type = "application/json", body = String, example = json!(CHROMA_API_VERSION)))
)]
#[get("/api/v2/version")]
async fn version() -> HttpResponse {
    HttpResponse::Ok().json(CHROMA_API_VERSION)
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChecklistResponse)]
pub struct PreFlightChecks {
    /// Records per write (the router's `max_batch_size`); more is 413.
    pub max_batch_size: usize,
    /// Embeddings may be sent as base64 strings of little-endian f32s.
    pub supports_base64_encoding: bool,
}

#[utoipa::path(
    tag = "system",
    operation_id = "pre_flight_checks",
    responses((status = 200, description = "What a client should know before writing", body = PreFlightChecks), failures::Token)
)]
#[get("/api/v2/pre-flight-checks")]
async fn pre_flight_checks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(PreFlightChecks {
        max_batch_size: state.settings.max_batch_size,
        supports_base64_encoding: true,
    })
}

/// The token's user; without authentication, Chroma's open identity.
#[utoipa::path(
    tag = "system",
    operation_id = "get_user_identity",
    responses((status = 200, description = "The token's user (an empty user_id when token auth is off)", body = Identity), failures::Token)
)]
#[get("/api/v2/auth/identity")]
async fn identity(req: HttpRequest) -> HttpResponse {
    let identity = auth::identity(&req).unwrap_or_else(|| Identity {
        user_id: String::new(),
        tenant: DEFAULT_TENANT.to_owned(),
        databases: vec![DEFAULT_DATABASE.to_owned()],
    });
    HttpResponse::Ok().json(identity)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthcheckResponse {
    pub is_executor_ready: bool,
    pub is_log_client_ready: bool,
}

/// 200 when the metadata group answers a linearizable read (so it has a
/// leader with a quorum), 503 otherwise. Open, and not counted in flight.
#[utoipa::path(
    tag = "system",
    security(()),
    responses((status = 200, description = "The metadata group has a leader with a quorum", body = HealthcheckResponse), failures::Health)
)]
#[get("/api/v2/healthcheck")]
async fn healthcheck(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let deadline = Instant::now() + HEALTHCHECK_BUDGET.min(state.settings.request_timeout);
    state.catalog().read(CatalogRead::Version, deadline).await?;
    Ok(HttpResponse::Ok().json(HealthcheckResponse {
        is_executor_ready: true,
        is_log_client_ready: true,
    }))
}

/// Wipes the catalogue, then every shard group. Retrying after a failure is
/// safe: both steps are idempotent.
#[utoipa::path(
    tag = "system",
    description = "Wipes every collection on every shard and recreates the default tenant and \
        database. Only with the router option allow_reset (else 403 `ChromaError`), and only \
        for a token whose user may use every tenant and database.",
    responses((status = 200, description = "Everything was wiped", content_type = "application/json", body = bool), failures::Reset)
)]
#[post("/api/v2/reset")]
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
        &state.cluster.all_shard_groups(),
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
