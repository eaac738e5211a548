//! The JSON API under `/api/v1/`: a thin mapping of paths, methods and JSON bodies onto the
//! management service (which checks permissions and writes the audit log) and the Hub
//! service (search, stars, descriptions, tags); its OpenAPI description is
//! `/api/openapi.json`.
//!
//! Callers authenticate with Basic credentials (a password, refused for accounts with
//! two-factor authentication as for registry clients, or an access token) or with
//! `Bearer <token>` from `POST /api/v1/users/login`. Registry bearer tokens from `/token`
//! are not accepted here, nor API tokens on `/v2/`.

mod audit;
mod builds;
pub(crate) mod error;
mod hub;
mod lifecycle;
mod openapi;
mod orgs;
mod ratelimits;
mod replications;
mod repositories;
mod route;
mod search;
mod signatures;
mod tokens;
mod usage;
mod users;
mod webhooks;
pub(crate) mod wire;

pub(crate) use builds::log_stream as build_log_stream;

use crate::auth::{base_url, credentials, peer_address, Credentials};
use crate::AppState;
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::routing::any;
use axum::Router;
use berth_core::access::{Actor, Principal};
use berth_core::identity::Acting;
use berth_core::lifecycle::Target;
use berth_core::webhooks::WebhookTarget;
use berth_core::Error;
use error::{ApiError, ApiResult};
use route::Route;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::IpAddr;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api", any(dispatch))
        .route("/api/", any(dispatch))
        .route("/api/{*rest}", any(dispatch))
}

async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response<Body> {
    let method = request.method().clone();
    let base = base_url(&state, request.extensions());
    let mut response = match handle(&state, request).await {
        Ok(response) => response,
        Err(err) => error::render(&err, &method),
    };
    // Account data and secrets must not be kept by caches between us and the client.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if response.status() == StatusCode::UNAUTHORIZED {
        // Bearer, not Basic: a Basic challenge would make browsers prompt for a password.
        let challenge = format!("Bearer realm=\"{base}/api/v1/users/login\"");
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// One API request: who sends it, from where, and what it carries.
pub(crate) struct Call<'a> {
    pub state: &'a AppState,
    pub principal: Principal,
    pub address: Option<IpAddr>,
    pub query: String,
    /// The absolute URL of the request without its query, for page links.
    pub link: String,
    /// The request's headers (build hooks read their signatures from them).
    pub headers: HeaderMap,
    body: Bytes,
}

impl Call<'_> {
    /// The caller as the management service takes it.
    pub fn acting(&self) -> Acting<'_> {
        Acting::new(&self.principal, self.address.map(|a| a.to_string()))
    }

    /// The body as `T` (required).
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        wire::parse_json(&self.body)
    }

    /// The body as `T`, or its default when the request has none.
    pub fn optional_json<T: DeserializeOwned + Default>(&self) -> ApiResult<T> {
        wire::parse_optional_json(&self.body)
    }

    /// The page of `items` the query asks for.
    pub fn page<T: Serialize>(&self, items: Vec<T>) -> ApiResult<Response<Body>> {
        let request = wire::PageRequest::from_query(&self.query)?;
        wire::ok(&wire::Page::of(items, request, &self.link, &self.query))
    }

    /// The page `request` asked for, already cut out of `total` items by the store.
    pub fn page_of_total<T: Serialize>(
        &self,
        total: u64,
        results: Vec<T>,
        request: wire::PageRequest,
    ) -> ApiResult<Response<Body>> {
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        wire::ok(&wire::Page::slice(
            total,
            results,
            request,
            &self.link,
            &self.query,
        ))
    }

    /// The account whose tokens a request is about: `?username=` (for site admins; the
    /// management service refuses anyone else), or the caller's own.
    pub fn account(&self) -> ApiResult<String> {
        if let Some(name) = crate::query::query_param(&self.query, "username") {
            return Ok(name);
        }
        match &self.principal.actor {
            Actor::User { name, .. } => Ok(name.clone()),
            Actor::Anonymous => Err(Error::Unauthorized.into()),
            Actor::Organization { .. } => Err(Error::Denied.into()),
        }
    }
}

async fn handle(state: &AppState, request: Request<Body>) -> ApiResult<Response<Body>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let rest = path.strip_prefix("/api").unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let route = Route::parse(rest, &method)?;
    if !route.methods().contains(&method) {
        return Err(ApiError::MethodNotAllowed(route.methods()));
    }
    let (parts, body) = request.into_parts();
    let address = peer_address(&parts.extensions);
    // Signing in takes its credentials from the body, and the API's description is public:
    // a stale header must block neither.
    // Build hooks prove themselves by their signature, not by credentials.
    let principal = match route {
        Route::Login | Route::OpenApi | Route::BuildHook(..) => Principal::anonymous(),
        _ => identify(state, &parts.headers, address).await?,
    };
    let limit = match route {
        Route::BuildHook(..) => berth_core::builds::hooks::MAX_HOOK_BODY,
        _ => wire::MAX_BODY_BYTES,
    };
    let body = to_bytes(body, limit)
        .await
        .map_err(|err| match exceeds_limit(&err) {
            true => ApiError::BodyTooLarge,
            false => ApiError::BadRequest("the request body could not be read".to_owned()),
        })?;
    let call = Call {
        state,
        principal,
        address,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        link: format!("{}{path}", base_url(state, &parts.extensions)),
        headers: parts.headers,
        body,
    };
    route_to_handler(&call, route, &method).await
}

async fn route_to_handler(
    call: &Call<'_>,
    route: Route,
    method: &Method,
) -> ApiResult<Response<Body>> {
    match (route, method.as_str()) {
        (Route::OpenApi, "GET") => openapi::document(),
        (Route::Login, "POST") => users::login(call).await,
        (Route::Users, "GET") => users::list(call).await,
        (Route::Users, "POST") => users::create(call).await,
        (Route::User(name), "GET") => users::show(call, &name).await,
        (Route::User(name), "PATCH") => users::update(call, &name).await,
        (Route::User(name), "DELETE") => users::delete(call, &name).await,
        (Route::TwoFactor(name), "POST") => users::begin_two_factor(call, &name).await,
        (Route::TwoFactor(name), "DELETE") => users::disable_two_factor(call, &name).await,
        (Route::TwoFactorConfirm(name), "POST") => users::confirm_two_factor(call, &name).await,
        (Route::RecoveryCodes(name), "GET") => users::recovery_code_counts(call, &name).await,
        (Route::RecoveryCodes(name), "POST") => users::regenerate_recovery_codes(call, &name).await,
        (Route::AccessTokens, "GET") => tokens::list(call).await,
        (Route::AccessTokens, "POST") => tokens::create(call).await,
        (Route::AccessToken(id), "GET") => tokens::show(call, id).await,
        (Route::AccessToken(id), "PATCH") => tokens::update(call, id).await,
        (Route::AccessToken(id), "DELETE") => tokens::revoke(call, id).await,
        (Route::Orgs, "GET") => orgs::list(call).await,
        (Route::Orgs, "POST") => orgs::create(call).await,
        (Route::Org(org), "GET") => orgs::show(call, &org).await,
        (Route::Org(org), "PATCH") => hub::update_org(call, &org).await,
        (Route::Groups(org), "GET") => orgs::list_groups(call, &org).await,
        (Route::Groups(org), "POST") => orgs::create_group(call, &org).await,
        (Route::Group { org, team }, "GET") => orgs::show_group(call, &org, &team).await,
        (Route::Group { org, team }, "DELETE") => orgs::delete_group(call, &org, &team).await,
        (Route::Members { org, team }, "GET") => orgs::members(call, &org, &team).await,
        (Route::Members { org, team }, "POST") => orgs::add_member(call, &org, &team).await,
        (Route::Member { org, team, user }, "DELETE") => {
            orgs::remove_member(call, &org, &team, &user).await
        }
        (Route::OrgTokens(org), "GET") => tokens::list_org(call, &org).await,
        (Route::OrgTokens(org), "POST") => tokens::create_org(call, &org).await,
        (Route::OrgToken { org, id }, "GET") => tokens::show_org(call, &org, id).await,
        (Route::OrgToken { org, id }, "DELETE") => tokens::revoke_org(call, &org, id).await,
        (Route::Namespace(namespace), "GET") => repositories::namespace(call, &namespace).await,
        (Route::Namespace(namespace), "PATCH") => {
            repositories::update_namespace(call, &namespace).await
        }
        (Route::NamespaceRepositories(namespace), "GET") => {
            repositories::in_namespace(call, &namespace).await
        }
        (Route::NamespaceUsage(namespace), "GET") => usage::namespace(call, &namespace).await,
        (Route::NamespaceQuota(namespace), "PUT") => usage::set_quota(call, &namespace).await,
        (Route::RepositoryUsage(repo), "GET") => usage::repository(call, &repo).await,
        (Route::RecomputeUsage, "POST") => usage::recompute(call).await,
        (Route::Repositories, "POST") => repositories::create(call).await,
        (Route::Repository(repo), "GET") => repositories::show(call, &repo).await,
        (Route::Repository(repo), "PATCH") => repositories::update(call, &repo).await,
        (Route::Repository(repo), "DELETE") => repositories::delete(call, &repo).await,
        (Route::RepositoryGroups(repo), "GET") => repositories::groups(call, &repo).await,
        (Route::RepositoryGroups(repo), "POST") => repositories::grant_group(call, &repo).await,
        (Route::RepositoryGroup(repo, team), "DELETE") => {
            repositories::revoke_group(call, &repo, &team).await
        }
        (Route::Collaborators(repo), "GET") => repositories::collaborators(call, &repo).await,
        (Route::Collaborators(repo), "POST") => repositories::add_collaborator(call, &repo).await,
        (Route::Collaborator(repo, user), "DELETE") => {
            repositories::remove_collaborator(call, &repo, &user).await
        }
        (Route::RepositoryStar(repo), "PUT") => hub::star(call, &repo).await,
        (Route::RepositoryStar(repo), "DELETE") => hub::unstar(call, &repo).await,
        (Route::RepositoryTags(repo), "GET") => hub::tags(call, &repo).await,
        (Route::Search, "GET") => search::search(call).await,
        (Route::AuditLogs, "GET") => audit::list(call).await,
        (Route::RepositoryWebhooks(repo), "GET") => {
            webhooks::list(call, WebhookTarget::Repository(repo)).await
        }
        (Route::RepositoryWebhooks(repo), "POST") => {
            webhooks::create(call, WebhookTarget::Repository(repo)).await
        }
        (Route::NamespaceWebhooks(namespace), "GET") => {
            webhooks::list(call, WebhookTarget::Namespace(namespace)).await
        }
        (Route::NamespaceWebhooks(namespace), "POST") => {
            webhooks::create(call, WebhookTarget::Namespace(namespace)).await
        }
        (Route::SiteWebhooks, "GET") => webhooks::list(call, WebhookTarget::Site).await,
        (Route::SiteWebhooks, "POST") => webhooks::create(call, WebhookTarget::Site).await,
        (Route::Webhook(id), "GET") => webhooks::show(call, &id).await,
        (Route::Webhook(id), "PATCH") => webhooks::update(call, &id).await,
        (Route::Webhook(id), "DELETE") => webhooks::delete(call, &id).await,
        (Route::WebhookPing(id), "POST") => webhooks::ping(call, &id).await,
        (Route::WebhookDeliveries(id), "GET") => webhooks::deliveries(call, &id).await,
        (Route::WebhookRedeliver(id, delivery), "POST") => {
            webhooks::redeliver(call, &id, &delivery).await
        }
        (Route::Events, "GET") => webhooks::events(call).await,
        (Route::RepositoryImmutable(repo), m) => {
            lifecycle_call(call, Target::Repository(repo), m, Lifecycle::Immutable).await
        }
        (Route::NamespaceImmutable(ns), m) => {
            let target = lifecycle::namespace_target(&ns)?;
            lifecycle_call(call, target, m, Lifecycle::Immutable).await
        }
        (Route::RepositoryRetention(repo), m) => {
            lifecycle_call(call, Target::Repository(repo), m, Lifecycle::Retention).await
        }
        (Route::NamespaceRetention(ns), m) => {
            let target = lifecycle::namespace_target(&ns)?;
            lifecycle_call(call, target, m, Lifecycle::Retention).await
        }
        (Route::RepositoryRetentionRun(repo), "POST") => {
            lifecycle::run_retention(call, Target::Repository(repo)).await
        }
        (Route::NamespaceRetentionRun(ns), "POST") => {
            lifecycle::run_retention(call, lifecycle::namespace_target(&ns)?).await
        }
        (Route::RepositoryRetentionRuns(repo), "GET") => {
            lifecycle::retention_runs(call, Target::Repository(repo)).await
        }
        (Route::NamespaceRetentionRuns(ns), "GET") => {
            lifecycle::retention_runs(call, lifecycle::namespace_target(&ns)?).await
        }
        (Route::RepositoryTag(repo, tag), "DELETE") => {
            lifecycle::delete_tag(call, &repo, &tag).await
        }
        (Route::RateLimits, "GET") => ratelimits::show(call).await,
        (Route::RatePlan(account), "PUT") => ratelimits::set_plan(call, &account).await,
        (Route::RatePlan(account), "DELETE") => ratelimits::clear_plan(call, &account).await,
        (Route::Replications, "GET") => replications::list(call).await,
        (Route::Replications, "POST") => replications::create(call).await,
        (Route::Replication(name), "GET") => replications::show(call, &name).await,
        (Route::Replication(name), "PATCH") => replications::update(call, &name).await,
        (Route::Replication(name), "DELETE") => replications::delete(call, &name).await,
        (Route::ReplicationRun(name), "POST") => replications::run(call, &name).await,
        (Route::ReplicationHistory(name), "GET") => replications::history(call, &name).await,
        (Route::RepositoryTrustedKeys(repo), "GET") => {
            signatures::list_keys(call, Target::Repository(repo)).await
        }
        (Route::RepositoryTrustedKeys(repo), "POST") => {
            signatures::add_key(call, Target::Repository(repo)).await
        }
        (Route::NamespaceTrustedKeys(ns), "GET") => {
            signatures::list_keys(call, lifecycle::namespace_target(&ns)?).await
        }
        (Route::NamespaceTrustedKeys(ns), "POST") => {
            signatures::add_key(call, lifecycle::namespace_target(&ns)?).await
        }
        (Route::RepositoryTrustedKey(repo, key), "DELETE") => {
            signatures::remove_key(call, Target::Repository(repo), &key).await
        }
        (Route::NamespaceTrustedKey(ns, key), "DELETE") => {
            signatures::remove_key(call, lifecycle::namespace_target(&ns)?, &key).await
        }
        (Route::RepositoryPullPolicy(repo), m) => {
            signatures::pull_policy(call, Target::Repository(repo), m).await
        }
        (Route::NamespacePullPolicy(ns), m) => {
            signatures::pull_policy(call, lifecycle::namespace_target(&ns)?, m).await
        }
        (Route::TagVulnerabilities(repo, tag), "GET") => {
            hub::tag_vulnerabilities(call, &repo, &tag).await
        }
        (Route::BuildSource(repo), "GET") => builds::show_source(call, &repo).await,
        (Route::BuildSource(repo), "PUT") => builds::set_source(call, &repo).await,
        (Route::BuildSource(repo), "DELETE") => builds::delete_source(call, &repo).await,
        (Route::BuildRules(repo), "GET") => builds::rules(call, &repo).await,
        (Route::BuildRules(repo), "POST") => builds::add_rule(call, &repo).await,
        (Route::BuildRule(repo, id), "DELETE") => builds::delete_rule(call, &repo, &id).await,
        (Route::RepositoryBuilds(repo), "GET") => builds::list(call, &repo).await,
        (Route::RepositoryBuilds(repo), "POST") => builds::trigger(call, &repo).await,
        (Route::BuildBadge(repo), "GET") => builds::badge(call, &repo).await,
        (Route::Build(id), "GET") => builds::show(call, &id).await,
        (Route::BuildLog(id), "GET") => builds::log(call, &id).await,
        (Route::BuildCancel(id), "POST") => builds::cancel(call, &id).await,
        (Route::BuildHook(repo, provider), "POST") => builds::hook(call, &repo, &provider).await,
        // `Route::methods` already refused these; kept in step with it by its tests.
        (route, _) => Err(ApiError::MethodNotAllowed(route.methods())),
    }
}

/// Which lifecycle setting a `GET`/`PUT`/`DELETE` is about.
enum Lifecycle {
    Immutable,
    Retention,
}

async fn lifecycle_call(
    call: &Call<'_>,
    target: Target,
    method: &str,
    setting: Lifecycle,
) -> ApiResult<Response<Body>> {
    match (setting, method) {
        (Lifecycle::Immutable, "GET") => lifecycle::show_immutable(call, target).await,
        (Lifecycle::Immutable, "PUT") => lifecycle::set_immutable(call, target).await,
        (Lifecycle::Immutable, _) => lifecycle::clear_immutable(call, target).await,
        (Lifecycle::Retention, "GET") => lifecycle::show_retention(call, target).await,
        (Lifecycle::Retention, "PUT") => lifecycle::set_retention(call, target).await,
        (Lifecycle::Retention, _) => lifecycle::clear_retention(call, target).await,
    }
}

/// Who is calling: Basic credentials (password or access token), an API token, or nobody.
pub(crate) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
    address: Option<IpAddr>,
) -> ApiResult<Principal> {
    Ok(match credentials(headers)? {
        None => Principal::anonymous(),
        Some(Credentials::Basic { name, secret }) => {
            state.auth.basic(&name, &secret, address).await?
        }
        Some(Credentials::Bearer(token)) => state.auth.verify_api_token(token).await?,
    })
}

/// Whether reading a body failed because it was over the limit (rather than cut off).
fn exceeds_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}
