//! The lifecycle service: managing immutable tag rules and retention policies (Admin on the
//! target, as for webhooks), dry and real retention runs with their history, audit entry and
//! `retention.completed` event, and the jobs that run scheduled policies.

use super::immutable::{ImmutableRequest, ImmutableRule};
use super::retention::{plan, RetentionPlan, RetentionPolicy, RetentionRequest};
use super::{Schedule, Target};
use crate::access::Authorizer;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{data_of, EventKind, NewEvent, RetentionCompletedData};
use crate::identity::Acting;
use crate::jobs::{JobError, JobHandler, JobOutcome, Wake};
use crate::ports::{
    ClaimedJob, MetaError, MetaStore, NewJob, RetentionApply, RetentionRunRecord, StoredPolicy,
};
use berth_oci::RepoName;
use std::sync::Arc;
use std::time::Duration;

/// Looks for scheduled policies that are due, every minute.
pub const RETENTION_SCHEDULE_JOB: &str = "retention.schedule";
/// Runs one policy's target now (payload: `{"scope", "target"}`).
pub const RETENTION_RUN_JOB: &str = "retention.run";
/// The actor scheduled runs are recorded under.
const SCHEDULER_ACTOR: &str = "retention";
/// Who sets the retention policies of mirrors' namespaces: the `[[mirror]]` settings.
pub const MIRROR_SETTINGS_ACTOR: &str = "mirror settings";

/// The retention policy a mirror's `retention_days` stands for: keep what was pulled or
/// cached within the days (a tag resolved by `HEAD` but never pulled yet stays as long as a
/// fresh copy would), drop the rest, daily. A mirror may empty a repository: the next pull
/// fetches it again.
pub fn mirror_retention(days: u32) -> RetentionPolicy {
    RetentionPolicy {
        keep_pulled_days: Some(days),
        keep_pushed_days: Some(days),
        untagged_days: Some(days),
        schedule: Some("daily".to_owned()),
        allow_empty: true,
        ..RetentionPolicy::default()
    }
}

/// Who started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    Manual,
    Schedule,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Manual => "manual",
            RunTrigger::Schedule => "schedule",
        }
    }
}

/// What a run deletes (dry run) or deleted: the shape `berth retention run --json` prints.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunReport {
    /// `ns/repo:tag`.
    pub tags: Vec<String>,
    /// `ns/repo@digest`, in the order they are deleted.
    pub manifests: Vec<String>,
    /// Bytes of blobs and manifests that nothing references afterwards.
    pub bytes: u64,
    pub dry_run: bool,
    /// Planned items a real run left alone because they changed since the plan.
    pub skipped: u32,
    /// The recorded run (real runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
}

/// One repository's plan, with the policy it was made under.
struct RepoPlan {
    repo: RepoName,
    policy: StoredPolicy,
    plan: RetentionPlan,
}

#[derive(Clone)]
pub struct Lifecycle {
    store: Arc<dyn MetaStore>,
    authorizer: Arc<dyn Authorizer>,
    audit: Audit,
    clock: Arc<dyn Clock>,
    wake: Wake,
    /// The prefixes of the configured mirrors: namespaces without an account.
    mirror_namespaces: Arc<[String]>,
}

impl Lifecycle {
    pub fn new(
        store: Arc<dyn MetaStore>,
        authorizer: Arc<dyn Authorizer>,
        clock: Arc<dyn Clock>,
        wake: Wake,
    ) -> Lifecycle {
        Lifecycle {
            audit: Audit::over(store.clone()),
            store,
            authorizer,
            clock,
            wake,
            mirror_namespaces: Arc::from([]),
        }
    }

    /// The namespaces the pull-through cache keeps its copies in (the mirrors' prefixes):
    /// they belong to no account, so site admins manage their rules and those of their
    /// repositories.
    #[must_use]
    pub fn with_mirror_namespaces(mut self, prefixes: Vec<String>) -> Lifecycle {
        self.mirror_namespaces = prefixes.into();
        self
    }

    async fn require_admin(&self, acting: &Acting<'_>, target: &Target) -> Result<()> {
        if self
            .mirror_namespaces
            .iter()
            .any(|ns| ns == target.namespace())
        {
            return acting.require_site_admin();
        }
        crate::webhooks::require_admin_of(
            &*self.store,
            &*self.authorizer,
            acting,
            &target.as_webhook_target(),
        )
        .await
    }

    /// The immutable rules that apply to `repo` (no permission check: the tag list shows
    /// which tags they protect to whoever may read it).
    pub async fn immutable_rules_for(&self, repo: &RepoName) -> Result<Vec<ImmutableRule>> {
        Ok(self.store.immutable_rules_for(repo).await?)
    }

    pub async fn immutable_rule(
        &self,
        acting: &Acting<'_>,
        target: &Target,
    ) -> Result<Option<ImmutableRule>> {
        self.require_admin(acting, target).await?;
        Ok(self.store.immutable_rule(target).await?)
    }

    /// Sets (replaces) the target's immutable rule.
    pub async fn set_immutable(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        request: ImmutableRequest,
    ) -> Result<ImmutableRule> {
        self.require_admin(acting, target).await?;
        let (tags, excludes, exempt_cosign) = request.check().map_err(Error::Invalid)?;
        let rule = ImmutableRule {
            target: target.clone(),
            tags,
            excludes,
            exempt_cosign,
            updated_by: acting.actor_name(),
            updated_at: self.clock.now_unix(),
        };
        self.store.set_immutable_rule(&rule).await?;
        let detail = serde_json::json!({
            "tags": rule.tags, "excludes": rule.excludes, "exempt_cosign": rule.exempt_cosign,
        });
        self.audit
            .record_for_target(acting, "immutable.set", target, detail)
            .await;
        Ok(rule)
    }

    pub async fn clear_immutable(&self, acting: &Acting<'_>, target: &Target) -> Result<bool> {
        self.require_admin(acting, target).await?;
        let cleared = self.store.clear_immutable_rule(target).await?;
        if cleared {
            self.audit
                .record_for_target(acting, "immutable.clear", target, serde_json::json!({}))
                .await;
        }
        Ok(cleared)
    }

    pub async fn retention_policy(
        &self,
        acting: &Acting<'_>,
        target: &Target,
    ) -> Result<Option<StoredPolicy>> {
        self.require_admin(acting, target).await?;
        Ok(self.store.retention_policy(target).await?)
    }

    /// Sets (replaces) the target's retention policy. Refused, with nothing changed, when it
    /// is malformed or would delete every tag of a repository without `allow_empty`.
    pub async fn set_retention(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        request: RetentionRequest,
    ) -> Result<StoredPolicy> {
        self.require_admin(acting, target).await?;
        let policy = request.check().map_err(Error::Invalid)?;
        let now = self.clock.now_unix();
        if !policy.allow_empty {
            // The repositories the policy would govern: the repository, or those of the
            // namespace without a policy of their own.
            let repos = match target {
                Target::Repository(repo) => vec![repo.clone()],
                Target::Namespace(ns) => {
                    let mut governed = Vec::new();
                    for repo in self.store.repositories_of_namespace(ns).await? {
                        let own = Target::Repository(repo.clone());
                        if self.store.retention_policy(&own).await?.is_none() {
                            governed.push(repo);
                        }
                    }
                    governed
                }
            };
            for repo in repos {
                let planned = self.plan_repo(&repo, &policy, now).await?;
                if planned.is_some_and(|p| p.deletes_every_tag) {
                    return Err(Error::Invalid(empty_refusal(&repo)));
                }
            }
        }
        let next_run_at = match &policy.schedule {
            Some(text) => Schedule::parse(text)
                .map_err(Error::Invalid)?
                .next_after(now),
            None => None,
        };
        let stored = self
            .store
            .set_retention_policy(target, &policy, next_run_at, &acting.actor_name(), now)
            .await?;
        let detail =
            serde_json::json!({ "policy": policy.describe(), "revision": stored.revision });
        self.audit
            .record_for_target(acting, "retention.set", target, detail)
            .await;
        Ok(stored)
    }

    pub async fn clear_retention(&self, acting: &Acting<'_>, target: &Target) -> Result<bool> {
        self.require_admin(acting, target).await?;
        let cleared = self.store.clear_retention_policy(target).await?;
        if cleared {
            self.audit
                .record_for_target(acting, "retention.clear", target, serde_json::json!({}))
                .await;
        }
        Ok(cleared)
    }

    /// The target's recorded runs, newest first.
    pub async fn runs(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        limit: u32,
    ) -> Result<Vec<RetentionRunRecord>> {
        self.require_admin(acting, target).await?;
        Ok(self
            .store
            .retention_runs(target, limit.clamp(1, 1000))
            .await?)
    }

    /// Runs retention on the target now: a dry run lists what would go; a real run deletes
    /// exactly that (whatever changed since is left alone and counted as skipped).
    pub async fn run(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        dry_run: bool,
    ) -> Result<RunReport> {
        self.require_admin(acting, target).await?;
        let actor = acting.actor_name();
        let report = self
            .execute(target, dry_run, RunTrigger::Manual, &actor)
            .await?;
        if !dry_run {
            let detail = serde_json::json!({
                "run_id": report.run_id, "tags": report.tags.len(),
                "manifests": report.manifests.len(), "bytes": report.bytes,
            });
            self.audit
                .record_for_target(acting, "retention.run", target, detail)
                .await;
        }
        Ok(report)
    }

    /// The effective policy of a repository: its own, else its namespace's.
    async fn effective_policy(&self, repo: &RepoName) -> Result<Option<StoredPolicy>> {
        let own = Target::Repository(repo.clone());
        if let Some(policy) = self.store.retention_policy(&own).await? {
            return Ok(Some(policy));
        }
        let namespace = Target::Namespace(own.namespace().to_owned());
        Ok(self.store.retention_policy(&namespace).await?)
    }

    async fn plan_repo(
        &self,
        repo: &RepoName,
        policy: &RetentionPolicy,
        now: i64,
    ) -> Result<Option<RetentionPlan>> {
        let Some(snapshot) = self.store.retention_snapshot(repo).await? else {
            return Ok(None);
        };
        let rules = self.store.immutable_rules_for(repo).await?;
        Ok(Some(plan(&snapshot, policy, &rules, now)))
    }

    async fn plans(&self, target: &Target, now: i64) -> Result<Vec<RepoPlan>> {
        let repos = match target {
            Target::Repository(repo) => {
                if !self.store.repository_exists(repo).await? {
                    return Err(Error::NameUnknown(repo.clone()));
                }
                vec![repo.clone()]
            }
            Target::Namespace(ns) => self.store.repositories_of_namespace(ns).await?,
        };
        let mut plans = Vec::new();
        for repo in repos {
            let Some(policy) = self.effective_policy(&repo).await? else {
                continue;
            };
            let Some(plan) = self.plan_repo(&repo, &policy.policy, now).await? else {
                continue;
            };
            if plan.deletes_every_tag && !policy.policy.allow_empty {
                return Err(Error::Invalid(empty_refusal(&repo)));
            }
            plans.push(RepoPlan { repo, policy, plan });
        }
        if plans.is_empty() {
            if let Target::Repository(repo) = target {
                return Err(Error::Invalid(format!(
                    "no retention policy applies to {repo}: set one on it or on its namespace"
                )));
            }
        }
        Ok(plans)
    }

    async fn execute(
        &self,
        target: &Target,
        dry_run: bool,
        trigger: RunTrigger,
        actor: &str,
    ) -> Result<RunReport> {
        let started_at = self.clock.now_unix();
        let plans = match self.plans(target, started_at).await {
            Ok(plans) => plans,
            // A scheduled run nobody watches leaves its refusal in the history.
            Err(Error::Invalid(why)) if !dry_run && trigger == RunTrigger::Schedule => {
                let record = RetentionRunRecord {
                    id: 0,
                    target: target.clone(),
                    trigger: trigger.as_str().to_owned(),
                    actor: Some(actor.to_owned()),
                    started_at,
                    finished_at: started_at,
                    tags: Vec::new(),
                    manifests: Vec::new(),
                    skipped: 0,
                    bytes: 0,
                    error: Some(why.clone()),
                };
                self.store.record_retention_run(&record, None).await?;
                return Err(Error::Invalid(why));
            }
            Err(other) => return Err(other),
        };
        let planned_gone: Vec<(RepoName, Vec<String>)> = plans
            .iter()
            .map(|p| {
                let digests = p.plan.manifests.iter().map(|m| m.digest.clone()).collect();
                (p.repo.clone(), digests)
            })
            .collect();
        if dry_run {
            let bytes = self.store.unreferenced_bytes(&planned_gone).await?;
            let mut report = RunReport {
                bytes,
                dry_run: true,
                ..RunReport::default()
            };
            for p in &plans {
                report
                    .tags
                    .extend(p.plan.tags.iter().map(|t| format!("{}:{}", p.repo, t.name)));
                report.manifests.extend(
                    p.plan
                        .manifests
                        .iter()
                        .map(|m| format!("{}@{}", p.repo, m.digest)),
                );
            }
            return Ok(report);
        }
        // Counted before the deletes, while the plan's manifests are still linked.
        let planned_bytes = self.store.unreferenced_bytes(&planned_gone).await?;
        let mut record = RetentionRunRecord {
            id: 0,
            target: target.clone(),
            trigger: trigger.as_str().to_owned(),
            actor: Some(actor.to_owned()),
            started_at,
            finished_at: started_at,
            tags: Vec::new(),
            manifests: Vec::new(),
            skipped: 0,
            bytes: 0,
            error: None,
        };
        // Recorded before the first delete: a crash mid-run leaves it in the history as
        // interrupted, with what each repository's transaction deleted added to it.
        let run_id = if plans
            .iter()
            .any(|p| !p.plan.tags.is_empty() || !p.plan.manifests.is_empty())
        {
            Some(self.store.start_retention_run(&record).await?)
        } else {
            None
        };
        let mut report = RunReport::default();
        let mut gone = Vec::new();
        for p in &plans {
            if p.plan.tags.is_empty() && p.plan.manifests.is_empty() {
                continue;
            }
            let applied = match self
                .store
                .apply_retention(&RetentionApply {
                    repo: &p.repo,
                    policy_target: &p.policy.target,
                    policy_revision: p.policy.revision,
                    tags: &p.plan.tags,
                    manifests: &p.plan.manifests,
                    actor: Some(actor),
                    now: self.clock.now_unix(),
                    run_id,
                })
                .await
            {
                Ok(applied) => applied,
                Err(err) => {
                    let err = match err {
                        MetaError::Conflict(what) => Error::Invalid(format!(
                            "{what}; the retention run stopped, run it again"
                        )),
                        other => other.into(),
                    };
                    // The record says why the run stopped, and keeps what it had deleted.
                    record.id = run_id.unwrap_or(0);
                    record.finished_at = self.clock.now_unix();
                    record.tags = report.tags;
                    record.manifests = report.manifests;
                    record.skipped = report.skipped;
                    record.error = Some(err.to_string());
                    if let Err(failed) = self.store.record_retention_run(&record, None).await {
                        tracing::warn!(target = %target, error = %failed, "recording a stopped retention run failed");
                    }
                    self.wake.wake();
                    return Err(err);
                }
            };
            report.skipped += applied.skipped;
            report
                .tags
                .extend(applied.tags.iter().map(|t| format!("{}:{t}", p.repo)));
            report
                .manifests
                .extend(applied.manifests.iter().map(|d| format!("{}@{d}", p.repo)));
            gone.push((p.repo.clone(), applied.manifests));
        }
        self.wake.wake();
        report.bytes = if report.skipped == 0 {
            planned_bytes
        } else {
            self.store.unreferenced_bytes(&gone).await?
        };
        record.id = run_id.unwrap_or(0);
        record.finished_at = self.clock.now_unix();
        record.tags = report.tags.clone();
        record.manifests = report.manifests.clone();
        record.skipped = report.skipped;
        record.bytes = report.bytes;
        let data = RetentionCompletedData {
            run_id: 0, // filled in by the store, which knows the id
            scope: target.scope().to_owned(),
            target: target.name().to_owned(),
            trigger: trigger.as_str().to_owned(),
            tags: report.tags.clone(),
            manifests: report.manifests.clone(),
            bytes: report.bytes,
        };
        let event = NewEvent {
            kind: EventKind::RetentionCompleted,
            namespace: target.namespace().to_owned(),
            repository: match target {
                Target::Repository(repo) => Some(repo.to_string()),
                Target::Namespace(_) => None,
            },
            actor: Some(actor.to_owned()),
            data: data_of(&data),
        };
        report.run_id = Some(
            self.store
                .record_retention_run(&record, Some(event))
                .await?,
        );
        self.wake.wake();
        tracing::info!(
            target = %target, trigger = trigger.as_str(), tags = report.tags.len(),
            manifests = report.manifests.len(), bytes = report.bytes, skipped = report.skipped,
            "retention run finished"
        );
        Ok(report)
    }

    /// Queues a run for each scheduled policy that is due, moving its next run on first so
    /// that two nodes never queue the same one twice.
    pub async fn queue_due_runs(&self, queue: &dyn crate::ports::JobQueue) -> Result<usize> {
        let now = self.clock.now_unix();
        let mut queued = 0;
        for due in self.store.due_retention_policies(now).await? {
            let next = due
                .policy
                .schedule
                .as_deref()
                .and_then(|s| Schedule::parse(s).ok())
                .and_then(|s| s.next_after(now));
            if !self
                .store
                .set_retention_next_run(&due.target, due.revision, next)
                .await?
            {
                continue;
            }
            let payload = serde_json::json!({
                "scope": due.target.scope(), "target": due.target.name(),
            });
            let job = NewJob {
                kind: RETENTION_RUN_JOB.to_owned(),
                payload: payload.to_string(),
                due_at_ms: self.clock.now_ms(),
                max_attempts: 3,
                unique_key: Some(format!(
                    "{RETENTION_RUN_JOB}:{}:{}",
                    due.target.scope(),
                    due.target.name()
                )),
            };
            if queue.enqueue_job(&job).await? {
                queued += 1;
            }
        }
        if queued > 0 {
            self.wake.wake();
        }
        Ok(queued)
    }

    /// A scheduled run: recorded with its error when it cannot go ahead.
    async fn scheduled_run(&self, target: &Target) -> Result<RunReport> {
        match self
            .execute(target, false, RunTrigger::Schedule, SCHEDULER_ACTOR)
            .await
        {
            Ok(report) => {
                let detail = serde_json::json!({
                    "run_id": report.run_id, "tags": report.tags.len(),
                    "manifests": report.manifests.len(), "bytes": report.bytes, "scope": target.scope(),
                });
                self.audit
                    .record(
                        SCHEDULER_ACTOR,
                        None,
                        "retention.run",
                        target.name(),
                        detail,
                    )
                    .await;
                Ok(report)
            }
            Err(Error::Invalid(why)) => {
                tracing::warn!(target = %target, error = %why, "scheduled retention run refused");
                Err(Error::Invalid(why))
            }
            Err(other) => Err(other),
        }
    }
}

impl Lifecycle {
    /// Makes the retention policy of a mirror's namespace what its settings say, at start:
    /// `Some(days)` stores [`mirror_retention`] (unless it is stored already), `None` removes
    /// a policy the settings had set (one an admin set by hand stays). Audited as the
    /// settings; the scheduled runs then go through the ordinary retention path.
    pub async fn govern_mirror(&self, namespace: &str, days: Option<u32>) -> Result<()> {
        let target = Target::Namespace(namespace.to_owned());
        let stored = self.store.retention_policy(&target).await?;
        let Some(days) = days else {
            if stored.is_some_and(|s| s.updated_by == MIRROR_SETTINGS_ACTOR)
                && self.store.clear_retention_policy(&target).await?
            {
                self.audit
                    .record(
                        MIRROR_SETTINGS_ACTOR,
                        None,
                        "retention.clear",
                        target.name(),
                        serde_json::json!({ "scope": target.scope() }),
                    )
                    .await;
            }
            return Ok(());
        };
        let policy = mirror_retention(days);
        if stored.as_ref().is_some_and(|s| s.policy == policy) {
            return Ok(());
        }
        let now = self.clock.now_unix();
        let next_run_at = policy
            .schedule
            .as_deref()
            .and_then(|text| Schedule::parse(text).ok())
            .and_then(|schedule| schedule.next_after(now));
        let stored = self
            .store
            .set_retention_policy(&target, &policy, next_run_at, MIRROR_SETTINGS_ACTOR, now)
            .await?;
        let detail = serde_json::json!({
            "policy": policy.describe(), "revision": stored.revision, "scope": target.scope(),
        });
        self.audit
            .record(
                MIRROR_SETTINGS_ACTOR,
                None,
                "retention.set",
                target.name(),
                detail,
            )
            .await;
        Ok(())
    }
}

fn empty_refusal(repo: &RepoName) -> String {
    format!(
        "the policy would delete every tag of {repo}; set it with allow_empty (--allow-empty) if that is meant"
    )
}

/// Every minute: queues the runs of scheduled policies that are due.
pub struct RetentionScheduler(pub Lifecycle);

#[async_trait::async_trait]
impl JobHandler for RetentionScheduler {
    async fn run(&self, _job: &ClaimedJob) -> std::result::Result<JobOutcome, JobError> {
        self.0
            .queue_due_runs(&*self.0.store)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(JobOutcome::Again(Duration::from_secs(60)))
    }
}

/// Runs one scheduled policy's target.
pub struct RetentionRunJob(pub Lifecycle);

#[async_trait::async_trait]
impl JobHandler for RetentionRunJob {
    async fn run(&self, job: &ClaimedJob) -> std::result::Result<JobOutcome, JobError> {
        let payload: serde_json::Value = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("broken payload: {e}")))?;
        let target = payload
            .get("scope")
            .and_then(|s| s.as_str())
            .zip(payload.get("target").and_then(|t| t.as_str()))
            .and_then(|(scope, name)| Target::from_stored(scope, name))
            .ok_or_else(|| JobError::Permanent("the payload names no target".to_owned()))?;
        match self.0.scheduled_run(&target).await {
            Ok(_) => Ok(JobOutcome::Done),
            // Refused (it would empty a repository, its policy changed): recorded, not retried.
            Err(Error::Invalid(why)) => Err(JobError::Permanent(why)),
            Err(Error::NameUnknown(_)) => Ok(JobOutcome::Done),
            Err(other) => Err(JobError::Retry(other.to_string())),
        }
    }
}
