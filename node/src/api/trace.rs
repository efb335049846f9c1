//! The request id a router sends ([`REQUEST_ID_HEADER`]): a request that carries one is
//! served inside a `request` span with it, so the node's log lines of that request (and
//! a debug line when it is answered) can be matched with the router's, whose response
//! told the client the same id in `chroma-trace-id`. A missing or malformed id (see
//! [`valid_request_id`]) just means no span.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use common::logging::{valid_request_id, REQUEST_ID_HEADER};
use tracing::Instrument;

/// The middleware.
pub async fn trace(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| valid_request_id(id))
        .map(str::to_owned);
    let Some(id) = id else {
        return next.call(req).await;
    };
    let span = tracing::info_span!("request", request_id = %id, path = %req.path());
    let started = std::time::Instant::now();
    let response = next.call(req).instrument(span.clone()).await;
    span.in_scope(|| match &response {
        Ok(r) => tracing::debug!(
            status = r.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        ),
        Err(e) => tracing::debug!(error = %e, "failed"),
    });
    response
}
