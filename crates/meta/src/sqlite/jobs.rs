//! The jobs table on SQLite: enqueue, claim with a lease in one statement, settle by lease.

use super::WriteTx;
use super::{backend, count_column, wall_ms, SqliteMeta};
use berth_core::ports::{
    ClaimedJob, JobQueue, JobRecord, JobState, MetaError, NewJob, RetryOutcome,
};
use sqlx::Row;

/// Enqueues in the caller's transaction; false if the unique key is taken.
pub(super) async fn enqueue_in(
    tx: &mut WriteTx,
    job: &NewJob,
    now_ms: i64,
) -> Result<bool, MetaError> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, payload, unique_key, due_at, max_attempts, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(unique_key) DO NOTHING",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(&job.unique_key)
    .bind(job.due_at_ms)
    .bind(i64::from(job.max_attempts))
    .bind(now_ms)
    .bind(now_ms)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(done.rows_affected() == 1)
}

fn new_lease() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[async_trait::async_trait]
impl JobQueue for SqliteMeta {
    async fn enqueue_job(&self, job: &NewJob) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let added = enqueue_in(&mut tx, job, wall_ms()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(added)
    }

    async fn bring_forward(&self, unique_key: &str, due_at_ms: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE jobs SET due_at = min(due_at, ?) WHERE unique_key = ? AND state = 'pending'",
        )
        .bind(due_at_ms)
        .bind(unique_key)
        .execute(&self.write)
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
        // One statement: the writer connection serializes claims, so no job is handed out
        // twice; each claimed row carries this claim's lease token.
        let rows = sqlx::query(
            "UPDATE jobs SET lease_token = ?1 || '-' || id, lease_until = ?2 + ?3, \
             attempts = attempts + 1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM jobs \
                          WHERE state = 'pending' AND due_at <= ?2 \
                          AND (lease_until IS NULL OR lease_until <= ?2) \
                          ORDER BY due_at LIMIT ?4) \
             RETURNING id, kind, payload, attempts, max_attempts, lease_token",
        )
        .bind(&lease)
        .bind(now_ms)
        .bind(lease_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.write)
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
        let done = sqlx::query("DELETE FROM jobs WHERE id = ? AND lease_token = ?")
            .bind(id)
            .bind(lease)
            .execute(&self.write)
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
            "UPDATE jobs SET lease_token = NULL, lease_until = NULL, due_at = ?, last_error = ?, \
             updated_at = ?, state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END \
             WHERE id = ? AND lease_token = ? RETURNING state",
        )
        .bind(due_at_ms)
        .bind(error)
        .bind(wall_ms())
        .bind(id)
        .bind(lease)
        .fetch_optional(&self.write)
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
             last_error = ?, updated_at = ? WHERE id = ? AND lease_token = ?",
        )
        .bind(error)
        .bind(wall_ms())
        .bind(id)
        .bind(lease)
        .execute(&self.write)
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
            "UPDATE jobs SET due_at = ?, attempts = 0, lease_token = NULL, lease_until = NULL, \
             last_error = NULL, updated_at = ? WHERE id = ? AND lease_token = ?",
        )
        .bind(due_at_ms)
        .bind(wall_ms())
        .bind(id)
        .bind(lease)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn next_job_due_ms(&self) -> Result<Option<i64>, MetaError> {
        sqlx::query_scalar(
            "SELECT min(max(due_at, coalesce(lease_until, 0))) FROM jobs WHERE state = 'pending'",
        )
        .fetch_one(&self.read)
        .await
        .map_err(backend)
    }

    async fn list_jobs(&self, dead_only: bool, limit: u32) -> Result<Vec<JobRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE (? = 0 OR state = 'dead') ORDER BY id DESC LIMIT ?",
        )
        .bind(dead_only)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
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
        let done = sqlx::query("DELETE FROM jobs WHERE state = 'dead' AND updated_at < ?")
            .bind(before_ms)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
