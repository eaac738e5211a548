//! Berth's HTTP surface: the router and the state every handler shares.

mod api;
mod auth;
pub mod oci;
mod ui;
mod v1_search;
pub mod wiring;

use axum::routing::{any, get};
use axum::Router;
use berth_core::auth::Authenticator;
use berth_core::hub::Hub;
use berth_core::identity::Identity;
use berth_core::ports::IdentityStore;
use berth_core::Registry;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    /// Sign-in, the token service and (through it) the authorizer.
    pub auth: Arc<Authenticator>,
    /// Account, organization, token and repository-setting management (the `/api/` surface).
    pub identity: Identity<dyn IdentityStore>,
    /// Search, stars, descriptions, pull counts and the tags view.
    pub hub: Arc<Hub>,
    /// The URL clients reach Berth at (for the token realm); None: from the request's Host.
    pub public_url: Option<String>,
    /// Webhooks: their settings, pings, redeliveries and history, and the event stream.
    pub webhooks: berth_core::webhooks::Webhooks,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(oci::routes())
        .merge(api::routes())
        .merge(ui::routes())
        .route(
            "/token",
            get(auth::token::get_token)
                .post(auth::token::post_token)
                .fallback(auth::token::other_method),
        )
        .route(
            "/v1/search",
            get(v1_search::search).fallback(v1_search::other_method),
        )
        .fallback(any(not_found))
        .layer(axum::middleware::map_response(oci::api_version_header))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One structured log line per request: debug for success, warn for server errors.
async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, %path, status, micros, "request failed");
    } else {
        tracing::debug!(%method, %path, status, micros, "request");
    }
    response
}

/// Any path no route claims: an OCI-style 404, never an empty answer.
async fn not_found(request: axum::extract::Request) -> axum::response::Response {
    let err = berth_core::Error::NotFound(request.uri().path().chars().take(300).collect());
    oci::error_response(&err, request.method())
}
