//! Starting the HTTP server.

use actix_web::{web, App, HttpServer};
use common::config::ClusterConfig;

use crate::api::{self, AppState};
use crate::embedding::{default_model_dir, EmbeddingService};
use crate::settings::RouterSettings;

/// Bodies up to this size are read (a max batch of large embeddings with
/// documents fits comfortably).
const MAX_BODY_BYTES: usize = 256 << 20;

/// Serves the API on `settings.listen` until the process is stopped.
pub async fn run(config: ClusterConfig, settings: RouterSettings) -> std::io::Result<()> {
    let listen = settings.listen.clone();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let embedder =
        EmbeddingService::new(default_model_dir(), threads).map_err(std::io::Error::other)?;
    let state = AppState::new(&config, settings, embedder).map_err(std::io::Error::other)?;
    let state = web::Data::new(state);
    tracing::info!(%listen, "router listening");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .configure(api::configure)
    })
    .bind(&listen)?
    .run()
    .await
}
