//! Berth's HTTP surface: the router and the state every handler shares.

mod api;
mod auth;
pub mod oci;
pub mod ops;
pub mod origin;
mod query;
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
    /// Which proxies' forwarding headers are believed, and whether the listener is HTTPS.
    pub forwarding: Arc<origin::Forwarding>,
    /// Space used per repository and namespace, and namespace quotas.
    pub usage: berth_core::lifecycle::UsageService,
    /// Garbage collection (its totals feed `/metrics`).
    pub collector: berth_core::lifecycle::Collector,
    /// Immutable tag rules, retention policies and their runs.
    pub lifecycle: berth_core::lifecycle::Lifecycle,
    /// Pull rate limits: the counters, plans, and the exchange with other nodes.
    pub pull_limits: berth_core::ratelimit::PullLimits,
    /// The pull-through cache: `[[mirror]]` upstreams and the transparent mirror.
    pub mirrors: berth_core::mirror::Mirrors,
    /// Trusted keys, signature states and pull policies (checked on manifest GET).
    pub signatures: berth_core::signatures::Signatures,
    /// Vulnerability scans: results per image and the summaries beside tags.
    pub scanner: berth_core::scan::Scanner,
    /// Replication rules, their runs and history.
    pub replications: berth_core::replication::Replications,
    /// Automated builds: sources, rules, hooks, the builder's jobs.
    pub builds: berth_core::builds::Builds,
}

/// The whole HTTP application, with default operations settings (metrics for loopback
/// callers only, and no store probe, so `/readyz` answers 503).
pub fn router(state: AppState) -> Router {
    router_with(state, ops::Operations::default())
}

/// The whole HTTP application, with the operations endpoints set up by `ops`.
pub fn router_with(state: AppState, ops: ops::Operations) -> Router {
    let forwarding = state.forwarding.clone();
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
        .merge(ops::routes(ops.clone()))
        .fallback(any(not_found))
        .layer(axum::middleware::map_response(oci::api_version_header))
        .layer(axum::middleware::from_fn_with_state(ops, ops::observe))
        // Outermost: everything inside reads the client's address from this one place.
        .layer(axum::middleware::from_fn_with_state(
            forwarding,
            origin::attach,
        ))
        .with_state(state)
}

/// Any path no route claims: an OCI-style 404, never an empty answer.
async fn not_found(request: axum::extract::Request) -> axum::response::Response {
    let err = berth_core::Error::NotFound(request.uri().path().chars().take(300).collect());
    oci::error_response(&err, request.method())
}
