//! Content lifecycle on the API: immutable tag rules and retention policies of a repository
//! (`/api/v1/repositories/NAME/-/immutable|retention`) or a namespace
//! (`/api/v1/namespaces/NS/immutable|retention`), retention runs (dry or real) with their
//! history, and deleting one tag through the registry's guarded delete.

use super::error::{ApiError, ApiResult};
use super::wire::{instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::lifecycle::{ImmutableRequest, ImmutableRule, RetentionRequest, Target};
use berth_core::ports::{Permission, RetentionRunRecord, StoredPolicy};
use berth_core::registry::ChangedBy;
use berth_core::Error;
use berth_oci::{Reference, RepoName, Tag};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
struct ImmutableWire {
    scope: &'static str,
    target: String,
    /// Globs of the immutable tags; empty: every tag.
    tags: Vec<String>,
    excludes: Vec<String>,
    exempt_cosign: bool,
    updated_by: String,
    updated_at: String,
}

impl From<ImmutableRule> for ImmutableWire {
    fn from(rule: ImmutableRule) -> ImmutableWire {
        ImmutableWire {
            scope: rule.target.scope(),
            target: rule.target.name().to_owned(),
            tags: rule.tags,
            excludes: rule.excludes,
            exempt_cosign: rule.exempt_cosign,
            updated_by: rule.updated_by,
            updated_at: instant(rule.updated_at),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImmutableBody {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    exempt_cosign: Option<bool>,
}

#[derive(Debug, Serialize)]
struct PolicyWire {
    scope: &'static str,
    target: String,
    keep_last_pushed: Option<u32>,
    keep_last_pulled: Option<u32>,
    keep_pushed_days: Option<u32>,
    keep_pulled_days: Option<u32>,
    tags: Vec<String>,
    untagged_days: Option<u32>,
    schedule: Option<String>,
    allow_empty: bool,
    revision: i64,
    next_run: Option<String>,
    description: String,
    updated_by: String,
    updated_at: String,
}

impl From<StoredPolicy> for PolicyWire {
    fn from(stored: StoredPolicy) -> PolicyWire {
        let p = stored.policy;
        PolicyWire {
            scope: stored.target.scope(),
            target: stored.target.name().to_owned(),
            description: p.describe(),
            keep_last_pushed: p.keep_last_pushed,
            keep_last_pulled: p.keep_last_pulled,
            keep_pushed_days: p.keep_pushed_days,
            keep_pulled_days: p.keep_pulled_days,
            tags: p.tags,
            untagged_days: p.untagged_days,
            schedule: p.schedule,
            allow_empty: p.allow_empty,
            revision: stored.revision,
            next_run: stored.next_run_at.map(instant),
            updated_by: stored.updated_by,
            updated_at: instant(stored.updated_at),
        }
    }
}

/// Counts arrive signed, so that a negative one is refused by name rather than as bad JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    keep_last_pushed: Option<i64>,
    keep_last_pulled: Option<i64>,
    keep_pushed_days: Option<i64>,
    keep_pulled_days: Option<i64>,
    #[serde(default)]
    tags: Vec<String>,
    untagged_days: Option<i64>,
    schedule: Option<String>,
    #[serde(default)]
    allow_empty: bool,
}

/// `dry_run` has no default: deleting must be asked for in so many words.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    dry_run: bool,
}

#[derive(Debug, Serialize)]
struct RunWire {
    id: i64,
    trigger: String,
    actor: Option<String>,
    started: String,
    finished: String,
    tags: Vec<String>,
    manifests: Vec<String>,
    skipped: u32,
    bytes: u64,
    error: Option<String>,
}

impl From<RetentionRunRecord> for RunWire {
    fn from(run: RetentionRunRecord) -> RunWire {
        RunWire {
            id: run.id,
            trigger: run.trigger,
            actor: run.actor,
            started: instant(run.started_at),
            finished: instant(run.finished_at),
            tags: run.tags,
            manifests: run.manifests,
            skipped: run.skipped,
            bytes: run.bytes,
            error: run.error,
        }
    }
}

fn none_set(what: &str, target: &Target) -> ApiError {
    ApiError::Missing(format!("{target} has no {what}"))
}

pub(super) async fn show_immutable(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let rule = call
        .state
        .lifecycle
        .immutable_rule(&call.acting(), &target)
        .await?
        .ok_or_else(|| none_set("immutable-tag rule", &target))?;
    ok(&ImmutableWire::from(rule))
}

pub(super) async fn set_immutable(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let body: ImmutableBody = call.optional_json()?;
    let request = ImmutableRequest {
        tags: body.tags,
        excludes: body.excludes,
        exempt_cosign: body.exempt_cosign,
    };
    let rule = call
        .state
        .lifecycle
        .set_immutable(&call.acting(), &target, request)
        .await?;
    ok(&ImmutableWire::from(rule))
}

pub(super) async fn clear_immutable(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    if !call
        .state
        .lifecycle
        .clear_immutable(&call.acting(), &target)
        .await?
    {
        return Err(none_set("immutable-tag rule", &target));
    }
    no_content()
}

pub(super) async fn show_retention(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let policy = call
        .state
        .lifecycle
        .retention_policy(&call.acting(), &target)
        .await?
        .ok_or_else(|| none_set("retention policy", &target))?;
    ok(&PolicyWire::from(policy))
}

pub(super) async fn set_retention(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let body: PolicyBody = call.json()?;
    let request = RetentionRequest {
        keep_last_pushed: body.keep_last_pushed,
        keep_last_pulled: body.keep_last_pulled,
        keep_pushed_days: body.keep_pushed_days,
        keep_pulled_days: body.keep_pulled_days,
        tags: body.tags,
        untagged_days: body.untagged_days,
        schedule: body.schedule,
        allow_empty: body.allow_empty,
    };
    let stored = call
        .state
        .lifecycle
        .set_retention(&call.acting(), &target, request)
        .await?;
    ok(&PolicyWire::from(stored))
}

pub(super) async fn clear_retention(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    if !call
        .state
        .lifecycle
        .clear_retention(&call.acting(), &target)
        .await?
    {
        return Err(none_set("retention policy", &target));
    }
    no_content()
}

/// `POST …/retention/run` `{"dry_run": true|false}`: the tags and manifests that go (or
/// went) and the bytes garbage collection can then reclaim.
pub(super) async fn run_retention(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let body: RunBody = call.json()?;
    let report = call
        .state
        .lifecycle
        .run(&call.acting(), &target, body.dry_run)
        .await?;
    ok(&report)
}

pub(super) async fn retention_runs(call: &Call<'_>, target: Target) -> ApiResult<Response<Body>> {
    let runs = call
        .state
        .lifecycle
        .runs(&call.acting(), &target, 1000)
        .await?;
    call.page(runs.into_iter().map(RunWire::from).collect())
}

/// `DELETE /repositories/{name}/-/tags/{tag}`: the registry's own delete (Admin on the
/// repository, as `DELETE /v2/…/manifests/TAG` asks), immutable tags refused.
pub(super) async fn delete_tag(
    call: &Call<'_>,
    repo: &RepoName,
    tag: &str,
) -> ApiResult<Response<Body>> {
    let permission = call
        .state
        .auth
        .authorizer()
        .permission(&call.principal, repo)
        .await?;
    match permission {
        Some(Permission::Admin) => {}
        None if call.principal.is_anonymous() => return Err(Error::Unauthorized.into()),
        None => return Err(Error::NameUnknown(repo.clone()).into()),
        Some(_) => return Err(Error::Denied.into()),
    }
    let tag: Tag = tag
        .parse()
        .map_err(|_| Error::TagInvalid(tag.chars().take(140).collect()))?;
    let actor = call.principal.name();
    let address = call.address.map(|a| a.to_string());
    call.state
        .registry
        .delete_manifest(
            repo,
            &Reference::Tag(tag),
            ChangedBy::new(&actor, address.as_deref()),
        )
        .await?;
    no_content()
}

/// A namespace as the path names it.
pub(super) fn namespace_target(name: &str) -> ApiResult<Target> {
    Target::parse(name)
        .ok()
        .filter(|t| matches!(t, Target::Namespace(_)))
        .ok_or_else(|| Error::AccountUnknown(name.chars().take(100).collect()).into())
}
