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

/// The hand-on of an event feed (webhooks, signatures, scanner): moves the feed's cursor
/// from `from` to `to` by compare-and-set in a new transaction, returned for the caller to
/// store what the events became (jobs, deliveries) and commit; `None` (nothing moved) when
/// the cursor was not at `from`, because another node handed those events on first.
pub(super) async fn begin_hand_on(
    meta: &PostgresMeta,
    cursor: &str,
    from: i64,
    to: i64,
) -> Result<Option<Transaction<'static, Postgres>>, MetaError> {
    let mut tx = meta.begin().await?;
    // The upsert locks the cursor's row: a second node moving it at once waits, then finds
    // it no longer at `from`.
    let moved = sqlx::query(
        "INSERT INTO event_cursors (name, position) VALUES ($1, $3) \
         ON CONFLICT (name) DO UPDATE SET position = $3 WHERE event_cursors.position = $2",
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
    meta: &PostgresMeta,
    cursor: &str,
    from: i64,
    to: i64,
    jobs: &[berth_core::ports::NewJob],
) -> Result<bool, MetaError> {
    let Some(mut tx) = begin_hand_on(meta, cursor, from, to).await? else {
        return Ok(false);
    };
    let now = super::jobs::wall_ms();
    for job in jobs {
        super::jobs::enqueue_in(&mut *tx, job, now).await?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

/// Where the named feed stands in the event log (0: at the start).
pub(super) async fn cursor_position(meta: &PostgresMeta, name: &str) -> Result<i64, MetaError> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM event_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&meta.pool)
            .await
            .map_err(backend)?;
    Ok(position.unwrap_or(0))
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
