//! The live cluster page: `GET /dashboard` (HTML), `GET /dashboard/page.js` (its
//! script) and `GET /dashboard/state` (the JSON the script polls). The page and its
//! script are embedded in the binary: no CDN, nothing fetched at run time but the state.
//!
//! - [`gather`]: what the router asks the nodes and the catalogue for;
//! - [`state`]: the JSON's shape and its assembly (pure, unit-tested);
//! - [`traffic`]: requests/s and p99 per second, fed by the metrics middleware.
//!
//! Access follows the router's token auth (`crate::auth::access`): open when the API is
//! open; with token auth on, every `/dashboard` path needs an unrestricted token (one
//! whose user may use every tenant and database, as `reset` does), since the page shows
//! every tenant's collections and the whole cluster's state.

mod gather;
pub mod state;
pub mod traffic;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use tokio::sync::Mutex;

use self::state::DashboardState;
use crate::api::AppState;

pub const PATH: &str = "/dashboard";

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");

/// The page runs only its own script, talks only to its own origin, and cannot be
/// framed; its styles are inline.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'";

/// A state younger than this is answered again rather than rebuilt: several open pages
/// (or a fast poller) cost the nodes one round a second, not one each.
const REUSE_FOR: Duration = Duration::from_millis(900);

/// The last state built, shared by every worker (made once in `crate::server`).
#[derive(Default)]
pub struct Dashboard {
    latest: Mutex<Option<(Instant, Arc<DashboardState>)>>,
}

impl Dashboard {
    async fn state(&self, app: &AppState) -> Arc<DashboardState> {
        // Held while building, so concurrent polls wait for one build and share it.
        let mut latest = self.latest.lock().await;
        if let Some((at, state)) = latest.as_ref() {
            if at.elapsed() < REUSE_FOR {
                return state.clone();
            }
        }
        let state = Arc::new(gather::build(app).await);
        *latest = Some((Instant::now(), state.clone()));
        state
    }
}

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(page).service(script).service(state_json);
}

fn embedded(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .body(body)
}

/// The live cluster page (`PATH`).
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String), crate::api::failures::Dashboard)
)]
#[get("/dashboard")]
async fn page() -> HttpResponse {
    embedded("text/html; charset=utf-8", PAGE)
}

/// The page's script.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The script", content_type = "text/javascript; charset=utf-8", body = String), crate::api::failures::Dashboard)
)]
#[get("/dashboard/page.js")]
async fn script() -> HttpResponse {
    embedded("text/javascript; charset=utf-8", SCRIPT)
}

/// What the page shows: nodes, shard groups, collections, traffic.
#[utoipa::path(
    tag = "operations",
    operation_id = "dashboard_state",
    responses((status = 200, description = "The cluster's state, as the page reads it", body = crate::api::schemas::AnyObject), crate::api::failures::Dashboard)
)]
#[get("/dashboard/state")]
async fn state_json(app: web::Data<AppState>, dashboard: web::Data<Dashboard>) -> HttpResponse {
    let state = dashboard.state(&app).await;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(&*state)
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App};

    use super::*;

    #[actix_web::test]
    async fn the_page_and_its_script_are_served_locked_down() {
        use utoipa_actix_web::AppExt;
        let app =
            test::init_service(App::new().into_utoipa_app().configure(configure).into_app()).await;
        for (path, content_type) in [
            ("/dashboard", "text/html; charset=utf-8"),
            ("/dashboard/page.js", "text/javascript; charset=utf-8"),
        ] {
            let resp =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(resp.status(), 200, "{path}");
            let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
            assert_eq!(header(header::CONTENT_TYPE), Some(content_type), "{path}");
            assert_eq!(
                header(header::CONTENT_SECURITY_POLICY),
                Some(CONTENT_SECURITY_POLICY)
            );
        }
        // The page loads the script relative to itself, where the route serves it.
        assert!(PAGE.contains(r#"<script src="dashboard/page.js">"#));
        assert!(SCRIPT.contains(r#"new URL("state", document.currentScript.src)"#));
    }
}
