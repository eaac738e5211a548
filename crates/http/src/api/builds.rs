//! Automated builds on the API: a repository's source (`/-/build/source`), rules
//! (`/-/build/rules`), builds (`/-/builds`, `/api/v1/builds/{id}`, its log live as
//! server-sent events, cancel), the status badge, and the git hosts' push hooks
//! (`/api/v1/repositories/{namespace}/{name}/build-hooks/{provider}`).

use super::error::{ApiError, ApiResult};
use super::wire::{created, instant, no_content, ok, query_number};
use super::Call;
use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use berth_core::builds::hooks::{HookRequest, Provider};
use berth_core::builds::{
    badge_svg, BuildRecord, BuildRule, CredentialInput, RuleSpec, MAX_BUILD_PAGE,
};
use berth_oci::RepoName;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    git_url: String,
    /// A token for an `https://` host.
    #[serde(default)]
    token: Option<String>,
    /// Generate a deploy key for an `ssh://` host.
    #[serde(default)]
    deploy_key: bool,
    /// Poll the source this often (seconds, at least 10).
    #[serde(default)]
    poll_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Debug, Serialize)]
struct BuildWire {
    id: i64,
    repository: String,
    status: &'static str,
    rule_id: Option<i64>,
    ref_type: &'static str,
    #[serde(rename = "ref")]
    git_ref: String,
    commit: Option<String>,
    tags: Vec<String>,
    dockerfile: String,
    context: String,
    platforms: Vec<String>,
    trigger: String,
    digest: Option<String>,
    reason: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    duration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
}

impl BuildWire {
    fn of(build: BuildRecord, with_log: bool) -> BuildWire {
        BuildWire {
            id: build.id,
            repository: build.repository,
            status: build.status.as_str(),
            rule_id: build.rule_id,
            ref_type: build.ref_kind.as_str(),
            git_ref: build.ref_name,
            commit: build.commit,
            tags: build.tags,
            dockerfile: build.dockerfile,
            context: build.context,
            platforms: build.platforms,
            trigger: build.trigger,
            digest: build.digest,
            reason: build.reason,
            created_at: instant(build.created_at),
            started_at: build.started_at.map(instant),
            finished_at: build.finished_at.map(instant),
            duration_seconds: build.duration,
            log: with_log.then_some(build.log),
        }
    }
}

pub(super) async fn show_source(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    ok(&call.state.builds.source(&call.principal, repo).await?)
}

pub(super) async fn set_source(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let body: SourceBody = call.json()?;
    let credential = match (body.token, body.deploy_key) {
        (Some(_), true) => {
            return Err(ApiError::BadRequest(
                "give a token or ask for a deploy key, not both".into(),
            ))
        }
        (Some(token), false) => CredentialInput::Token(token),
        (None, true) => CredentialInput::DeployKey,
        (None, false) => CredentialInput::None,
    };
    let view = call
        .state
        .builds
        .set_source(
            &call.acting(),
            repo,
            &body.git_url,
            credential,
            body.poll_seconds.map(Duration::from_secs),
        )
        .await?;
    ok(&view)
}

pub(super) async fn delete_source(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    if call
        .state
        .builds
        .delete_source(&call.acting(), repo)
        .await?
    {
        no_content()
    } else {
        Err(ApiError::Missing(format!("{repo} has no build source")))
    }
}

pub(super) async fn rules(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let rules: Vec<BuildRule> = call.state.builds.rules(&call.principal, repo).await?;
    ok(&serde_json::json!({ "rules": rules }))
}

pub(super) async fn add_rule(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let spec: RuleSpec = call.json()?;
    created(
        &call
            .state
            .builds
            .add_rule(&call.acting(), repo, spec)
            .await?,
    )
}

pub(super) async fn delete_rule(
    call: &Call<'_>,
    repo: &RepoName,
    id: &str,
) -> ApiResult<Response<Body>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::Missing(format!("build rule {id:?} is not known")))?;
    if call
        .state
        .builds
        .delete_rule(&call.acting(), repo, id)
        .await?
    {
        no_content()
    } else {
        Err(ApiError::Missing(format!("build rule {id} is not known")))
    }
}

pub(super) async fn list(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let before = query_number::<i64>(&call.query, "before")?;
    let limit = query_number::<u32>(&call.query, "limit")?.unwrap_or(25);
    if limit == 0 || limit > MAX_BUILD_PAGE {
        return Err(ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_BUILD_PAGE}"
        )));
    }
    let builds = call
        .state
        .builds
        .list(&call.principal, repo, before, limit)
        .await?;
    let builds: Vec<BuildWire> = builds
        .into_iter()
        .map(|b| BuildWire::of(b, false))
        .collect();
    ok(&serde_json::json!({ "builds": builds }))
}

pub(super) async fn trigger(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let body: TriggerBody = call.optional_json()?;
    let builds = call
        .state
        .builds
        .trigger(&call.acting(), repo, body.git_ref.as_deref())
        .await?;
    let builds: Vec<BuildWire> = builds
        .into_iter()
        .map(|b| BuildWire::of(b, false))
        .collect();
    created(&serde_json::json!({ "builds": builds }))
}

fn build_id(text: &str) -> ApiResult<i64> {
    text.parse()
        .map_err(|_| ApiError::Missing(format!("build {text:?} is not known")))
}

pub(super) async fn show(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let build = call
        .state
        .builds
        .get(&call.principal, build_id(id)?)
        .await?;
    ok(&BuildWire::of(build, true))
}

pub(super) async fn cancel(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let build = call
        .state
        .builds
        .cancel(&call.acting(), build_id(id)?)
        .await?;
    ok(&BuildWire::of(build, false))
}

/// The log: plain text as it stands, or with `Accept: text/event-stream` a live stream of
/// `log` events (new text) until an `end` event carrying the final status.
pub(super) async fn log(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let id = build_id(id)?;
    let build = call.state.builds.get(&call.principal, id).await?;
    let wants_stream = call
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let mut response = Response::new(Body::from(build.log));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(log_stream(
        call.state.builds.clone(),
        call.principal.clone(),
        id,
    ))
}

/// A build's log as server-sent events: `log` events with the text as it grows, then one
/// `end` event naming the final status. The UI's build page reads it too.
pub(crate) fn log_stream(
    builds: berth_core::builds::Builds,
    principal: berth_core::access::Principal,
    id: i64,
) -> Response<Body> {
    let stream = futures_util::stream::unfold((0usize, false), move |(sent, ended)| {
        let builds = builds.clone();
        let principal = principal.clone();
        async move {
            if ended {
                return None;
            }
            loop {
                let build = match builds.get(&principal, id).await {
                    Ok(build) => build,
                    Err(_) => return None,
                };
                let finished = build.status.is_final();
                let fresh = build.log.get(sent..).unwrap_or("");
                if !fresh.is_empty() || finished {
                    let mut chunk = String::new();
                    if !fresh.is_empty() {
                        chunk.push_str("event: log\n");
                        for line in fresh.split('\n') {
                            chunk.push_str("data: ");
                            chunk.push_str(line);
                            chunk.push('\n');
                        }
                        chunk.push('\n');
                    }
                    if finished {
                        chunk.push_str(&format!("event: end\ndata: {}\n\n", build.status.as_str()));
                    }
                    let next = (build.log.len(), finished);
                    return Some((Ok::<_, std::convert::Infallible>(chunk), next));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    // Proxies must pass each event on as it comes.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The badge: SVG, for whoever may read the repository (everyone, when it is public).
pub(super) async fn badge(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let status = call
        .state
        .builds
        .badge_status(&call.principal, repo)
        .await?;
    let mut response = Response::new(Body::from(badge_svg(status)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    Ok(response)
}

/// A git host's push hook: 202 with the builds queued; 401 when the signature or token is
/// wrong or missing, and nothing is built.
pub(super) async fn hook(
    call: &Call<'_>,
    repo: &RepoName,
    provider: &str,
) -> ApiResult<Response<Body>> {
    let provider = Provider::parse(provider).ok_or_else(|| {
        ApiError::Missing(format!(
            "unknown build hook {provider:?}: use github, gitlab, gitea or generic"
        ))
    })?;
    let header_text = |name: &str| call.headers.get(name).and_then(|v| v.to_str().ok());
    let token_query = super::wire::query_text(&call.query, "token");
    let credential = match provider {
        Provider::GitHub => header_text("x-hub-signature-256"),
        Provider::GitLab => header_text("x-gitlab-token"),
        Provider::Gitea => header_text("x-gitea-signature").or(header_text("x-forgejo-signature")),
        Provider::Generic => header_text("x-berth-build-token").or(token_query.as_deref()),
    };
    let event = match provider {
        Provider::GitHub => header_text("x-github-event"),
        Provider::GitLab => header_text("x-gitlab-event"),
        Provider::Gitea => header_text("x-gitea-event").or(header_text("x-forgejo-event")),
        Provider::Generic => None,
    };
    let request = HookRequest {
        credential,
        event,
        body: &call.body,
    };
    let builds = call
        .state
        .builds
        .receive_hook(repo, provider, &request)
        .await?;
    let builds: Vec<BuildWire> = builds
        .into_iter()
        .map(|b| BuildWire::of(b, false))
        .collect();
    Ok(super::wire::json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "builds": builds }),
    ))
}
