//! Backpressure: a bound on the requests one router serves at once. A
//! request beyond it is answered at once with 429 `RateLimitError` and
//! `Retry-After` instead of queueing, so memory stays bounded (at most
//! `max_in_flight` bodies of at most `max_body_bytes` are held) and an
//! overloaded cluster sheds load instead of timing everything out. The open
//! probes (heartbeat, version, healthcheck) are not counted, so health
//! checks keep answering under load.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use tokio::sync::Semaphore;

use crate::api::AppState;
use crate::auth::is_probe;
use crate::error::ApiError;

/// Slots for requests in flight.
pub struct InFlight {
    slots: Arc<Semaphore>,
    max: usize,
}

impl InFlight {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        InFlight {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// The middleware (`actix_web::middleware::from_fn`): holds a slot for the
/// whole handling of a request, or answers 429.
pub async fn limit_in_flight(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let permit = match state {
        Some(state) if !is_probe(req.path()) => {
            match state.in_flight.slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    // Answered as a response (not an error), so the outer
                    // middlewares still see it: it gets `chroma-trace-id`.
                    let e = ApiError::Overloaded(format!(
                        "The router is serving its maximum of {} requests at once; retry shortly",
                        state.in_flight.max
                    ));
                    return Ok(req.error_response(e).map_into_right_body());
                }
            }
        }
        _ => None,
    };
    let response = next.call(req).await;
    drop(permit);
    response.map(ServiceResponse::map_into_left_body)
}
