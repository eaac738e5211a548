//! The lifecycle policies port: immutable tag rules, retention policies and their runs.
//!
//! Contract for every backend:
//! - The store applies the immutable rules of a repository (its own and its namespace's)
//!   itself, inside the transaction of every change that would move or delete a tag
//!   (`put_manifest`, `delete_tag`, `delete_manifest`, `apply_retention`), and refuses such a
//!   change with [`MetaError::TagImmutable`]; no caller can skip the check.
//! - `set_retention_policy` raises the policy's revision; `apply_retention` runs in one
//!   transaction that first checks the effective policy is still the planned revision
//!   (otherwise [`MetaError::Conflict`], nothing deleted), then deletes each planned tag and
//!   manifest only if it is unchanged since the plan (same digest and push time; for a
//!   manifest, nothing left in the repository pointing at it), skipping the others.
//! - `start_retention_run` records a real run before it deletes anything, as interrupted;
//!   `apply_retention` adds what it deleted to that record in its own transaction, and
//!   `record_retention_run` finishes it (or stores a new one) with its event in one
//!   transaction. A run cut short by a crash stays recorded as interrupted, listing exactly
//!   what it deleted.

use super::meta::MetaError;
use crate::events::NewEvent;
use crate::lifecycle::retention::{ManifestFacts, RepoSnapshot, TagFacts};
use crate::lifecycle::{ImmutableRule, RetentionPolicy, Target};
use berth_oci::RepoName;

type Result<T> = std::result::Result<T, MetaError>;

/// A stored retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub target: Target,
    pub policy: RetentionPolicy,
    pub revision: i64,
    pub next_run_at: Option<i64>,
    pub updated_by: String,
    pub updated_at: i64,
}

/// A plan for one repository, as the store applies it.
#[derive(Debug, Clone)]
pub struct RetentionApply<'a> {
    pub repo: &'a RepoName,
    /// The policy the plan was made under: where it is set and its revision.
    pub policy_target: &'a Target,
    pub policy_revision: i64,
    pub tags: &'a [TagFacts],
    /// In deletion order: whatever refers to a manifest comes before it.
    pub manifests: &'a [ManifestFacts],
    pub actor: Option<&'a str>,
    pub now: i64,
    /// The run's record (`start_retention_run`), to which the deletions are added.
    pub run_id: Option<i64>,
}

/// What a run deleted in one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionApplied {
    pub tags: Vec<String>,
    pub manifests: Vec<String>,
    /// Planned items left alone because they changed since the plan.
    pub skipped: u32,
}

/// What the history says of a run that never finished: the process stopped during it.
pub const INTERRUPTED_RUN: &str =
    "interrupted: the process stopped before the run finished; what it deleted is listed";

/// A retention run, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRunRecord {
    pub id: i64,
    pub target: Target,
    /// `manual` or `schedule`.
    pub trigger: String,
    pub actor: Option<String>,
    pub started_at: i64,
    pub finished_at: i64,
    /// `ns/repo:tag`.
    pub tags: Vec<String>,
    /// `ns/repo@digest`.
    pub manifests: Vec<String>,
    pub skipped: u32,
    pub bytes: u64,
    pub error: Option<String>,
}

#[async_trait::async_trait]
pub trait LifecycleStore: Send + Sync {
    /// The rules that apply to `repo`: its own, then its namespace's.
    async fn immutable_rules_for(&self, repo: &RepoName) -> Result<Vec<ImmutableRule>>;
    async fn immutable_rule(&self, target: &Target) -> Result<Option<ImmutableRule>>;
    async fn set_immutable_rule(&self, rule: &ImmutableRule) -> Result<()>;
    async fn clear_immutable_rule(&self, target: &Target) -> Result<bool>;

    async fn retention_policy(&self, target: &Target) -> Result<Option<StoredPolicy>>;
    /// Stores the policy with the next revision, and returns it as stored.
    async fn set_retention_policy(
        &self,
        target: &Target,
        policy: &RetentionPolicy,
        next_run_at: Option<i64>,
        by: &str,
        now: i64,
    ) -> Result<StoredPolicy>;
    async fn clear_retention_policy(&self, target: &Target) -> Result<bool>;
    /// Scheduled policies due at `now`.
    async fn due_retention_policies(&self, now: i64) -> Result<Vec<StoredPolicy>>;
    /// Moves a scheduled policy's next run, unless it changed (another revision) meanwhile.
    async fn set_retention_next_run(
        &self,
        target: &Target,
        revision: i64,
        next_run_at: Option<i64>,
    ) -> Result<bool>;
    /// The repositories of a namespace, by name.
    async fn repositories_of_namespace(&self, namespace: &str) -> Result<Vec<RepoName>>;

    /// The tags and manifests of `repo`, as retention plans over them; None if unknown.
    async fn retention_snapshot(&self, repo: &RepoName) -> Result<Option<RepoSnapshot>>;
    /// Bytes of the blobs (and manifest bodies) that no manifest would reference any more
    /// once each repository's listed manifests are gone: what garbage collection reclaims.
    async fn unreferenced_bytes(&self, gone: &[(RepoName, Vec<String>)]) -> Result<u64>;
    /// Applies a plan in one transaction (see the module's contract); records `tag.deleted`
    /// and `manifest.deleted` events as the registry's deletes do.
    async fn apply_retention(&self, apply: &RetentionApply<'_>) -> Result<RetentionApplied>;
    /// Records a run that is starting (with no deletions, as interrupted until finished);
    /// returns its id.
    async fn start_retention_run(&self, run: &RetentionRunRecord) -> Result<i64>;
    /// Records a finished run and its event: completes the started record `run.id`, or
    /// (id 0) stores a new one; returns the run's id.
    async fn record_retention_run(
        &self,
        run: &RetentionRunRecord,
        event: Option<NewEvent>,
    ) -> Result<i64>;
    /// Runs recorded for `target`, newest first.
    async fn retention_runs(&self, target: &Target, limit: u32) -> Result<Vec<RetentionRunRecord>>;
}
