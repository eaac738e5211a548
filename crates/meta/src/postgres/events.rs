//! The event log on PostgreSQL: events written inside the transactions of the changes that
//! cause them (the outbox), read in id order by the webhooks' hand-on and the event stream.

use super::{backend, PostgresMeta};
use berth_core::events::{EventKind, EventRecord, NewEvent};
use berth_core::ports::{EventLog, MetaError};
use sqlx::{Postgres, Row, Transaction};

/// Serializes the transactions that write events, so ids commit in id order: a reader that
/// saw event 7 can never later find a 6 that committed after it (SQLite's single writer
/// gives this for free). Taken as the first step of every transaction that may record an
/// event ([`PostgresMeta::begin_recording`]), before any row lock, so it cannot close a
/// cycle of waits; held to the commit.
pub(super) const EVENT_ORDER_LOCK: &str = "berth:events";

/// Records events in the caller's transaction.
pub(super) async fn record_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewEvent],
    now: i64,
) -> Result<(), MetaError> {
    if events.is_empty() {
        return Ok(());
    }
    // Already held when the transaction began with `begin_recording`; taking it again in
    // the same transaction does not wait.
    super::lock_name(tx, EVENT_ORDER_LOCK).await?;
    for event in events {
        sqlx::query(
            "INSERT INTO events (kind, namespace, repository, actor, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.kind.as_str())
        .bind(&event.namespace)
        .bind(&event.repository)
        .bind(&event.actor)
        .bind(event.data.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    }
    Ok(())
}

/// Records one event in the caller's transaction.
pub(super) async fn record_event(
    tx: &mut Transaction<'_, Postgres>,
    event: NewEvent,
    now: i64,
) -> Result<(), MetaError> {
    record_events(tx, std::slice::from_ref(&event), now).await
}

fn event_from_row(row: &sqlx::postgres::PgRow) -> Result<EventRecord, MetaError> {
    let kind: String = row.get("kind");
    let data: String = row.get("data");
    Ok(EventRecord {
        id: row.get("id"),
        kind: EventKind::parse(&kind)
            .ok_or_else(|| MetaError::Backend(format!("stored event kind {kind:?} is unknown")))?,
        namespace: row.get("namespace"),
        repository: row.get("repository"),
        actor: row.get("actor"),
        data: serde_json::from_str(&data)
            .map_err(|e| MetaError::Backend(format!("stored event data is not JSON: {e}")))?,
        created_at: row.get("created_at"),
    })
}

#[async_trait::async_trait]
impl EventLog for PostgresMeta {
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRecord>, MetaError> {
        let rows = sqlx::query("SELECT * FROM events WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar("SELECT coalesce(max(id), 0)::bigint FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn prune_events(&self, before: i64) -> Result<u64, MetaError> {
        let done = sqlx::query(
            "DELETE FROM events WHERE created_at < $1 \
             AND id <= (SELECT coalesce(min(position), 0) FROM event_cursors)",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
