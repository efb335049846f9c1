//! Operator endpoints (JSON): status with a per-replica digest, the transport fault filter
//! (`partition` / `heal`), and leadership transfer.

use actix_web::{web, HttpResponse};
use common::wire::{NodeStatus, PartitionRequest, ReplicaStatus, TransferLeaderRequest};

use super::ApiState;
use crate::raft::messages::TransferLeader;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/status", web::get().to(status))
        .route("/admin/partition", web::post().to(partition))
        .route("/admin/heal", web::post().to(heal))
        .route("/admin/transfer-leader", web::post().to(transfer_leader));
}

/// The node's status; reads every state machine (digest, record count) under its read
/// lock, so call it off the async workers.
pub fn node_status(state: &ApiState) -> NodeStatus {
    let replicas = state
        .replicas
        .all()
        .iter()
        .map(|h| {
            let p = h.progress.lock().clone();
            let (digest, records) = {
                let sm = h.state_machine.read();
                (sm.digest(), sm.record_count())
            };
            ReplicaStatus {
                group: h.group,
                kind: h.kind,
                role: p.role,
                term: p.term,
                leader: p.leader,
                commit: p.commit,
                applied: p.applied,
                applied_term: p.applied_term,
                last_index: p.last_index,
                snapshot_index: p.snapshot_index,
                digest: format!("{digest:016x}"),
                records,
                voters: p.voters,
            }
        })
        .collect();
    NodeStatus {
        node_id: state.node_id,
        replicas,
        blocked: state.transport.filter().blocked(),
        dropped_messages: state
            .transport
            .stats()
            .dropped_messages
            .load(std::sync::atomic::Ordering::Relaxed),
    }
}

async fn status(state: web::Data<ApiState>) -> HttpResponse {
    match web::block(move || node_status(&state)).await {
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
