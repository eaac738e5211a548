//! The event log on SQLite: events written inside the transactions of the changes that
//! cause them, read in id order by the webhooks' hand-on and the event stream.

use super::WriteTx;
use super::{backend, SqliteMeta};
use berth_core::events::{EventKind, EventRecord, NewEvent};
use berth_core::ports::{EventLog, MetaError};
use sqlx::Row;

/// Records events in the caller's transaction.
pub(super) async fn record_events(
    tx: &mut WriteTx,
    events: &[NewEvent],
    now: i64,
) -> Result<(), MetaError> {
    for event in events {
        sqlx::query(
            "INSERT INTO events (kind, namespace, repository, actor, data, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
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
    tx: &mut WriteTx,
    event: NewEvent,
    now: i64,
) -> Result<(), MetaError> {
    record_events(tx, std::slice::from_ref(&event), now).await
}

/// The hand-on of an event feed (webhooks, signatures, scanner): moves the feed's cursor
/// from `from` to `to` by compare-and-set in a new write transaction, returned for the
/// caller to store what the events became (jobs, deliveries) and commit; `None` (nothing
/// moved) when the cursor was not at `from`, because another process handed them on first.
pub(super) async fn begin_hand_on(
    meta: &SqliteMeta,
    cursor: &str,
    from: i64,
    to: i64,
) -> Result<Option<WriteTx>, MetaError> {
    let mut tx = super::begin_write(&meta.write).await?;
    let moved = sqlx::query(
        "INSERT INTO event_cursors (name, position) VALUES (?1, ?3) \
         ON CONFLICT(name) DO UPDATE SET position = ?3 WHERE position = ?2",
    )
    .bind(cursor)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    Ok((moved.rows_affected() == 1).then_some(tx))
}

/// A hand-on whose events became only jobs: see [`begin_hand_on`].
pub(super) async fn hand_on_jobs(
    meta: &SqliteMeta,
    cursor: &str,
    from: i64,
    to: i64,
    jobs: &[berth_core::ports::NewJob],
) -> Result<bool, MetaError> {
    let Some(mut tx) = begin_hand_on(meta, cursor, from, to).await? else {
        return Ok(false);
    };
    let now = super::wall_ms();
    for job in jobs {
        super::jobs::enqueue_in(&mut tx, job, now).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

/// Where the named feed stands in the event log (0: at the start).
pub(super) async fn cursor_position(meta: &SqliteMeta, name: &str) -> Result<i64, MetaError> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM event_cursors WHERE name = ?")
            .bind(name)
            .fetch_optional(&meta.read)
            .await
            .map_err(backend)?;
    Ok(position.unwrap_or(0))
}

fn event_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<EventRecord, MetaError> {
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
impl EventLog for SqliteMeta {
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRecord>, MetaError> {
        // A reader sees every transaction committed before its query began (WAL).
        let rows = sqlx::query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM events")
            .fetch_one(&self.read)
            .await
            .map_err(backend)
    }

    async fn prune_events(&self, before: i64) -> Result<u64, MetaError> {
        let done = sqlx::query(
            "DELETE FROM events WHERE created_at < ? \
             AND id <= (SELECT coalesce(min(position), 0) FROM event_cursors)",
        )
        .bind(before)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
