//! The automated-builds port: each repository's build source and rules, and its builds
//! with their logs.
//!
//! Contract for every backend:
//! - `put_build_source` replaces the repository's source in one statement; rules stay.
//! - `add_build_rule` counts the repository's rules and inserts in one transaction, so
//!   two adds together cannot pass `max`; it answers None when the repository has `max`.
//! - `queue_build` inserts the build (status `queued`) and its job in one transaction; the
//!   job's payload is `{"build_id":ID}` and its unique key `build:ID`, both filled in by
//!   the store from the new id. A build with its reason already set (`failed` at birth:
//!   a rule that makes no valid tag) is stored finished, with no job.
//! - `start_build` moves `queued` to `running` with a compare-and-set: of two runs of the
//!   same job, one starts it and the other gets false.
//! - `create_build_token` inserts an access token and records it as the build's in one
//!   transaction, so no token of a build exists that its end would not revoke.
//! - `finish_build` moves `running` (or `queued`) to a final status, stores the log, the
//!   digest and the reason, revokes the build's tokens, and records the `build.completed`
//!   event, in one transaction; false when the build was already final (finishing twice
//!   changes nothing).
//! - `cancel_build` moves `queued` to `cancelled` at once (the job, when it runs, finds it
//!   final and does nothing) and marks `running` for cancellation, which the builder polls.
//! - `fail_interrupted_builds` marks those of the given builds still `running` `failed`
//!   with `reason`, each in the same statement that checks it, and revokes each failed
//!   build's tokens and records its `build.completed` event in the same transaction (the
//!   caller has found that no live node runs them: see `Builds::fail_interrupted`; the
//!   node that made the tokens may be gone). A build already final gets no event.

use super::identity::{NewToken, TokenRecord};
use super::jobs::NewJob;
use super::meta::MetaError;
use crate::builds::{BuildRecord, BuildRule, BuildStatus, NewBuild, RuleSpec, StoredSource};
use crate::events::NewEvent;

type Result<T> = std::result::Result<T, MetaError>;

#[async_trait::async_trait]
pub trait BuildStore: Send + Sync {
    async fn put_build_source(&self, source: &StoredSource) -> Result<()>;
    async fn build_source(&self, repository: &str) -> Result<Option<StoredSource>>;
    /// The sources with a poll interval whose last poll is that long ago (or never).
    async fn sources_to_poll(&self, now: i64) -> Result<Vec<StoredSource>>;
    /// Records a poll: when, and where the refs stood (None: the poll failed; the last
    /// known refs stay).
    async fn record_poll(&self, repository: &str, now: i64, refs: Option<&str>) -> Result<()>;
    /// Removes the source and its rules; false when there was none.
    async fn delete_build_source(&self, repository: &str) -> Result<bool>;

    /// See the module contract.
    async fn add_build_rule(
        &self,
        repository: &str,
        rule: &RuleSpec,
        max: usize,
    ) -> Result<Option<BuildRule>>;
    /// The repository's rules in the order they were added.
    async fn build_rules(&self, repository: &str) -> Result<Vec<BuildRule>>;
    async fn delete_build_rule(&self, repository: &str, id: i64) -> Result<bool>;

    /// See the module contract; `job` gives the kind, due time and attempts.
    async fn queue_build(&self, build: &NewBuild, job: &NewJob) -> Result<BuildRecord>;
    async fn build(&self, id: i64) -> Result<Option<BuildRecord>>;
    /// The repository's builds, newest first, at most `limit`, older than `before` (an id).
    async fn builds_of(
        &self,
        repository: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<BuildRecord>>;
    /// The repository's newest finished build (what the badge shows).
    async fn last_finished_build(&self, repository: &str) -> Result<Option<BuildRecord>>;
    /// See the module contract; `commit` is the commit resolved at the start.
    async fn start_build(&self, id: i64, now: i64) -> Result<bool>;
    /// See the module contract: a token the build's programs use, revoked with the build.
    async fn create_build_token(&self, build_id: i64, token: &NewToken) -> Result<TokenRecord>;
    /// Records what the build has learnt while running (the commit checked out).
    async fn note_build_commit(&self, id: i64, commit: &str) -> Result<()>;
    /// Replaces the running build's log (the live view reads it).
    async fn write_build_log(&self, id: i64, log: &str) -> Result<()>;
    /// See the module contract.
    #[allow(clippy::too_many_arguments)]
    async fn finish_build(
        &self,
        id: i64,
        status: BuildStatus,
        digest: Option<&str>,
        reason: Option<&str>,
        log: &str,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool>;
    /// See the module contract; the build's status after the call, None when unknown.
    async fn cancel_build(&self, id: i64, now: i64) -> Result<Option<BuildStatus>>;
    /// Whether a cancellation was asked for (the builder polls this).
    async fn build_cancel_requested(&self, id: i64) -> Result<bool>;
    /// The ids of the builds marked `running`.
    async fn running_builds(&self) -> Result<Vec<i64>>;
    /// See the module contract; `builds` pairs each build's id with the `build.completed`
    /// event recorded when it is failed. The ids it failed.
    async fn fail_interrupted_builds(
        &self,
        builds: &[(i64, NewEvent)],
        reason: &str,
        now: i64,
    ) -> Result<Vec<i64>>;
}
