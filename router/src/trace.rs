//! A request id for every request: made here, answered in Chroma's `chroma-trace-id`
//! header (on every response, errors included: the authentication and in-flight
//! middlewares answer their refusals as responses, inside this one), logged in a `request` span around the
//! handling, and sent to the nodes ([`common::logging::REQUEST_ID_HEADER`], by
//! [`common::group_client`]) so their logs of the request carry it too.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

/// Chroma's response header with the request's trace id.
pub const TRACE_ID_HEADER: &str = "chroma-trace-id";

// The id of the request this task serves lives in the group client, which sends it with
// every node call (the router's handlers await their node calls in the request's own task).
use common::group_client::REQUEST_ID;

/// The middleware (outermost).
pub async fn trace(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // 32 hex digits, the shape of an OpenTelemetry trace id (what Chroma sends).
    let id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path()
    );
    let started = std::time::Instant::now();
    let result = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    // An error here (none of ours: refusals are responses) has no request to
    // build a response with (routing needs the only handle on it); it goes out as it is.
    let mut response = result?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(&id) {
        let name = HeaderName::from_static(TRACE_ID_HEADER);
        response.headers_mut().insert(name, value);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "served"
        )
    });
    Ok(response)
}
