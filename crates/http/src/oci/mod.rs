//! The OCI distribution API under `/v2/`: one entry point that parses the path into a route,
//! authorizes it once, and dispatches to the handler for that route and method.

mod access;
mod error;
mod handlers;
pub(crate) mod headers;
pub mod route;

use crate::auth;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use berth_core::Error;
pub use error::error_response;
use route::OciRoute;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
}

/// Every registry response carries the API version header clients probe for.
pub async fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response {
    let method = request.method().clone();
    match handle(state, request).await {
        Ok(response) => response,
        Err(err) => error_response(&err, &method),
    }
}

async fn handle(state: AppState, request: Request<Body>) -> Result<Response, Error> {
    let path = request.uri().path();
    let rest = path
        .strip_prefix("/v2")
        .map(|r| r.strip_prefix('/').unwrap_or(r))
        .unwrap_or_default();
    let method = request.method().clone();
    let route = OciRoute::parse_for(rest, &method)?;
    let query = request.uri().query().unwrap_or_default().to_owned();
    // Mirrored repositories are read-only caches: any write is refused before sign-in.
    if let Some(repo) = route.repository() {
        if !matches!(method, Method::GET | Method::HEAD) && state.mirrors.prefixed(repo).is_some() {
            return Err(Error::Denied);
        }
    }
    let needs = access::needs(&route, &method, &query)?;
    let (parts, body) = request.into_parts();
    let peer = auth::peer_address(&parts.extensions);
    let caller = match auth::identify(&state, &parts.headers, peer).await {
        Ok(caller) => caller,
        Err(err) => {
            return Ok(auth::refuse(
                &state,
                &parts.extensions,
                &method,
                &err,
                &needs.required,
                false,
            ))
        }
    };
    if let Err(err) = caller.authorize(&state, &needs.required).await {
        let insufficient_scope = caller.is_bearer();
        return Ok(auth::refuse(
            &state,
            &parts.extensions,
            &method,
            &err,
            &needs.required,
            insufficient_scope,
        ));
    }
    let mount_allowed = match &needs.mount_from {
        Some(need) => caller.allows(&state, need).await?,
        None => false,
    };
    let principal = match route {
        OciRoute::Catalog => Some(caller.principal(&state).await?),
        _ => None,
    };
    let mirror = match &route {
        OciRoute::Manifest { name, .. } | OciRoute::Blob { name, .. }
            if matches!(method, Method::GET | Method::HEAD) && !state.mirrors.is_empty() =>
        {
            let ns = crate::query::query_param(&query, "ns");
            state.mirrors.resolve(name, ns.as_deref()).await?
        }
        _ => None,
    };
    let req = handlers::Req {
        state: &state,
        method,
        query: &query,
        headers: &parts.headers,
        body,
        mount_allowed,
        principal,
        actor: caller.name(),
        address: peer.map(|a| a.to_string()),
        client: peer,
        account: Some(caller.name()).filter(|name| !name.is_empty()),
        caller,
    };
    let response = match (route, mirror) {
        (OciRoute::Manifest { reference, .. }, Some(target)) => {
            handlers::mirror::manifest(req, &target, &reference).await
        }
        (OciRoute::Blob { digest, .. }, Some(target)) => {
            handlers::mirror::blob(req, &target, &digest).await
        }
        (route, _) => local(req, route).await,
    }?;
    Ok(response)
}

/// A request for a local repository (or the registry itself).
async fn local(req: handlers::Req<'_>, route: OciRoute) -> Result<Response, Error> {
    match route {
        OciRoute::Base => handlers::base(req),
        OciRoute::Catalog => handlers::listing::catalog(req).await,
        OciRoute::Tags { name } => handlers::listing::tags(req, &name).await,
        OciRoute::Manifest { name, reference } => {
            handlers::manifests::handle(req, &name, &reference).await
        }
        OciRoute::Blob { name, digest } => handlers::blobs::handle(req, &name, &digest).await,
        OciRoute::UploadStart { name } => handlers::uploads::start(req, &name).await,
        OciRoute::Upload { name, id } => handlers::uploads::session(req, &name, &id).await,
        OciRoute::Referrers { name, digest } => {
            handlers::referrers::list(req, &name, &digest).await
        }
    }
}

/// Answers with 405 for a method a route does not support.
pub(crate) fn method_not_allowed(method: &Method) -> Error {
    Error::MethodNotAllowed(method.to_string())
}
