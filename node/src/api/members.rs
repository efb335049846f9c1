//! Membership endpoints (JSON, behind the cluster secret like every node route):
//!
//! - `POST /admin/members` ([`MembersRequest`]), on the group's leader: one conf change;
//!   answered with the group's configuration ([`MembersReply`]) once it is applied here
//!   (a joint configuration left), or: 421 `{"error", "leader"}` not the leader (a leader
//!   asked to remove itself starts a transfer and names the new leader), 409 another
//!   change in progress, a learner not caught up, or the change overwritten by a new
//!   leader before it committed (retry), 400 a change that cannot be
//!   made, 504 not applied within the node's request timeout (it may still apply).
//! - `POST /admin/replicas` ([`CreateReplicaRequest`]): host a new, empty replica of the
//!   group (201; 200 if one runs already); with `bootstrap`, a first voter of a group
//!   the placement driver created (409 when this node lost its disk since it was chosen,
//!   or held a replica of the group before).
//! - `DELETE /admin/replicas/{group}`: stop this node's replica, delete its data, leave a
//!   tombstone (sent, like every non-GET node request, as `application/json`, e.g. `{}`).
//!   For a replica its group no longer counts (the caller checks the leader's
//!   configuration first); a leader refuses (409). A failed replica (a damaged log) is
//!   deleted the same way. With `{"retired": true}` ([`DestroyReplicaRequest`]), for a
//!   group the cluster map lists as retired (409 otherwise), even a leader is deleted.
//! - `POST /admin/peers` ([`PeerRequest`]): the address of a node (new, or moved).

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use common::placement::METADATA_GROUP;
use common::registry::{plausible_addr, MAX_GROUP_REPLICAS};
use common::wire::{
    BootstrapReplica, CreateReplicaRequest, DestroyReplicaRequest, MemberChange, MembersReply,
    MembersRequest, PeerRequest,
};
use serde_json::json;

use super::ApiState;
use crate::hosting::HostError;
use crate::raft::messages::{ChangeMembership, Destroy};
use crate::raft::MembershipError;

/// How often a membership request looks whether its change is applied.
const POLL: Duration = Duration::from_millis(20);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/members", web::post().to(change_members))
        .route("/admin/replicas", web::post().to(create_replica))
        .route("/admin/replicas/{group}", web::delete().to(destroy_replica))
        .route("/admin/peers", web::post().to(set_peer));
}

fn refused(e: &MembershipError) -> HttpResponse {
    let body = |leader: Option<u64>| json!({ "error": e.to_string(), "leader": leader });
    match e {
        MembershipError::NotLeader { leader } => {
            HttpResponse::MisdirectedRequest().json(body(*leader))
        }
        MembershipError::Busy | MembershipError::NotCaughtUp { .. } => {
            HttpResponse::Conflict().json(body(None))
        }
        MembershipError::NotLearner(_) | MembershipError::NoVoter => {
            HttpResponse::BadRequest().json(body(None))
        }
        MembershipError::Stopped(_) => HttpResponse::ServiceUnavailable().json(body(None)),
        MembershipError::Raft(_) => HttpResponse::InternalServerError().json(body(None)),
    }
}

fn no_replica(group: u64) -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "error": format!("no replica of group {group} here") }))
}

async fn change_members(
    body: web::Json<MembersRequest>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let MembersRequest { group, changes } = body.into_inner();
    let Some(h) = state.replicas.get(group) else {
        return no_replica(group);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    h.addr.do_send(ChangeMembership {
        changes: changes.clone(),
        reply,
    });
    let index = match answer.await {
        Ok(Ok(index)) => index,
        Ok(Err(e)) => return refused(&e),
        Err(_) => return refused(&MembershipError::Stopped("the replica stopped".into())),
    };
    // Answered once this replica applied the change and left any joint configuration,
    // and the configuration shows it: an entry a new leader wrote over the change (at
    // the same index) is applied too, and the change is then not made.
    let deadline = Instant::now() + state.default_timeout;
    loop {
        let (applied, voters, learners, joint) = {
            let p = h.progress.lock();
            (
                p.applied,
                p.voters.clone(),
                p.learners.clone(),
                !p.voters_outgoing.is_empty(),
            )
        };
        if index.is_none_or(|i| applied >= i) && !joint {
            if !changes.iter().all(|c| shows(c, &voters, &learners)) {
                return HttpResponse::Conflict().json(json!({
                    "error": format!("the change at index {index:?} was overwritten by a new leader; retry"),
                    "leader": h.progress.lock().leader,
                }));
            }
            return HttpResponse::Ok().json(MembersReply {
                group,
                voters,
                learners,
                index,
            });
        }
        if Instant::now() >= deadline || h.failure().is_some() || h.is_removed() {
            return HttpResponse::GatewayTimeout().json(json!({
                "error": format!("the change at index {index:?} is not applied yet (applied {applied}); it may still be"),
            }));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a configuration shows `change` made.
fn shows(change: &MemberChange, voters: &[u64], learners: &[u64]) -> bool {
    match *change {
        MemberChange::AddLearner(n) => learners.contains(&n) || voters.contains(&n),
        MemberChange::Promote(n) => voters.contains(&n),
        MemberChange::Remove(n) => !voters.contains(&n) && !learners.contains(&n),
    }
}

async fn create_replica(
    body: web::Json<CreateReplicaRequest>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let CreateReplicaRequest {
        group,
        joined_at,
        bootstrap,
    } = body.into_inner();
    // On this worker, not the blocking pool: the replica's arbiter is started from an
    // actix thread (a few small fsynced files are written first; a rare admin call).
    let created = match bootstrap {
        None => state.host.create(group, joined_at),
        Some(b) => {
            if let Err(why) = bootstrap_refusal(group, &b, state.incarnation) {
                return HttpResponse::Conflict().json(json!({ "error": why }));
            }
            state.host.bootstrap(group, b.voters, b.leader)
        }
    };
    match created {
        Ok(true) => HttpResponse::Created().json(json!({ "group": group })),
        Ok(false) => HttpResponse::Ok().json(json!({ "group": group })),
        Err(e @ HostError::Refused(_)) => {
            HttpResponse::Conflict().json(json!({ "error": e.to_string() }))
        }
        Err(e) => HttpResponse::InternalServerError().json(json!({ "error": e.to_string() })),
    }
}

/// Why a bootstrap request may not be carried out here, if it may not.
fn bootstrap_refusal(group: u64, b: &BootstrapReplica, incarnation: u64) -> Result<(), String> {
    if group == METADATA_GROUP {
        return Err("the metadata group is never bootstrapped at run time".into());
    }
    if b.voters.is_empty() || b.voters.len() > MAX_GROUP_REPLICAS || !b.voters.contains(&b.leader) {
        return Err(format!(
            "a bootstrap needs 1 to {MAX_GROUP_REPLICAS} voters including its first leader"
        ));
    }
    if b.incarnation != incarnation {
        return Err(format!(
            "this node is incarnation {incarnation}, not {} chosen for group {group}: it lost its \
             disk since and joins as a new member instead",
            b.incarnation
        ));
    }
    Ok(())
}

async fn destroy_replica(
    group: web::Path<u64>,
    body: web::Bytes,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let group = group.into_inner();
    let request: DestroyReplicaRequest = if body.is_empty() {
        DestroyReplicaRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return HttpResponse::BadRequest().json(json!({ "error": e.to_string() })),
        }
    };
    if request.retired {
        let deadline = Instant::now() + state.default_timeout;
        match state.cluster.metadata.cluster_map(deadline).await {
            Ok(map) if map.retired.contains(&group) => {}
            Ok(_) => {
                return HttpResponse::Conflict()
                    .json(json!({ "error": format!("group {group} is not retired") }))
            }
            Err(e) => {
                return HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() }))
            }
        }
    }
    // A failed replica has no working actor to destroy it: the host deletes it.
    let host = state.host.clone();
    let destroyed = match web::block(move || host.destroy_failed(group)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match destroyed {
        Ok(true) => return HttpResponse::Ok().json(json!({ "group": group })),
        Ok(false) => {}
        Err(e) => return HttpResponse::InternalServerError().json(json!({ "error": e })),
    }
    let Some(h) = state.replicas.get(group) else {
        return no_replica(group);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    h.addr.do_send(Destroy {
        retired: request.retired,
        reply,
    });
    match answer.await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "group": group })),
        Ok(Err(MembershipError::NotLeader { .. })) => HttpResponse::Conflict().json(
            json!({ "error": "this replica leads its group: remove it from the group first" }),
        ),
        Ok(Err(e)) => refused(&e),
        Err(_) => refused(&MembershipError::Stopped("the replica stopped".into())),
    }
}

async fn set_peer(body: web::Json<PeerRequest>, state: web::Data<ApiState>) -> HttpResponse {
    let PeerRequest { id, addr } = body.into_inner();
    // The cluster map's rule for a node address (and its length limit).
    if id == 0 || !plausible_addr(&addr) {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "a peer needs a non-zero id and a host:port address" }));
    }
    state.transport.set_peer(id, &addr);
    HttpResponse::Ok().json(json!({ "id": id, "addr": addr }))
}
