//! Replication rules for site admins: `GET`/`POST /api/v1/replications`, `GET`/`PATCH`/
//! `DELETE /api/v1/replications/{rule}`, `POST …/{rule}/run` and `GET …/{rule}/history`.

use super::error::{ApiError, ApiResult};
use super::wire::{created, json_response, no_content, ok, query_number};
use super::Call;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use berth_core::replication::ReplicationRequest;
use serde::Deserialize;

/// A rule as the API takes it; the password is stored sealed and never shown again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRule {
    name: String,
    source: String,
    #[serde(default)]
    tags: Vec<String>,
    /// A push rule's destination registry.
    #[serde(default)]
    to: Option<String>,
    /// A pull rule's origin registry.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to_namespace: Option<String>,
    #[serde(default)]
    flatten: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    tls_verify: Option<bool>,
    #[serde(default)]
    trigger: Option<String>,
    #[serde(default)]
    deletes: bool,
    /// `50MiB/s`: most bytes per second a run copies.
    #[serde(default)]
    bandwidth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleChange {
    enabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    /// Run within the request and answer with the summary (otherwise queued: 202).
    #[serde(default)]
    wait: bool,
}

/// `GET /api/v1/replications`.
pub(super) async fn list(call: &Call<'_>) -> ApiResult<Response<Body>> {
    ok(&call.state.replications.list(&call.acting()).await?)
}

/// `POST /api/v1/replications`.
pub(super) async fn create(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let rule: NewRule = call.json()?;
    let view = call
        .state
        .replications
        .create(
            &call.acting(),
            ReplicationRequest {
                name: rule.name,
                source: rule.source,
                tags: rule.tags,
                to: rule.to.unwrap_or_default(),
                from: rule.from,
                to_namespace: rule.to_namespace,
                flatten: rule.flatten,
                username: rule.username,
                password: rule.password,
                tls_verify: rule.tls_verify,
                trigger: rule.trigger,
                deletes: rule.deletes,
                bandwidth: rule.bandwidth,
            },
        )
        .await?;
    created(&view)
}

/// `GET /api/v1/replications/{rule}`.
pub(super) async fn show(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    ok(&call.state.replications.get(&call.acting(), name).await?)
}

/// `PATCH /api/v1/replications/{rule}` with `{"enabled": bool}`.
pub(super) async fn update(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let change: RuleChange = call.json()?;
    let replications = &call.state.replications;
    replications
        .set_enabled(&call.acting(), name, change.enabled)
        .await?;
    ok(&replications.get(&call.acting(), name).await?)
}

/// `DELETE /api/v1/replications/{rule}`.
pub(super) async fn delete(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    call.state.replications.delete(&call.acting(), name).await?;
    no_content()
}

/// `POST /api/v1/replications/{rule}/run`, optionally `{"wait": true}`.
pub(super) async fn run(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let request: RunRequest = call.optional_json()?;
    let replications = &call.state.replications;
    if request.wait {
        return ok(&replications.run_now(&call.acting(), name).await?);
    }
    let queued = replications.enqueue_run(&call.acting(), name).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "queued": queued }),
    ))
}

/// `GET /api/v1/replications/{rule}/history?limit=N`: runs, newest first.
pub(super) async fn history(call: &Call<'_>, name: &str) -> ApiResult<Response<Body>> {
    let limit = query_number::<u32>(&call.query, "limit")?.unwrap_or(20);
    if limit == 0 {
        return Err(ApiError::BadRequest("limit must be at least 1".to_owned()));
    }
    ok(&call
        .state
        .replications
        .history(&call.acting(), name, limit)
        .await?)
}
