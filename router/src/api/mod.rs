//! Chroma's v2 HTTP API (http-api.md), one module per group of endpoints:
//! `system` (heartbeat, version, pre-flight, identity, healthcheck, reset),
//! `tenants` (tenants and databases), `collections`, `records` (the
//! Collection methods). Handlers parse with [`body`] and answer
//! `Result<HttpResponse, ApiError>`; errors become Chroma's JSON in
//! `crate::error` only. Chroma's JSON shapes of the catalogue are here and
//! nowhere else: [`configuration`] parses and renders collection
//! configurations, [`models`] renders tenants, databases and collections.

pub mod body;
mod collections;
pub mod configuration;
pub mod models;
mod records;
mod system;
mod tenants;

use std::sync::Arc;
use std::time::Instant;

use actix_web::web;
use common::config::ClusterConfig;
use common::placement;

use crate::catalog::{Catalog, CollectionCache};
use crate::cluster::ClusterClient;
use crate::embedding::EmbeddingService;
use crate::limits::InFlight;
use crate::settings::RouterSettings;

/// What every handler shares.
pub struct AppState {
    pub settings: RouterSettings,
    pub cluster: Arc<ClusterClient>,
    pub cache: CollectionCache,
    /// The shard groups a new collection is spread over: all of them.
    pub shard_groups: Vec<u64>,
    /// Document embeddings for collections with Chroma's default embedding
    /// function; the model loads on first use.
    pub embedder: EmbeddingService,
    /// Slots of the in-flight bound (`crate::limits`).
    pub in_flight: InFlight,
}

impl AppState {
    pub fn new(
        config: &ClusterConfig,
        settings: RouterSettings,
        embedder: EmbeddingService,
    ) -> Result<Self, crate::cluster::ClientInitError> {
        Ok(AppState {
            embedder,
            in_flight: InFlight::new(settings.max_in_flight),
            settings,
            cluster: Arc::new(ClusterClient::new(config)?),
            cache: CollectionCache::default(),
            shard_groups: placement::shard_groups(config).collect(),
        })
    }

    pub fn catalog(&self) -> Catalog<'_> {
        Catalog::new(&self.cluster, &self.cache)
    }

    /// The deadline of a request that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.settings.request_timeout
    }
}

/// Every route, under `/api/v2`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v2")
            .configure(system::configure)
            .configure(tenants::configure)
            .configure(collections::configure)
            .configure(records::configure),
    );
}
