//! Starting the HTTP server.

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use common::config::ClusterConfig;

use crate::api::{self, AppState};
use crate::auth;
use crate::dashboard::Dashboard;
use crate::embedding::{default_model_dir, EmbeddingService};
use crate::limits;
use crate::metrics;
use crate::settings::RouterSettings;
use crate::trace;
use utoipa_actix_web::AppExt;

/// How often the router reads the cluster map (nodes, group replicas).
pub const MAP_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves the API on `settings.listen` until the process is stopped.
pub async fn run(config: ClusterConfig, settings: RouterSettings) -> std::io::Result<()> {
    let listen = settings.listen.clone();
    // Checked before the (slow) model load so a bad file fails at once.
    let tls = match &settings.tls {
        Some(files) => Some((
            files.clone(),
            crate::tls::server_config(files).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let embedder =
        EmbeddingService::new(default_model_dir(), threads).map_err(std::io::Error::other)?;
    let state = AppState::new(&config, settings, embedder).map_err(std::io::Error::other)?;
    // Nodes that joined and replicas that moved are found through the cluster map.
    state.cluster.clone().follow_map_every(MAP_REFRESH);
    let state = web::Data::new(state);
    // One for every worker, so its cached state is shared.
    let dashboard = web::Data::new(Dashboard::default());
    let document = api::document().to_json().map_err(std::io::Error::other)?;
    let document = web::Data::new(api::OpenApiJson(document));
    let server = HttpServer::new(move || {
        // The last `wrap` runs first: a request gets its id (trace), is timed
        // (metrics), takes an in-flight slot, then is authenticated; bodies are
        // read (bounded) by `api::body::JsonBody`.
        App::new()
            .into_utoipa_app()
            .app_data(state.clone())
            .app_data(dashboard.clone())
            .app_data(document.clone())
            .configure(api::configure)
            .into_app()
            .wrap(from_fn(auth::authenticate))
            .wrap(from_fn(limits::limit_in_flight))
            .wrap(from_fn(metrics::track))
            .wrap(from_fn(trace::trace))
    });
    let server = match tls {
        Some((files, tls_config)) => {
            tracing::info!(
                %listen,
                cert = %files.cert.display(),
                "router listening: HTTPS only (TLS with rustls)"
            );
            server.bind_rustls_0_23(&listen, tls_config)?
        }
        None => {
            tracing::info!(%listen, "router listening: plain HTTP (no TLS configured)");
            server.bind(&listen)?
        }
    };
    server.run().await
}
