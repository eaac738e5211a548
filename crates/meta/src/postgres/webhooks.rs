//! Webhooks on PostgreSQL: their settings, the hand-on of events into deliveries (cursor
//! compare-and-set and inserts in one transaction, so of two nodes handing on the same
//! events only one stores deliveries), and the attempts history.

use super::jobs::{enqueue_in, wall_ms};
use super::{backend, count_column, lock_name, PostgresMeta};
use crate::columns::{join_lines, split_lines, target_columns, target_of_columns};
use berth_core::ports::{
    AttemptVerdict, DeliveryAttempt, DeliveryRecord, DeliveryState, MetaError, NewDelivery, NewJob,
    NewWebhook, WebhookRecord, WebhookStore,
};
use berth_core::webhooks::{PayloadFormat, WebhookEvent, WebhookTarget};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

fn webhook_from_row(row: &PgRow) -> Result<WebhookRecord, MetaError> {
    let broken = |what: &str| MetaError::Backend(format!("stored webhook has a broken {what}"));
    let scope: String = row.get("scope");
    let target = target_of_columns(&scope, row.get("namespace"), row.get("repository"))
        .ok_or_else(|| broken("target"))?;
    let events: String = row.get("events");
    let tags: String = row.get("tag_filters");
    let format: String = row.get("format");
    Ok(WebhookRecord {
        id: row.get("id"),
        target,
        name: row.get("name"),
        url: row.get("url"),
        events: split_lines(Some(events.as_str()))
            .iter()
            .filter_map(|e| WebhookEvent::parse(e))
            .collect(),
        tag_filters: split_lines(Some(tags.as_str())),
        format: PayloadFormat::parse(&format).ok_or_else(|| broken("format"))?,
        secret_sealed: row.get("secret_sealed"),
        header_name: row.get("header_name"),
        header_value_sealed: row.get("header_value_sealed"),
        enabled: row.get("enabled"),
        disabled_reason: row.get("disabled_reason"),
        consecutive_failures: count_column(row, "consecutive_failures"),
        after_event: row.get("after_event"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
    })
}

async fn insert_delivery(
    tx: &mut Transaction<'_, Postgres>,
    delivery: &NewDelivery,
) -> Result<(), MetaError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_kind, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&delivery.id)
    .bind(&delivery.webhook_id)
    .bind(delivery.event_id)
    .bind(&delivery.event_kind)
    .bind(&delivery.body)
    .bind(delivery.created_at)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The target's webhooks, in a statement with `$1` the scope, `$2` the namespace and `$3`
/// the repository.
const OF_TARGET: &str = "scope = $1 AND coalesce(namespace, '') = coalesce($2, '') \
     AND coalesce(repository, '') = coalesce($3, '')";

#[async_trait::async_trait]
impl WebhookStore for PostgresMeta {
    async fn create_webhook(&self, w: &NewWebhook, limit: u32) -> Result<(), MetaError> {
        let (scope, namespace, repository) = target_columns(&w.target);
        let mut tx = self.begin().await?;
        // The count holds until the insert commits: two nodes adding the last allowed
        // webhook of one target at once take turns.
        let lock = format!(
            "berth:webhooks:{scope}:{}:{}",
            namespace.unwrap_or(""),
            repository.unwrap_or("")
        );
        lock_name(&mut tx, &lock).await?;
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM webhooks WHERE {OF_TARGET}"))
                .bind(scope)
                .bind(namespace)
                .bind(repository)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        if count >= i64::from(limit) {
            return Err(MetaError::Conflict(format!("webhook number {}", count + 1)));
        }
        sqlx::query(
            "INSERT INTO webhooks (id, scope, namespace, repository, name, url, events, tag_filters, \
             format, secret_sealed, header_name, header_value_sealed, created_by, created_at, \
             after_event) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             (SELECT coalesce(max(id), 0) FROM events))",
        )
        .bind(&w.id)
        .bind(scope)
        .bind(namespace)
        .bind(repository)
        .bind(&w.name)
        .bind(&w.url)
        .bind(join_lines(&w.events.iter().map(|e| e.as_str()).collect::<Vec<_>>()))
        .bind(join_lines(&w.tag_filters))
        .bind(w.format.as_str())
        .bind(&w.secret_sealed)
        .bind(&w.header_name)
        .bind(&w.header_value_sealed)
        .bind(&w.created_by)
        .bind(w.created_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>, MetaError> {
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhooks_of(&self, target: &WebhookTarget) -> Result<Vec<WebhookRecord>, MetaError> {
        let (scope, namespace, repository) = target_columns(target);
        let rows = sqlx::query(&format!(
            "SELECT * FROM webhooks WHERE {OF_TARGET} ORDER BY created_at, id COLLATE \"C\""
        ))
        .bind(scope)
        .bind(namespace)
        .bind(repository)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, MetaError> {
        let mut tx = self.begin().await?;
        // Its pending deliveries have nobody left to go to.
        sqlx::query(
            "DELETE FROM jobs WHERE unique_key IN \
             (SELECT 'webhook.deliver:' || id FROM webhook_deliveries WHERE webhook_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE webhooks SET enabled = $1, disabled_reason = $2, \
             consecutive_failures = CASE WHEN $1 THEN 0 ELSE consecutive_failures END \
             WHERE id = $3",
        )
        .bind(enabled)
        .bind(if enabled { None } else { reason })
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn webhooks_listening(
        &self,
        namespace: &str,
        repository: Option<&str>,
    ) -> Result<Vec<WebhookRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM webhooks WHERE enabled AND (scope = 'site' \
             OR (scope = 'namespace' AND namespace = $1) \
             OR (scope = 'repository' AND repository = $2)) \
             ORDER BY created_at, id COLLATE \"C\"",
        )
        .bind(namespace)
        .bind(repository)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn event_cursor(&self, name: &str) -> Result<i64, MetaError> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM event_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(position.unwrap_or(0))
    }

    async fn hand_on_events(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        deliveries: &[(NewDelivery, NewJob)],
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin().await?;
        // A node moving the same cursor at once holds the row; this one then re-reads the
        // position and finds it moved, so only one of them stores the deliveries.
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
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        let now = wall_ms();
        for (delivery, job) in deliveries {
            insert_delivery(&mut tx, delivery).await?;
            enqueue_in(&mut *tx, job, now).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn enqueue_delivery(
        &self,
        delivery: &NewDelivery,
        job: &NewJob,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin().await?;
        insert_delivery(&mut tx, delivery).await?;
        enqueue_in(&mut *tx, job, wall_ms()).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, MetaError> {
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map(|row| DeliveryRecord {
            id: row.get("id"),
            webhook_id: row.get("webhook_id"),
            event_id: row.get("event_id"),
            event_kind: row.get("event_kind"),
            body: row.get("body"),
            state: match row.get::<String, _>("state").as_str() {
                "delivered" => DeliveryState::Delivered,
                "failed" => DeliveryState::Failed,
                _ => DeliveryState::Pending,
            },
            created_at: row.get("created_at"),
        }))
    }

    async fn redeliver(&self, id: &str, job: &NewJob) -> Result<bool, MetaError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE webhook_deliveries SET state = 'pending' WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        enqueue_in(&mut *tx, job, wall_ms()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn record_attempt(
        &self,
        a: &DeliveryAttempt,
        verdict: AttemptVerdict,
        disable_after: u32,
        job: Option<(i64, &str)>,
    ) -> Result<bool, MetaError> {
        // One transaction per attempt: unlike SQLite's one writer, PostgreSQL commits them
        // side by side, so there is nothing to gain from batching them.
        let mut tx = self.begin().await?;
        if let (AttemptVerdict::Delivered, Some((id, lease))) = (&verdict, job) {
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND lease_token = $2")
                .bind(id)
                .bind(lease)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, webhook_id, attempt, at, status, \
             latency_ms, response, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.delivery_id)
        .bind(&a.webhook_id)
        .bind(i64::from(a.attempt))
        .bind(a.at_ms)
        .bind(a.status.map(i64::from))
        .bind(i64::try_from(a.latency_ms).unwrap_or(i64::MAX))
        .bind(&a.response)
        .bind(&a.error)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let state = match verdict {
            AttemptVerdict::Delivered => Some("delivered"),
            AttemptVerdict::Failed | AttemptVerdict::Gone => Some("failed"),
            AttemptVerdict::WillRetry => None,
        };
        if let Some(state) = state {
            sqlx::query("UPDATE webhook_deliveries SET state = $1 WHERE id = $2")
                .bind(state)
                .bind(&a.delivery_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let disabled_reason = match verdict {
            AttemptVerdict::Delivered => {
                // Most deliveries end a run of none: then the row is not rewritten.
                sqlx::query(
                    "UPDATE webhooks SET consecutive_failures = 0 \
                     WHERE id = $1 AND consecutive_failures != 0",
                )
                .bind(&a.webhook_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                None
            }
            AttemptVerdict::WillRetry => None,
            AttemptVerdict::Gone => Some("the receiver answered 410 Gone".to_owned()),
            AttemptVerdict::Failed => {
                // The row lock serializes failures of one webhook across nodes, so each
                // counts once.
                let failures: Option<i64> = sqlx::query_scalar(
                    "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 \
                     WHERE id = $1 RETURNING consecutive_failures",
                )
                .bind(&a.webhook_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
                failures
                    .filter(|n| *n >= i64::from(disable_after.max(1)))
                    .map(|n| format!("disabled after {n} consecutive failed deliveries"))
            }
        };
        let mut disabled = false;
        if let Some(reason) = disabled_reason {
            let done = sqlx::query(
                "UPDATE webhooks SET enabled = FALSE, disabled_reason = $1 \
                 WHERE id = $2 AND enabled",
            )
            .bind(&reason)
            .bind(&a.webhook_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            disabled = done.rows_affected() == 1;
        }
        tx.commit().await.map_err(backend)?;
        Ok(disabled)
    }

    async fn delivery_attempts(
        &self,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, MetaError> {
        let rows = sqlx::query(
            "SELECT a.*, d.event_kind FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             WHERE a.webhook_id = $1 ORDER BY a.id DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| DeliveryAttempt {
                delivery_id: row.get("delivery_id"),
                webhook_id: row.get("webhook_id"),
                event_kind: row.get("event_kind"),
                attempt: count_column(row, "attempt"),
                at_ms: row.get("at"),
                status: row
                    .get::<Option<i64>, _>("status")
                    .and_then(|s| u16::try_from(s).ok()),
                latency_ms: row.get::<i64, _>("latency_ms").max(0) as u64,
                response: row.get("response"),
                error: row.get("error"),
            })
            .collect())
    }

    async fn prune_deliveries(&self, before: i64) -> Result<u64, MetaError> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE created_at < $1 AND state != 'pending'",
        )
        .bind(before)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
