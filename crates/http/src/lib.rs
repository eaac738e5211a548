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
        .with_state(state)
}
