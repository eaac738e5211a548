//! The jobs table on PostgreSQL: enqueue, claim with a lease (`FOR UPDATE SKIP LOCKED`, so
//! nodes claiming at once each get different jobs and none waits on another), settle by
//! lease.

use super::{backend, count_column, PostgresMeta};
use berth_core::ports::{
    ClaimedJob, JobQueue, JobRecord, JobState, MetaError, NewJob, RetryOutcome,
};
use sqlx::Row;

fn new_lease() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Enqueues `job` through `executor` (the pool, or the transaction of a change that
/// schedules it); false when a job with its unique key is already queued.
pub(super) async fn enqueue_in(
    executor: impl sqlx::PgExecutor<'_>,
    job: &NewJob,
    now_ms: i64,
) -> Result<bool, MetaError> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, payload, unique_key, due_at, max_attempts, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (unique_key) DO NOTHING",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(&job.unique_key)
    .bind(job.due_at_ms)
    .bind(i64::from(job.max_attempts))
    .bind(now_ms)
    .execute(executor)
    .await
    .map_err(backend)?;
    Ok(done.rows_affected() == 1)
}

/// Milliseconds since the epoch, for the bookkeeping columns.
pub(super) fn wall_ms() -> i64 {
    berth_core::clock::Clock::now_ms(&berth_core::clock::SystemClock)
}

#[async_trait::async_trait]
impl JobQueue for PostgresMeta {
    async fn enqueue_job(&self, job: &NewJob) -> Result<bool, MetaError> {
        enqueue_in(&self.pool, job, wall_ms()).await
    }

    async fn bring_forward(&self, unique_key: &str, due_at_ms: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE jobs SET due_at = least(due_at, $1) WHERE unique_key = $2 AND state = 'pending'",
        )
        .bind(due_at_ms)
        .bind(unique_key)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_jobs(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedJob>, MetaError> {
        let lease = new_lease();
        // Rows another node is claiming this instant are skipped, not waited for; its
        // claim then sets a lease that keeps them from this one until it runs out.
        let rows = sqlx::query(
            "UPDATE jobs SET lease_token = $1 || '-' || id, lease_until = $2 + $3, \
             attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM jobs \
                          WHERE state = 'pending' AND due_at <= $2 \
                          AND (lease_until IS NULL OR lease_until <= $2) \
                          ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, payload, attempts, max_attempts, lease_token",
        )
        .bind(&lease)
        .bind(now_ms)
        .bind(lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| ClaimedJob {
                id: row.get("id"),
                kind: row.get("kind"),
                payload: row.get("payload"),
                attempt: count_column(row, "attempts"),
                max_attempts: count_column(row, "max_attempts"),
                lease: row.get("lease_token"),
            })
            .collect())
    }

    async fn finish_job(&self, id: i64, lease: &str) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_token = $2")
            .bind(id)
            .bind(lease)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry_job(
        &self,
        id: i64,
        lease: &str,
        due_at_ms: i64,
        error: &str,
    ) -> Result<RetryOutcome, MetaError> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET lease_token = NULL, lease_until = NULL, due_at = $1, last_error = $2, \
             updated_at = $3, state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END \
             WHERE id = $4 AND lease_token = $5 RETURNING state",
        )
        .bind(due_at_ms)
        .bind(error)
        .bind(wall_ms())
        .bind(id)
        .bind(lease)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(match state.as_deref() {
            None => RetryOutcome::LeaseLost,
            Some("dead") => RetryOutcome::Dead,
            Some(_) => RetryOutcome::Scheduled,
        })
    }

    async fn bury_job(&self, id: i64, lease: &str, error: &str) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_token = NULL, lease_until = NULL, \
             last_error = $1, updated_at = $2 WHERE id = $3 AND lease_token = $4",
        )
        .bind(error)
        .bind(wall_ms())
        .bind(id)
        .bind(lease)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn reschedule_job(
        &self,
        id: i64,
        lease: &str,
        due_at_ms: i64,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE jobs SET due_at = $1, attempts = 0, lease_token = NULL, lease_until = NULL, \
             last_error = NULL, updated_at = $2 WHERE id = $3 AND lease_token = $4",
        )
        .bind(due_at_ms)
        .bind(wall_ms())
        .bind(id)
        .bind(lease)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_job_due_ms(&self) -> Result<Option<i64>, MetaError> {
        sqlx::query_scalar(
            "SELECT min(greatest(due_at, coalesce(lease_until, 0))) FROM jobs \
             WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn list_jobs(&self, dead_only: bool, limit: u32) -> Result<Vec<JobRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE (NOT $1 OR state = 'dead') ORDER BY id DESC LIMIT $2",
        )
        .bind(dead_only)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| JobRecord {
                id: row.get("id"),
                kind: row.get("kind"),
                payload: row.get("payload"),
                state: if row.get::<String, _>("state") == "dead" {
                    JobState::Dead
                } else {
                    JobState::Pending
                },
                due_at_ms: row.get("due_at"),
                attempts: count_column(row, "attempts"),
                max_attempts: count_column(row, "max_attempts"),
                leased_until_ms: row.get("lease_until"),
                last_error: row.get("last_error"),
            })
            .collect())
    }

    async fn prune_dead_jobs(&self, before_ms: i64) -> Result<u64, MetaError> {
        let done = sqlx::query("DELETE FROM jobs WHERE state = 'dead' AND updated_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
