//! Berth's HTTP surface: the router and the state every handler shares.

pub mod oci;

use axum::Router;
use berth_core::access::Authorizer;
use berth_core::Registry;
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    pub authorizer: Arc<dyn Authorizer>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(oci::routes())
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
