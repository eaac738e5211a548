//! The jobs port: one durable table of work, claimed with leases.
//!
//! Contract for every backend:
//! - `claim_jobs` is atomic: a job is handed to one claimant at a time, with a fresh lease
//!   token, and its attempt count grows by one at the claim (so a job that kills its worker
//!   still uses up attempts).
//! - A job whose lease ran out may be claimed again; every later call made with the old
//!   token changes nothing and says so (`false`).
//! - Finished jobs are removed; dead ones stay until pruned.

use super::meta::MetaError;

type Result<T> = std::result::Result<T, MetaError>;

/// Work to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub kind: String,
    /// JSON.
    pub payload: String,
    /// Milliseconds since the epoch.
    pub due_at_ms: i64,
    pub max_attempts: u32,
    /// At most one live job per key: enqueueing a second is a no-op.
    pub unique_key: Option<String>,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    pub max_attempts: u32,
    /// Proves the claim; later calls about the job carry it.
    pub lease: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Dead,
}

/// A job as listed for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub state: JobState,
    pub due_at_ms: i64,
    pub attempts: u32,
    pub max_attempts: u32,
    pub leased_until_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Due again at the given time.
    Scheduled,
    /// Out of attempts: the job is dead.
    Dead,
    /// The lease was lost (another worker has the job): nothing changed.
    LeaseLost,
}

#[async_trait::async_trait]
pub trait JobQueue: Send + Sync {
    /// Adds a job; false if its unique key is held by a live job.
    async fn enqueue_job(&self, job: &NewJob) -> Result<bool>;
    /// Makes the pending job holding `unique_key` due no later than `due_at_ms` (a recurring
    /// job runs at every start, not only when its period is up); false if there is none.
    async fn bring_forward(&self, unique_key: &str, due_at_ms: i64) -> Result<bool>;
    /// Claims up to `limit` pending jobs due at `now_ms` whose lease is free or ran out,
    /// earliest due first, leasing each until `now_ms + lease_ms`.
    async fn claim_jobs(&self, now_ms: i64, lease_ms: i64, limit: u32) -> Result<Vec<ClaimedJob>>;
    /// The job is done: removes it. False if the lease was lost.
    async fn finish_job(&self, id: i64, lease: &str) -> Result<bool>;
    /// The attempt failed: due again at `due_at_ms`, or dead when out of attempts.
    async fn retry_job(
        &self,
        id: i64,
        lease: &str,
        due_at_ms: i64,
        error: &str,
    ) -> Result<RetryOutcome>;
    /// The job can never succeed: dead now.
    async fn bury_job(&self, id: i64, lease: &str, error: &str) -> Result<bool>;
    /// A recurring job ran: due again at `due_at_ms` with its attempts reset.
    async fn reschedule_job(&self, id: i64, lease: &str, due_at_ms: i64) -> Result<bool>;
    /// When the next pending job is due, if any (leased ones count from their lease's end).
    async fn next_job_due_ms(&self) -> Result<Option<i64>>;
    /// Jobs for operators, by id; dead ones only if asked.
    async fn list_jobs(&self, dead_only: bool, limit: u32) -> Result<Vec<JobRecord>>;
    /// Removes dead jobs last touched before `before_ms`.
    async fn prune_dead_jobs(&self, before_ms: i64) -> Result<u64>;
}
