//! `GET /metrics` (Prometheus text format): every request the router serves, by route
//! pattern, method and status, with its latency, and the process's memory. With token
//! authentication on, a scrape needs a valid token (Prometheus's `authorization`
//! option sends it as a bearer token), like every route but the probes.

use std::sync::LazyLock;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{get, HttpResponse};
use common::metrics::{HttpMetrics, ProcessMetrics, CONTENT_TYPE};
use prometheus::Registry;

struct RouterMetrics {
    registry: Registry,
    http: HttpMetrics,
    process: ProcessMetrics,
}

static METRICS: LazyLock<RouterMetrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let register = || -> prometheus::Result<RouterMetrics> {
        Ok(RouterMetrics {
            // The dashboard's chart counts the same requests, from the same timing.
            http: HttpMetrics::register(&registry, "vdb_router")?
                .observed_by(crate::dashboard::traffic::observe),
            process: ProcessMetrics::register(&registry)?,
            registry: registry.clone(),
        })
    };
    register().unwrap_or_else(|e| panic!("router metrics cannot register: {e}"))
});

pub const METRICS_PATH: &str = "/metrics";

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(metrics);
}

/// The router's Prometheus metrics (`METRICS_PATH`).
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4", body = String),
        (status = 500, description = "The registry could not be rendered (a bug)", content_type = "text/plain", body = String),
        crate::api::failures::Token
    )
)]
#[get("/metrics")]
async fn metrics() -> HttpResponse {
    let m = &*METRICS;
    match common::metrics::render(&m.registry, &m.process, Vec::new()) {
        Ok(text) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// The middleware (outermost, so requests refused by the in-flight limit or
/// authentication are counted too).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    common::metrics::track(&METRICS.http, req, next).await
}
