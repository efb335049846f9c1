//! Registering with the metadata group and following the cluster map.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::catalog::{CatalogCommand, CatalogError, CatalogSuccess};
use common::group_client::ClusterClient;

use crate::transport::Transport;

/// How often a node reads the cluster map once registered.
pub const MAP_FOLLOW_EVERY: Duration = Duration::from_secs(3);
/// Pause between registration attempts while the metadata group does not answer.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Budget of one registration attempt or map read.
const ATTEMPT: Duration = Duration::from_secs(5);

/// Who registers, and where the map it follows goes.
pub struct Registrar {
    pub node_id: u64,
    pub addr: String,
    pub incarnation: u64,
    pub client: Arc<ClusterClient>,
    pub transport: Arc<Transport>,
    /// Set once the metadata group accepted the registration (shown in `/admin/status`).
    pub registered: Arc<AtomicBool>,
}

/// Registers this node (retrying until the metadata group accepts or refuses it), then
/// follows the cluster map for as long as the node runs.
pub async fn register_and_follow(r: Registrar) {
    let command = CatalogCommand::RegisterNode {
        id: r.node_id,
        addr: r.addr.clone(),
        incarnation: r.incarnation,
    };
    let started = Instant::now();
    loop {
        match r
            .client
            .propose_catalog(command.clone(), Instant::now() + ATTEMPT)
            .await
        {
            Ok(Ok(CatalogSuccess::NodeRegistered(how))) => {
                tracing::info!(
                    incarnation = r.incarnation,
                    ?how,
                    "registered in the cluster map"
                );
                r.registered.store(true, Ordering::Release);
                break;
            }
            Ok(Ok(other)) => {
                tracing::error!(?other, "unexpected answer to a registration; retrying");
            }
            Ok(Err(e)) => {
                // A removed node (or a refused address) stays out: nothing to retry.
                tracing::error!(error = %CatalogError::message(&e), "the cluster refused this node's registration");
                return;
            }
            Err(e) => {
                if started.elapsed() > Duration::from_secs(30) {
                    tracing::warn!(error = %e, "cannot register yet; retrying");
                } else {
                    tracing::debug!(error = %e, "cannot register yet; retrying");
                }
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    loop {
        if let Ok(map) = r.client.refresh_map(Instant::now() + ATTEMPT).await {
            for (id, addr) in map.addresses() {
                r.transport.set_peer(id, addr);
            }
        }
        tokio::time::sleep(MAP_FOLLOW_EVERY).await;
    }
}
