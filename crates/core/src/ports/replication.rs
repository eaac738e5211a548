//! The replication port: rules that copy repositories to (or from) other registries, and
//! the history of their runs.
//!
//! Contract for every backend:
//! - `create_replication` is one insert: a rule is there entirely or not at all; a second
//!   rule of the same name is refused with `Conflict` and changes nothing.
//! - The remote's password is stored as the sealed bytes the caller gives; the store never
//!   sees it in the clear.
//! - `start_replication_run` is one statement; `finish_replication_run` updates the run and
//!   records its event in one transaction; finishing a run twice keeps the last result.
//! - `hand_on_replications` moves the named event cursor from `from` to `to` and enqueues
//!   the jobs in one transaction; false (nothing stored) when the cursor was not at `from`.
//! - Deleting a rule deletes its history with it.

use super::jobs::NewJob;
use super::meta::MetaError;
use crate::events::NewEvent;

type Result<T> = std::result::Result<T, MetaError>;

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRecord {
    pub name: String,
    /// `push` (from Berth to the remote) or `pull` (from the remote into Berth).
    pub direction: String,
    /// `NAMESPACE/REPO_GLOB`.
    pub source: String,
    /// Tag globs; none means every tag.
    pub tags: Vec<String>,
    /// The remote registry's root URL.
    pub remote_url: String,
    /// Where copies go: a namespace that replaces the source's, or none to keep it.
    pub target_namespace: Option<String>,
    /// Keep only the last path component of the repository name under the target namespace.
    pub flatten: bool,
    pub username: Option<String>,
    /// The password or token, sealed with the site's secrets key.
    pub password_sealed: Option<Vec<u8>>,
    pub tls_verify: bool,
    /// `push`, `manual`, or a cron schedule.
    pub trigger: String,
    pub deletes: bool,
    pub enabled: bool,
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Events at or before this id are not the rule's business (it did not exist yet).
    pub after_event: i64,
    /// Most bytes per second a run copies (blob bytes); None: no limit.
    pub bandwidth_limit: Option<u64>,
}

/// One run of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationRunRecord {
    pub id: i64,
    pub rule: String,
    /// `manual`, `push`, `schedule` or `delete`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed` (some items failed; the job retries) or `partial`.
    pub status: String,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    /// The items, as a JSON array of `{"item", "outcome", "reason"}`.
    pub items_json: String,
}

#[async_trait::async_trait]
pub trait ReplicationStore: Send + Sync {
    /// See the module contract.
    async fn create_replication(&self, rule: &ReplicationRecord) -> Result<()>;
    /// Every rule, by name.
    async fn replications(&self) -> Result<Vec<ReplicationRecord>>;
    async fn replication(&self, name: &str) -> Result<Option<ReplicationRecord>>;
    /// Removes the rule and its history; false if there was none.
    async fn delete_replication(&self, name: &str) -> Result<bool>;
    /// false if there is no such rule.
    async fn set_replication_enabled(&self, name: &str, enabled: bool) -> Result<bool>;
    /// Records a run under way; its id.
    async fn start_replication_run(&self, rule: &str, trigger: &str, at: i64) -> Result<i64>;
    /// Records how the run ended (`run.id` names it; `rule`, `trigger` and `started_at` are
    /// left as they were), with its `replication.completed` event, in one transaction.
    async fn finish_replication_run(
        &self,
        run: &ReplicationRunRecord,
        event: &NewEvent,
    ) -> Result<()>;
    /// The rule's runs, newest first.
    async fn replication_runs(&self, rule: &str, limit: u32) -> Result<Vec<ReplicationRunRecord>>;
    /// Where the named consumer stands in the event log.
    async fn replication_cursor(&self, name: &str) -> Result<i64>;
    /// See the module contract.
    async fn hand_on_replications(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        jobs: &[NewJob],
    ) -> Result<bool>;
}
