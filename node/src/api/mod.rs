//! The node's HTTP API for routers and operators (the Raft transport's route lives in
//! [`crate::transport::server`]).
//!
//! - [`internal`]: `POST /internal/{group}/propose`, `POST /internal/{group}/read`,
//!   `GET /internal/groups` — bincode bodies, wire types in [`common::wire`].
//! - [`backup`]: `POST /internal/{group}/backup` — a consistent copy of one group,
//!   streamed (format in [`common::backup`]).
//! - [`admin`]: `GET /admin/status` (JSON), the fault filter (`/admin/partition`,
//!   `/admin/heal`) and `/admin/transfer-leader`; [`members`]: membership
//!   (`/admin/members`, `/admin/replicas`, `/admin/peers`); [`nodes`]: the cluster's nodes
//!   (`GET /admin/cluster`, `POST /admin/nodes/{id}/drain`).
//! - [`metrics`]: `GET /metrics` (Prometheus) and the request-timing middleware.
//! - [`trace`]: the router's request id on the node's log lines of that request.
//! - [`gate`]: the middleware in front of every route (cluster secret, requests in flight,
//!   content types).

pub mod admin;
pub mod backup;
pub mod gate;
pub mod internal;
pub mod members;
pub mod metrics;
pub mod nodes;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

use common::group_client::ClusterClient;

use crate::hosting::Host;
use crate::placement::calls::NodeCalls;
use crate::raft::Replicas;
use crate::transport::Transport;

/// How the node reaches the metadata group and other nodes for the cluster endpoints.
pub struct ClusterAccess {
    pub metadata: Arc<ClusterClient>,
    pub calls: NodeCalls,
    /// The config's nodes (asked even before they register).
    pub seeds: Vec<(u64, String)>,
}

/// Shared by every handler.
pub struct ApiState {
    pub cluster: ClusterAccess,
    pub node_id: u64,
    /// This node's incarnation (see `common::registry`).
    pub incarnation: u64,
    pub replicas: Arc<Replicas>,
    pub transport: Arc<Transport>,
    /// Creates replicas at run time (`POST /admin/replicas`).
    pub host: Arc<Host>,
    /// Budget of a propose or read that carries no timeout header.
    pub default_timeout: Duration,
    /// Upper bound on a caller-given budget.
    pub max_timeout: Duration,
    /// Backups in progress and their spill directory.
    pub exports: backup::Exports,
    /// Whether the cluster map accepted this node; `None` when it follows no map.
    pub registered: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Registers the internal and admin routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<ApiState>) {
    cfg.app_data(state)
        // A propose body is the encoded command itself: over this, the
        // handler answers `InternalError::TooLarge` without reading it.
        .app_data(web::PayloadConfig::new(
            crate::raft::replica::MAX_PROPOSAL_BYTES,
        ))
        .configure(internal::configure)
        .configure(backup::configure)
        .configure(admin::configure)
        .configure(members::configure)
        .configure(nodes::configure)
        .configure(metrics::configure);
}
