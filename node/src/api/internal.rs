//! The internal API the router calls. Bodies and replies are bincode; every reply body is
//! a [`InternalReply`] (the HTTP status mirrors it for people reading logs: 200 ok, 421 not
//! leader, 503 no quorum / dropped / replica failed, 504 timeout, 404 unknown group, 400
//! invalid, 500).
//!
//! Also `GET /internal/seen/{node}` (reply: bincode `bool`), asked by a node with no data
//! for some of its groups: has this node ever received a Raft message from `node`? (see
//! [`crate::identity`]).

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use common::placement::group_kind;
use common::wire::{
    self, GroupInfo, InternalError, InternalReply, BINCODE_CONTENT_TYPE, TIMEOUT_HEADER,
};

use std::sync::Arc;

use super::ApiState;
use crate::raft::messages::{Propose, ReadIndex};
use crate::raft::pending::Waiter;
use crate::raft::replica::MAX_PROPOSAL_BYTES;
use crate::raft::state_machine::read_in_steps;
use crate::raft::ReplicaHandle;

/// Extra wait beyond the deadline before the handler gives up on the actor (which
/// enforces deadlines itself, at tick granularity).
const BACKSTOP: Duration = Duration::from_millis(500);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/internal/groups", web::get().to(groups))
        .route("/internal/seen/{node}", web::get().to(seen))
        .route("/internal/{group}/propose", web::post().to(propose))
        .route("/internal/{group}/read", web::post().to(read));
}

pub(super) fn budget(req: &HttpRequest, state: &ApiState) -> Duration {
    req.headers()
        .get(TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(state.default_timeout)
        .min(state.max_timeout)
}

fn status_of(reply: &InternalReply) -> StatusCode {
    match reply {
        Ok(_) => StatusCode::OK,
        Err(InternalError::NotLeader { .. }) => StatusCode::MISDIRECTED_REQUEST,
        Err(InternalError::NoQuorum)
        | Err(InternalError::Dropped)
        | Err(InternalError::Overloaded)
        | Err(InternalError::ReplicaFailed(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Err(InternalError::Unauthorized) => StatusCode::UNAUTHORIZED,
        Err(InternalError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
        Err(InternalError::UnknownGroup(_)) => StatusCode::NOT_FOUND,
        Err(InternalError::Invalid(_)) => StatusCode::BAD_REQUEST,
        Err(InternalError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        Err(InternalError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn bincode_response(status: StatusCode, body: Result<Vec<u8>, wire::WireError>) -> HttpResponse {
    match body {
        Ok(bytes) => HttpResponse::build(status)
            .content_type(BINCODE_CONTENT_TYPE)
            .body(bytes),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

pub(super) fn reply(r: InternalReply) -> HttpResponse {
    bincode_response(status_of(&r), wire::encode(&r))
}

pub(super) async fn wait<T>(
    rx: tokio::sync::oneshot::Receiver<Result<T, InternalError>>,
    budget: Duration,
) -> Result<T, InternalError> {
    match tokio::time::timeout(budget + BACKSTOP, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(InternalError::Internal("the replica stopped".into())),
        Err(_) => Err(InternalError::Timeout),
    }
}

/// The running local replica of `group`, or why there is none.
pub(super) fn running(state: &ApiState, group: u64) -> Result<Arc<ReplicaHandle>, InternalError> {
    if let Some(reason) = state.replicas.unavailable(group) {
        return Err(InternalError::ReplicaFailed(reason));
    }
    state
        .replicas
        .get(group)
        .ok_or(InternalError::UnknownGroup(group))
}

/// Proposes `data` on the local replica of `group` (counted and timed in the metrics).
pub async fn propose_on(
    state: &ApiState,
    group: u64,
    data: Vec<u8>,
    budget: Duration,
) -> InternalReply {
    let started = Instant::now();
    let reply = propose_local(state, group, data, budget).await;
    crate::metrics::get().proposal(group, &reply, started.elapsed());
    reply
}

async fn propose_local(
    state: &ApiState,
    group: u64,
    data: Vec<u8>,
    budget: Duration,
) -> InternalReply {
    let handle = running(state, group)?;
    let header = match handle.admit(&data) {
        Ok(header) => header,
        Err(answer) => return answer,
    };
    // The proposal's own deadline caps the attempt's budget: a copy that waited in this
    // node's queue gets only what is left of the caller's time.
    let budget = budget.min(common::clock::time_left(header.deadline_ms));
    let (waiter, rx) = Waiter::new(Instant::now() + budget);
    handle.addr.do_send(Propose {
        header,
        data,
        waiter,
    });
    wait(rx, budget).await
}

/// Linearizable read on the local replica of `group`: ReadIndex, then the state machine.
pub async fn read_on(
    state: &ApiState,
    group: u64,
    request: Vec<u8>,
    budget: Duration,
) -> InternalReply {
    let handle = running(state, group)?;
    let (waiter, rx) = Waiter::new(Instant::now() + budget);
    handle.addr.do_send(ReadIndex { waiter });
    wait(rx, budget).await?;
    let started = Instant::now();
    let reply = web::block(move || {
        // In steps, each under its own read lock, so a long scan does not hold
        // the apply thread (and every write of the group) for its length.
        read_in_steps(&handle.state_machine, &request, || {
            // Checked under each lock hold: a failed apply marks the replica
            // before releasing the lock.
            match handle.failure() {
                Some(reason) => Err(InternalError::ReplicaFailed(reason)),
                None => Ok(()),
            }
        })
    })
    .await
    .map_err(|e| InternalError::Internal(e.to_string()))?;
    crate::metrics::get().read_phase(crate::metrics::ReadPhase::Execute, started.elapsed());
    reply
}

/// Whether this node ever received a Raft message from `node` (bincode `bool`). A node
/// whose seen-file is unreadable answers true: the asking node then refuses to vote.
async fn seen(path: web::Path<u64>, state: web::Data<ApiState>) -> HttpResponse {
    let node = path.into_inner();
    let seen = state.replicas.peers_seen().is_none_or(|s| s.contains(node));
    bincode_response(StatusCode::OK, wire::encode(&seen))
}

/// The body, or the typed reply for one that could not be read: a body over
/// the payload limit is [`InternalError::TooLarge`] (not actix's plain-text
/// 413, which a caller could not tell from a transient failure).
pub(super) fn body_bytes(
    req: &HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<Vec<u8>, InternalError> {
    match body {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(e) if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE => {
            let size = req
                .headers()
                .get(actix_web::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            Err(InternalError::TooLarge {
                size,
                limit: MAX_PROPOSAL_BYTES as u64,
            })
        }
        Err(e) => Err(InternalError::Invalid(format!("unreadable body: {e}"))),
    }
}

async fn propose(
    path: web::Path<u64>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let budget = budget(&req, &state);
    let data = match body_bytes(&req, body) {
        Ok(data) => data,
        Err(e) => return reply(Err(e)),
    };
    reply(propose_on(&state, path.into_inner(), data, budget).await)
}

async fn read(
    path: web::Path<u64>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let budget = budget(&req, &state);
    let request = match body_bytes(&req, body) {
        Ok(request) => request,
        Err(e) => return reply(Err(e)),
    };
    reply(read_on(&state, path.into_inner(), request, budget).await)
}

/// Each hosted group as this replica sees it.
pub fn group_infos(state: &ApiState) -> Vec<GroupInfo> {
    state
        .replicas
        .all()
        .iter()
        .map(|h| {
            let p = h.progress.lock();
            GroupInfo {
                group: h.group,
                kind: group_kind(h.group),
                role: p.role,
                leader: p.leader,
                term: p.term,
                commit: p.commit,
                applied: p.applied,
            }
        })
        .collect()
}

async fn groups(state: web::Data<ApiState>) -> HttpResponse {
    bincode_response(StatusCode::OK, wire::encode(&group_infos(&state)))
}
