//! The gate in front of every node route (Raft transport, internal API, admin API). In
//! order, before any body is read:
//!
//! 1. the cluster secret ([`CLUSTER_SECRET_HEADER`], compared in constant time; on
//!    `/metrics` also `Authorization: Bearer <secret>`, for Prometheus): without it 401,
//!    nothing done;
//! 2. a bound on requests in flight (Raft transport and the rest counted apart, so client
//!    load cannot starve heartbeats) and, for internal and admin requests, on the sum of
//!    their declared body sizes: past either, 503 with `Retry-After`;
//! 3. the content type of a request with a body: bincode for `/raft/*` and `/internal/*`,
//!    JSON for `/admin/*`, else 415 (a web page cannot make a browser send either without
//!    a CORS preflight).
//!
//! Refusals speak the route's language: a bincode [`InternalReply`] on `/internal/*` (so
//! the router knows what happened), plain text elsewhere.

use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use common::config::SecuritySection;
use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use common::wire::{self, InternalError, InternalReply, BINCODE_CONTENT_TYPE};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a refused caller is told to wait (`Retry-After`).
const RETRY_AFTER_SECS: &str = "1";

pub struct Gate {
    secret: ClusterSecret,
    raft_requests: Arc<Semaphore>,
    /// Snapshot requests: one per peer (each sends one at a time), as they may be large.
    raft_snapshots: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    /// Declared body bytes of requests in flight, in KiB (semaphore permits are counted
    /// in `u32`).
    body_kib: Arc<Semaphore>,
    max_body_kib: u64,
}

/// Which family a route belongs to; decides the expected content type and the language
/// of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Raft,
    RaftSnapshot,
    Internal,
    Admin,
    Other,
}

impl Family {
    fn of(path: &str) -> Family {
        if path == crate::transport::server::SNAPSHOT_PATH {
            Family::RaftSnapshot
        } else if path.starts_with("/raft/") {
            Family::Raft
        } else if path.starts_with("/internal/") {
            Family::Internal
        } else if path.starts_with("/admin/") {
            Family::Admin
        } else {
            Family::Other
        }
    }

    fn content_type(self) -> Option<&'static str> {
        match self {
            Family::Raft | Family::RaftSnapshot | Family::Internal => Some(BINCODE_CONTENT_TYPE),
            Family::Admin => Some("application/json"),
            Family::Other => None,
        }
    }

    fn refuse(self, status: StatusCode, error: InternalError) -> HttpResponse {
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        let text = error.to_string();
        if self == Family::Internal {
            if let Ok(bytes) = wire::encode(&InternalReply::Err(error)) {
                return response.content_type(BINCODE_CONTENT_TYPE).body(bytes);
            }
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(text)
    }
}

/// What a request holds while it is served.
struct Permits {
    _request: OwnedSemaphorePermit,
    _body: Option<OwnedSemaphorePermit>,
}

impl Gate {
    /// `peers`: how many other nodes the cluster has.
    pub fn new(secret: ClusterSecret, limits: &SecuritySection, peers: usize) -> Arc<Gate> {
        let max_body_kib = (limits.max_request_bytes_in_flight as u64 / 1024)
            .clamp(1, u64::from(u32::MAX))
            .min(Semaphore::MAX_PERMITS as u64);
        Arc::new(Gate {
            secret,
            raft_requests: Arc::new(Semaphore::new(limits.max_raft_requests_in_flight)),
            raft_snapshots: Arc::new(Semaphore::new(peers.max(1))),
            requests: Arc::new(Semaphore::new(limits.max_requests_in_flight)),
            body_kib: Arc::new(Semaphore::new(max_body_kib as usize)),
            max_body_kib,
        })
    }

    /// The secret in [`CLUSTER_SECRET_HEADER`]; on `/metrics` also as `Authorization:
    /// Bearer <secret>`, which Prometheus sends from a file (`authorization.credentials_file`).
    fn authenticated(&self, req: &ServiceRequest) -> bool {
        let headers = req.headers();
        if headers
            .get(CLUSTER_SECRET_HEADER)
            .is_some_and(|v| self.secret.verify(v.as_bytes()))
        {
            return true;
        }
        req.path() == super::metrics::METRICS_PATH
            && headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
                .is_some_and(|token| self.secret.verify(token))
    }

    /// Takes the request's permits, or says why not (status and error).
    fn admit(
        &self,
        family: Family,
        req: &ServiceRequest,
    ) -> Result<Permits, (StatusCode, InternalError)> {
        let busy = (StatusCode::SERVICE_UNAVAILABLE, InternalError::Overloaded);
        let raft = match family {
            Family::Raft => Some(&self.raft_requests),
            Family::RaftSnapshot => Some(&self.raft_snapshots),
            _ => None,
        };
        if let Some(slots) = raft {
            let request = slots.clone().try_acquire_owned();
            return request
                .map(|p| Permits {
                    _request: p,
                    _body: None,
                })
                .map_err(|_| busy);
        }
        let kib = match declared_body_bytes(req) {
            Some(bytes) => bytes.div_ceil(1024),
            None => {
                return Err((
                    StatusCode::LENGTH_REQUIRED,
                    InternalError::Invalid("a request body needs a Content-Length".into()),
                ))
            }
        };
        if kib > self.max_body_kib {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                InternalError::Invalid(format!(
                    "a body of {kib} KiB is over the node's limit of {} KiB in flight",
                    self.max_body_kib
                )),
            ));
        }
        let request = self
            .requests
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy.clone())?;
        let body = match kib {
            0 => None,
            // kib <= max_body_kib <= u32::MAX (checked above).
            k => Some(
                self.body_kib
                    .clone()
                    .try_acquire_many_owned(k as u32)
                    .map_err(|_| busy)?,
            ),
        };
        Ok(Permits {
            _request: request,
            _body: body,
        })
    }
}

/// The body size a request declares: its `Content-Length`, 0 for a request without a
/// body, `None` when the size is unknown up front (chunked) or the header is garbage.
fn declared_body_bytes(req: &ServiceRequest) -> Option<u64> {
    let headers = req.headers();
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok()?.trim().parse().ok(),
        None if headers.contains_key(header::TRANSFER_ENCODING) => None,
        None => Some(0),
    }
}

/// Whether the request's content type is `expected` (parameters such as a charset
/// allowed).
fn content_type_is(req: &ServiceRequest, expected: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// The middleware: `App::new().wrap(from_fn(move |req, next| gate::check(g.clone(), req,
/// next)))`.
pub async fn check(
    gate: Arc<Gate>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let family = Family::of(req.path());
    if !gate.authenticated(&req) {
        tracing::debug!(path = req.path(), peer = ?req.peer_addr(), "request without the cluster secret refused");
        let response = family.refuse(StatusCode::UNAUTHORIZED, InternalError::Unauthorized);
        return Ok(req.into_response(response));
    }
    let permits = match gate.admit(family, &req) {
        Ok(p) => p,
        Err((status, error)) => {
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(
                    path = req.path(),
                    "node at its in-flight limit: request refused"
                );
            }
            return Ok(req.into_response(family.refuse(status, error)));
        }
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if let Some(expected) = family.content_type() {
            if !content_type_is(&req, expected) {
                let error = InternalError::Invalid(format!("the body must be {expected}"));
                let response = family.refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, error);
                return Ok(req.into_response(response));
            }
        }
    }
    let response = next.call(req).await?;
    drop(permits);
    Ok(response.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn gate(requests: usize) -> Arc<Gate> {
        let limits = SecuritySection {
            max_requests_in_flight: requests,
            max_request_bytes_in_flight: 1 << 20,
            ..SecuritySection::default()
        };
        Gate::new(ClusterSecret::parse(SECRET).unwrap(), &limits, 2)
    }

    async fn slow() -> HttpResponse {
        tokio::time::sleep(Duration::from_millis(300)).await;
        HttpResponse::Ok().finish()
    }

    macro_rules! app {
        ($gate:expr) => {{
            let g = $gate;
            test::init_service(
                App::new()
                    .wrap(from_fn(move |req, next| check(g.clone(), req, next)))
                    .route("/internal/{g}/propose", web::post().to(slow))
                    .route("/admin/heal", web::post().to(slow))
                    .route("/admin/status", web::get().to(slow))
                    .route("/metrics", web::get().to(slow)),
            )
            .await
        }};
    }

    fn propose(secret: Option<&str>, content_type: &str) -> test::TestRequest {
        let mut req = test::TestRequest::post()
            .uri("/internal/1/propose")
            .insert_header((header::CONTENT_TYPE, content_type))
            .set_payload(vec![1u8; 10]);
        if let Some(s) = secret {
            req = req.insert_header((CLUSTER_SECRET_HEADER, s));
        }
        req
    }

    #[actix_web::test]
    async fn the_secret_is_required_and_checked_first() {
        let app = app!(gate(4));
        for secret in [None, Some(""), Some("0123456789abcdef0123456789abcdeX")] {
            let resp =
                test::call_service(&app, propose(secret, BINCODE_CONTENT_TYPE).to_request()).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            let body = test::read_body(resp).await;
            let reply: InternalReply = wire::decode(&body).unwrap();
            assert_eq!(reply, Err(InternalError::Unauthorized));
        }
        // Without the secret even a wrong content type is a 401 (nothing is revealed).
        let resp = test::call_service(&app, propose(None, "text/plain").to_request()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let req = test::TestRequest::get().uri("/admin/status").to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            test::read_body(resp).await,
            InternalError::Unauthorized.to_string()
        );
        let resp = test::call_service(
            &app,
            propose(Some(SECRET), BINCODE_CONTENT_TYPE).to_request(),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn a_bearer_secret_opens_metrics_only() {
        let app = app!(gate(4));
        let get = |path: &str, auth: &str| {
            test::TestRequest::get()
                .uri(path)
                .insert_header((header::AUTHORIZATION, auth.to_string()))
                .to_request()
        };
        let bearer = format!("Bearer {SECRET}");
        let resp = test::call_service(&app, get("/metrics", &bearer)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        for wrong in ["Bearer 0123456789abcdef0123456789abcdeX", SECRET, "Bearer "] {
            let resp = test::call_service(&app, get("/metrics", wrong)).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        }
        // Elsewhere only the cluster secret header opens.
        let resp = test::call_service(&app, get("/admin/status", &bearer)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }

    #[actix_web::test]
    async fn bodies_need_the_route_content_type() {
        let app = app!(gate(4));
        for ct in [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
        ] {
            let resp = test::call_service(&app, propose(Some(SECRET), ct).to_request()).await;
            assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        }
        let heal = |ct: &str| {
            test::TestRequest::post()
                .uri("/admin/heal")
                .insert_header((CLUSTER_SECRET_HEADER, SECRET))
                .insert_header((header::CONTENT_TYPE, ct))
                .set_payload("{}")
                .to_request()
        };
        let resp = test::call_service(&app, heal("text/plain")).await;
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let resp = test::call_service(&app, heal("application/json; charset=utf-8")).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn requests_past_the_in_flight_bound_get_503_with_retry_after() {
        let app = app!(gate(1));
        let first = test::call_service(
            &app,
            propose(Some(SECRET), BINCODE_CONTENT_TYPE).to_request(),
        );
        let second = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            test::call_service(
                &app,
                propose(Some(SECRET), BINCODE_CONTENT_TYPE).to_request(),
            )
            .await
        };
        let (first, second) = futures::join!(first, second);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let reply: InternalReply = wire::decode(&test::read_body(second).await).unwrap();
        assert_eq!(reply, Err(InternalError::Overloaded));
        // The permit is back once the first request is done.
        let third = test::call_service(
            &app,
            propose(Some(SECRET), BINCODE_CONTENT_TYPE).to_request(),
        )
        .await;
        assert_eq!(third.status(), StatusCode::OK);
    }

    #[actix_web::test]
    async fn declared_bodies_past_the_byte_bound_are_refused() {
        let app = app!(gate(4));
        let req = propose(Some(SECRET), BINCODE_CONTENT_TYPE)
            .insert_header((header::CONTENT_LENGTH, (4u64 << 20).to_string()))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
