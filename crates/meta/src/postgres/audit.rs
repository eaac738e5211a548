//! The audit log on PostgreSQL: permission-relevant actions appended (identical repeated
//! failures folded into one row with a count), read newest first, pruned by age.

use super::{backend, lock_name, PostgresMeta};
use berth_core::ports::{
    AuditEvent, AuditLog, AuditQuery, AuditRecord, MetaError, AUDIT_FOLD_WINDOW_SECS,
};
use sqlx::Row;

/// The most records one read returns, whatever the caller asks for.
const MAX_AUDIT_PAGE: u32 = 1000;

/// Records one pruning statement deletes.
const PRUNE_BATCH: i64 = 5000;

/// Held while a repeat is folded or recorded: two nodes recording the same failure at once
/// must not both find no record to fold into and insert two.
const AUDIT_FOLD_LOCK: &str = "berth:audit-fold";

#[async_trait::async_trait]
impl AuditLog for PostgresMeta {
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), MetaError> {
        let mut tx = self.begin().await?;
        if event.folds_repeats() {
            lock_name(&mut tx, AUDIT_FOLD_LOCK).await?;
            // `IS NOT DISTINCT FROM` cannot use an index; `= $2` and `IS NULL` can, so the
            // newest record of the address and action is an index probe either way.
            let same_address = if event.address.is_some() {
                "address = $2"
            } else {
                "address IS NULL AND $2::text IS NULL"
            };
            let folded = sqlx::query(&format!(
                "UPDATE audit_log SET count = count + 1, last_at = greatest(last_at, $1) \
                 WHERE id = (SELECT id FROM audit_log \
                   WHERE {same_address} AND action = $3 ORDER BY id DESC LIMIT 1) \
                 AND actor = $4 AND target = $5 AND detail IS NOT DISTINCT FROM $6 \
                 AND last_at >= $7"
            ))
            .bind(event.at)
            .bind(&event.address)
            .bind(&event.action)
            .bind(&event.actor)
            .bind(&event.target)
            .bind(&event.detail)
            .bind(event.at - AUDIT_FOLD_WINDOW_SECS)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if folded.rows_affected() == 1 {
                tx.commit().await.map_err(backend)?;
                return Ok(());
            }
        }
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, address, count, last_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $1)",
        )
        .bind(event.at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target)
        .bind(&event.detail)
        .bind(&event.address)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, MetaError> {
        let before = query.before.unwrap_or(i64::MAX);
        let limit = i64::from(query.limit.min(MAX_AUDIT_PAGE));
        // Separate statements so an account filter can use the actor and target indexes.
        let rows = match &query.account {
            Some(account) => sqlx::query(
                "SELECT id, at, actor, action, target, detail, address, count, last_at \
                 FROM audit_log \
                 WHERE (actor = $1 OR target = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(account)
            .bind(before)
            .bind(limit),
            None => sqlx::query(
                "SELECT id, at, actor, action, target, detail, address, count, last_at \
                 FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(before)
            .bind(limit),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| AuditRecord {
                id: row.get("id"),
                event: AuditEvent {
                    at: row.get("at"),
                    actor: row.get("actor"),
                    action: row.get("action"),
                    target: row.get("target"),
                    detail: row.get("detail"),
                    address: row.get("address"),
                },
                count: super::count_column(row, "count"),
                last_at: row.get("last_at"),
            })
            .collect())
    }

    async fn prune_audit(&self, before: i64) -> Result<u64, MetaError> {
        // In batches, so a first prune of years of records does not lock them all at once.
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM audit_log WHERE id IN \
                 (SELECT id FROM audit_log WHERE last_at < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(PRUNE_BATCH)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
            pruned += done.rows_affected();
            if done.rows_affected() < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
        }
    }
}
