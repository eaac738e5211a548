//! Replication rules and their runs on PostgreSQL, with the contract of
//! `core/src/ports/replication.rs`; the push feed's hand-on is the shared event-cursor one.

use super::events::{cursor_position, hand_on_jobs, record_event};
use super::{backend, PostgresMeta};
use berth_core::events::NewEvent;
use berth_core::ports::{
    MetaError, NewJob, ReplicationRecord, ReplicationRunRecord, ReplicationStore,
};
use sqlx::postgres::PgRow;
use sqlx::Row;

const RULE_COLUMNS: &str = "name, direction, source, tags_json, remote_url, target_namespace, \
     flatten, username, password_sealed, tls_verify, trigger_spec, deletes, enabled, created_by, \
     created_at, after_event, bandwidth_limit";

fn rule_of(row: &PgRow) -> Result<ReplicationRecord, MetaError> {
    let tags: String = row.get("tags_json");
    Ok(ReplicationRecord {
        name: row.get("name"),
        direction: row.get("direction"),
        source: row.get("source"),
        tags: serde_json::from_str(&tags).map_err(|e| {
            MetaError::Backend(format!(
                "stored replication tag globs are not readable: {e}"
            ))
        })?,
        remote_url: row.get("remote_url"),
        target_namespace: row.get("target_namespace"),
        flatten: row.get("flatten"),
        username: row.get("username"),
        password_sealed: row.get("password_sealed"),
        tls_verify: row.get("tls_verify"),
        trigger: row.get("trigger_spec"),
        deletes: row.get("deletes"),
        enabled: row.get("enabled"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        after_event: row.get("after_event"),
        bandwidth_limit: row
            .get::<Option<i64>, _>("bandwidth_limit")
            .and_then(|n| u64::try_from(n).ok()),
    })
}

fn run_of(row: &PgRow) -> ReplicationRunRecord {
    let count = |column: &str| u64::try_from(row.get::<i64, _>(column)).unwrap_or_default();
    ReplicationRunRecord {
        id: row.get("id"),
        rule: row.get("rule"),
        trigger: row.get("trigger_kind"),
        status: row.get("status"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        copied: count("copied"),
        skipped: count("skipped"),
        failed: count("failed"),
        items_json: row.get("items_json"),
    }
}

fn stored_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl ReplicationStore for PostgresMeta {
    async fn create_replication(&self, rule: &ReplicationRecord) -> Result<(), MetaError> {
        let tags =
            serde_json::to_string(&rule.tags).map_err(|e| MetaError::Backend(e.to_string()))?;
        let done = sqlx::query(
            "INSERT INTO replication_rules (name, direction, source, tags_json, remote_url, \
             target_namespace, flatten, username, password_sealed, tls_verify, trigger_spec, \
             deletes, enabled, created_by, created_at, after_event, bandwidth_limit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
             (SELECT coalesce(max(id), 0) FROM events), $16) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&rule.name)
        .bind(&rule.direction)
        .bind(&rule.source)
        .bind(tags)
        .bind(&rule.remote_url)
        .bind(&rule.target_namespace)
        .bind(rule.flatten)
        .bind(&rule.username)
        .bind(&rule.password_sealed)
        .bind(rule.tls_verify)
        .bind(&rule.trigger)
        .bind(rule.deletes)
        .bind(rule.enabled)
        .bind(&rule.created_by)
        .bind(rule.created_at)
        .bind(
            rule.bandwidth_limit
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        )
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(MetaError::Conflict(format!(
                "replication rule {:?}",
                rule.name
            )));
        }
        Ok(())
    }

    async fn replications(&self) -> Result<Vec<ReplicationRecord>, MetaError> {
        // Byte order, as SQLite sorts names.
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM replication_rules ORDER BY name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(rule_of).collect()
    }

    async fn replication(&self, name: &str) -> Result<Option<ReplicationRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM replication_rules WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(rule_of).transpose()
    }

    async fn delete_replication(&self, name: &str) -> Result<bool, MetaError> {
        // The runs go with it (ON DELETE CASCADE), in the same statement.
        let done = sqlx::query("DELETE FROM replication_rules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_replication_enabled(&self, name: &str, enabled: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE replication_rules SET enabled = $1 WHERE name = $2")
            .bind(enabled)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn start_replication_run(
        &self,
        rule: &str,
        trigger: &str,
        at: i64,
    ) -> Result<i64, MetaError> {
        sqlx::query_scalar(
            "INSERT INTO replication_runs (rule, trigger_kind, status, started_at) \
             VALUES ($1, $2, 'running', $3) RETURNING id",
        )
        .bind(rule)
        .bind(trigger)
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn finish_replication_run(
        &self,
        run: &ReplicationRunRecord,
        event: &NewEvent,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
        sqlx::query(
            "UPDATE replication_runs SET status = $1, finished_at = $2, copied = $3, \
             skipped = $4, failed = $5, items_json = $6 WHERE id = $7",
        )
        .bind(&run.status)
        .bind(run.finished_at)
        .bind(stored_count(run.copied))
        .bind(stored_count(run.skipped))
        .bind(stored_count(run.failed))
        .bind(&run.items_json)
        .bind(run.id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        record_event(&mut tx, event.clone(), berth_core::time::now_unix()).await?;
        tx.commit().await.map_err(backend)
    }

    async fn replication_runs(
        &self,
        rule: &str,
        limit: u32,
    ) -> Result<Vec<ReplicationRunRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, rule, trigger_kind, status, started_at, finished_at, copied, skipped, \
             failed, items_json FROM replication_runs WHERE rule = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(rule)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(run_of).collect())
    }

    async fn replication_cursor(&self, name: &str) -> Result<i64, MetaError> {
        cursor_position(self, name).await
    }

    async fn hand_on_replications(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        jobs: &[NewJob],
    ) -> Result<bool, MetaError> {
        hand_on_jobs(self, cursor, from, to, jobs).await
    }
}
