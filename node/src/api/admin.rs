//! Operator endpoints (JSON): status with a per-replica digest (`?digest=false`: without,
//! cheap), the transport fault filter
//! (`partition` / `delay` / `heal`), leadership transfer and the preferred leader.

use actix_web::{web, HttpResponse};
use common::placement::GroupKind;
use common::wire::{
    DelayRequest, NodeStatus, PartitionRequest, PreferredLeaderRequest, ReplicaState,
    ReplicaStatus, TransferLeaderRequest, MAX_FAULT_DELAY_MS,
};

use super::ApiState;
use crate::raft::messages::{SetPreferredLeader, TransferLeader};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/status", web::get().to(status))
        .route("/admin/partition", web::post().to(partition))
        .route("/admin/delay", web::post().to(delay))
        .route("/admin/heal", web::post().to(heal))
        .route("/admin/transfer-leader", web::post().to(transfer_leader))
        .route("/admin/preferred-leader", web::post().to(preferred_leader));
}

/// Whether a status carries each replica's digest: hashing every record under the state
/// machine's read lock costs time in the size of the data, fine for an operator's or a
/// test's look, not for the placement driver's round every second or a metrics scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digests {
    With,
    Without,
}

/// `GET /admin/status?digest=false`.
#[derive(Debug, serde::Deserialize)]
struct StatusQuery {
    #[serde(default = "yes")]
    digest: bool,
}

fn yes() -> bool {
    true
}

/// The node's status; reads every running state machine (record count, and the digest
/// when asked) under its read lock, so call it off the async workers. A replica that is
/// not running (failed, or waiting for the amnesia check) shows its state and why, and
/// its state machine is not touched.
pub fn node_status(state: &ApiState, digests: Digests) -> NodeStatus {
    let mut replicas: Vec<ReplicaStatus> = state
        .replicas
        .all()
        .iter()
        .map(|h| {
            let mut status = h.progress.lock().clone();
            let sm = h.state_machine.read();
            // Checked under the lock: a failed apply marks the replica before releasing it.
            match h.failure() {
                Some(reason) => {
                    status.state = ReplicaState::Failed;
                    status.error = Some(reason);
                }
                None => {
                    if digests == Digests::With {
                        status.digest = format!("{:016x}", sm.digest());
                    }
                    status.records = sm.record_count();
                    if status.kind == GroupKind::Shard {
                        status.index_lag = Some(sm.background_lag());
                        status.linked_from_hints = Some(sm.background_hinted());
                    }
                }
            }
            status
        })
        .collect();
    replicas.extend(
        state
            .replicas
            .all_stopped()
            .into_iter()
            .map(|s| ReplicaStatus::idle(s.group, s.kind, s.state, Some(s.reason))),
    );
    replicas.sort_by_key(|r| r.group);
    NodeStatus {
        node_id: state.node_id,
        replicas,
        blocked: state.transport.filter().blocked(),
        dropped_messages: state
            .transport
            .stats()
            .dropped_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        sent_messages: state
            .transport
            .stats()
            .sent_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        registered: state
            .registered
            .as_ref()
            .map(|r| r.load(std::sync::atomic::Ordering::Acquire)),
    }
}

async fn status(state: web::Data<ApiState>, query: web::Query<StatusQuery>) -> HttpResponse {
    let digests = if query.digest {
        Digests::With
    } else {
        Digests::Without
    };
    match web::block(move || node_status(&state, digests)).await {
        Ok(s) => HttpResponse::Ok().json(s),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn partition(body: web::Json<PartitionRequest>, state: web::Data<ApiState>) -> HttpResponse {
    let me = state.node_id;
    let filter = state.transport.filter();
    filter.set(body.blocked.iter().copied().filter(|&n| n != me));
    tracing::warn!(blocked = ?filter.blocked(), "fault filter: raft traffic to and from these nodes is dropped");
    HttpResponse::Ok().json(PartitionRequest {
        blocked: filter.blocked(),
    })
}

async fn delay(body: web::Json<DelayRequest>, state: web::Data<ApiState>) -> HttpResponse {
    let ms = body.ms;
    if ms > MAX_FAULT_DELAY_MS {
        return HttpResponse::BadRequest().json(serde_json::json!({
            "error": format!("a fault delay is at most {MAX_FAULT_DELAY_MS} ms, got {ms}")
        }));
    }
    state
        .transport
        .filter()
        .set_delay(std::time::Duration::from_millis(ms));
    tracing::warn!(ms, "fault filter: every raft message sent is delayed");
    HttpResponse::Ok().json(DelayRequest { ms })
}

async fn heal(state: web::Data<ApiState>) -> HttpResponse {
    state.transport.filter().heal();
    tracing::warn!("fault filter cleared");
    HttpResponse::Ok().json(PartitionRequest::default())
}

async fn transfer_leader(
    body: web::Json<TransferLeaderRequest>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    match state.replicas.get(body.group) {
        Some(h) => {
            h.addr.do_send(TransferLeader { to: body.to });
            HttpResponse::Accepted().finish()
        }
        None => HttpResponse::NotFound().body(format!("no replica of group {}", body.group)),
    }
}

async fn preferred_leader(
    body: web::Json<PreferredLeaderRequest>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    match state.replicas.get(body.group) {
        Some(h) => {
            h.addr.do_send(SetPreferredLeader { to: body.to });
            HttpResponse::Ok().json(&*body)
        }
        None => HttpResponse::NotFound().body(format!("no replica of group {}", body.group)),
    }
}
