//! The audit log on SQLite: permission-relevant actions, appended and read newest first.

use super::{backend, SqliteMeta};
use berth_core::ports::{AuditEvent, AuditLog, AuditQuery, AuditRecord, MetaError};
use sqlx::Row;

/// The most records one read returns, whatever the caller asks for.
const MAX_AUDIT_PAGE: u32 = 1000;

#[async_trait::async_trait]
impl AuditLog for SqliteMeta {
    async fn record_audit(&self, event: &AuditEvent) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, detail, address) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(event.at)
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.target)
        .bind(&event.detail)
        .bind(&event.address)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn audit_records(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, MetaError> {
        let before = query.before.unwrap_or(i64::MAX);
        let limit = i64::from(query.limit.min(MAX_AUDIT_PAGE));
        // Separate statements so an account filter can use the actor and target indexes.
        let rows = match &query.account {
            Some(account) => sqlx::query(
                "SELECT id, at, actor, action, target, detail, address FROM audit_log \
                 WHERE (actor = ?1 OR target = ?1) AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )
            .bind(account)
            .bind(before)
            .bind(limit),
            None => sqlx::query(
                "SELECT id, at, actor, action, target, detail, address FROM audit_log \
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )
            .bind(before)
            .bind(limit),
        }
        .fetch_all(&self.read)
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
            })
            .collect())
    }
}
