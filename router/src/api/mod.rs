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
pub(crate) mod failures;
pub mod models;
mod records;
pub(crate) mod schemas;
mod system;
mod tenants;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{get, web, App, HttpResponse};
use common::config::ClusterConfig;
use common::placement;
use utoipa::openapi::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;

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
    /// How many shard groups a new collection is spread over (the config's
    /// `shard_count`), picked from the cluster's pool ([`AppState::shards_for`]).
    pub shards_per_collection: usize,
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
            shards_per_collection: config.cluster.shard_count,
        })
    }

    pub fn catalog(&self) -> Catalog<'_> {
        Catalog::new(&self.cluster, &self.cache)
    }

    /// The shard groups of a new collection with id `collection_id`.
    pub fn shards_for(&self, collection_id: &str) -> Vec<u64> {
        placement::shards_for_collection(
            &self.cluster.shard_pool(),
            self.shards_per_collection,
            collection_id,
        )
    }

    /// The deadline of a request that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.settings.request_timeout
    }
}

/// Every route the router serves: Chroma's API under `/api/v2`, `/metrics`, the
/// dashboard and `/openapi.json`. Each is a handler with its `#[utoipa::path]`,
/// registered through utoipa-actix-web, so serving it documents it
/// (`tests::every_route_is_documented` refuses plain actix registrations).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(system::configure)
        .configure(tenants::configure)
        .configure(collections::configure)
        .configure(records::configure)
        .configure(crate::metrics::configure)
        .configure(crate::dashboard::configure)
        .service(openapi_json);
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Router API",
        description = "Chroma's v2 HTTP API as this cluster's router serves it, with its \
            extensions: `query_texts` embedded by the router, the router's add_existing \
            mode for add, /metrics, the dashboard. Errors are Chroma's \
            `{\"error\", \"message\"}`."
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&TokenAuth)
)]
struct ApiDoc;

/// Chroma's token headers; the router checks them only when token auth is on.
struct TokenAuth;

impl utoipa::Modify for TokenAuth {
    fn modify(&self, doc: &mut OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
        use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "x-chroma-token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-chroma-token"))),
        );
        // Either header; an empty requirement too, as a cluster without token auth is open.
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("x-chroma-token", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// The OpenAPI 3.1 document of [`configure`]'s routes, built from the same
/// registrations the server makes.
pub fn document() -> OpenApi {
    use utoipa::OpenApi as _;
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(configure)
        .split_for_parts();
    doc
}

/// The document as served, rendered once.
pub struct OpenApiJson(pub String);

/// This document. Like every path outside Chroma's open probes, it needs a token
/// when token auth is on.
#[utoipa::path(
    tag = "system",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = schemas::AnyObject), failures::Token)
)]
#[get("/openapi.json")]
async fn openapi_json(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::Value;

    use super::*;

    const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }

    /// The code before its `#[cfg(test)]` module: tests build apps of their own.
    fn non_test(text: &str) -> &str {
        text.split("#[cfg(test)]").next().unwrap_or(text)
    }

    /// The `(method, path)` of every actix route macro (`#[get("/x")]`,
    /// `#[actix_web::post("/y")]`) in the router's code.
    fn route_macros() -> Vec<(String, String)> {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut routes = Vec::new();
        for (_, text) in &files {
            for line in non_test(text).lines() {
                let line = line.trim();
                let Some(attr) = line.strip_prefix("#[") else {
                    continue;
                };
                let attr = attr.strip_prefix("actix_web::").unwrap_or(attr);
                for method in METHODS {
                    if let Some(rest) = attr.strip_prefix(&format!("{method}(\"")) {
                        let path = rest.split('"').next().unwrap();
                        routes.push((method.to_owned(), path.to_owned()));
                    }
                }
            }
        }
        routes.sort();
        routes
    }

    fn operations(doc: &Value) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                if item.get(method).is_some() {
                    ops.push((method.to_owned(), path.clone()));
                }
            }
        }
        ops.sort();
        ops
    }

    /// The drift check: the routes served are the routes documented. Route macros and
    /// the document's operations must be the same set, and no route may be registered
    /// the plain actix way (`.route`, `web::resource`, `web::scope`), which would serve
    /// it without documenting it.
    #[test]
    fn every_route_is_documented() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(operations(&doc), route_macros());
        assert!(route_macros().len() >= 30, "{:?}", route_macros());
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let plain = [
            ".route(",
            "web::resource(",
            "web::scope(",
            "Resource::new(",
            "web::get()",
            "web::post()",
            "web::put()",
            "web::delete()",
        ];
        for (file, text) in &files {
            for pattern in plain {
                assert!(
                    !non_test(text).contains(pattern),
                    "{file} registers a route with {pattern}: use a route macro with \
                     #[utoipa::path] and utoipa_actix_web's ServiceConfig"
                );
            }
        }
        // After `into_app()` the server must add no service of its own.
        let server = include_str!("../server.rs");
        let after = server.split("into_app()").nth(1).unwrap();
        assert!(!after.split("wrap(").next().unwrap().contains(".service("));
    }

    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// What schemathesis and other tools need of the document: 3.1, every path with
    /// operations whose path parameters are declared, every `$ref` resolving.
    #[test]
    fn the_document_is_openapi_3_1() {
        let text = document().to_json().unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        // utoipa documents a bare string or number as text/plain; the API answers JSON.
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v2") {
                continue;
            }
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if let Some(content) = response["content"].as_object() {
                        let types: Vec<&String> = content.keys().collect();
                        assert_eq!(types, ["application/json"], "{method} {path} {status}");
                    }
                }
            }
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            let templates: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let mut n = 0;
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                n += 1;
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .map(|p| p["name"].as_str().unwrap())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut want = templates.clone();
                let mut got = declared.clone();
                want.sort();
                got.sort();
                assert_eq!(got, want, "{method} {path}");
            }
            assert!(n > 0, "{path} has no operation");
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap();
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
