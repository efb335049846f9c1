//! `GET /metrics` (Prometheus text format, [`crate::metrics`]) and the middleware that
//! times every request the node serves. Behind the gate like every node route: the
//! cluster secret in `x-cluster-secret`, or as `Authorization: Bearer` (what Prometheus's
//! `authorization` scrape option sends).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use common::metrics::CONTENT_TYPE;

use super::admin::{node_status, Digests};
use super::ApiState;

pub const METRICS_PATH: &str = "/metrics";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(METRICS_PATH, web::get().to(metrics));
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    // The status reads every state machine under its lock: off the async workers.
    match web::block(move || crate::metrics::get().render(&node_status(&state, Digests::Without)))
        .await
    {
        Ok(Ok(text)) => HttpResponse::Ok().content_type(CONTENT_TYPE).body(text),
        Ok(Err(e)) => HttpResponse::InternalServerError().body(e.to_string()),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

/// The middleware (outermost, so refused requests are counted too).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    common::metrics::track(&crate::metrics::get().http, req, next).await
}
