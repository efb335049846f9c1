//! The cluster's nodes, on any node (JSON, behind the cluster secret):
//!
//! - `GET /admin/cluster`: the cluster as the placement driver sees it
//!   ([`crate::placement::view::ClusterReport`]: nodes up / down / draining / removed with
//!   their replica and leader counts; groups with their replicas, leader and health).
//! - `POST /admin/nodes/{id}/drain`: node `id` is drained (its replicas and leaderships
//!   move to other nodes, then it is marked removed). 404 for an unknown node.
//! - `POST /admin/placement` (`{"paused": bool}`): pauses or resumes the placement driver
//!   (kept in the cluster map, so it holds across metadata leader changes and restarts).

use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use common::catalog::{CatalogCommand, CatalogError};
use common::registry::NodeState;
use serde_json::json;

use super::ApiState;
use crate::placement::view::{observe, Silence};

/// Budget of the metadata calls these endpoints make.
const BUDGET: Duration = Duration::from_secs(5);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/cluster", web::get().to(cluster))
        .route("/admin/nodes/{id}/drain", web::post().to(drain))
        .route("/admin/placement", web::post().to(placement));
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlacementRequest {
    paused: bool,
}

async fn placement(body: web::Json<PlacementRequest>, state: web::Data<ApiState>) -> HttpResponse {
    let paused = body.into_inner().paused;
    let command = CatalogCommand::SetPlacementPaused { paused };
    match state
        .cluster
        .metadata
        .propose_catalog(command, Instant::now() + BUDGET)
        .await
    {
        Ok(Ok(_)) => HttpResponse::Ok().json(json!({ "paused": paused })),
        Ok(Err(e)) => HttpResponse::BadRequest().json(json!({ "error": e.to_string() })),
        Err(e) => unavailable(e),
    }
}

fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(json!({ "error": format!("the metadata group did not answer: {e}") }))
}

async fn cluster(state: web::Data<ApiState>) -> HttpResponse {
    let access = &state.cluster;
    let map = match access.metadata.cluster_map(Instant::now() + BUDGET).await {
        Ok(map) => map,
        Err(e) => return unavailable(e),
    };
    let view = observe(&access.calls, map, &access.seeds, &mut Silence::default()).await;
    HttpResponse::Ok().json(view.report())
}

async fn drain(id: web::Path<u64>, state: web::Data<ApiState>) -> HttpResponse {
    let id = id.into_inner();
    let command = CatalogCommand::SetNodeState {
        id,
        state: NodeState::Draining,
    };
    match state
        .cluster
        .metadata
        .propose_catalog(command, Instant::now() + BUDGET)
        .await
    {
        Ok(Ok(_)) => HttpResponse::Ok().json(json!({ "id": id, "state": "draining" })),
        Ok(Err(e @ CatalogError::NotFound(_))) => {
            HttpResponse::NotFound().json(json!({ "error": e.to_string() }))
        }
        Ok(Err(e)) => HttpResponse::BadRequest().json(json!({ "error": e.to_string() })),
        Err(e) => unavailable(e),
    }
}
