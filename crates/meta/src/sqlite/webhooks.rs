//! Webhooks on SQLite: their settings, the hand-on of events into deliveries (cursor
//! compare-and-set and inserts in one transaction), and the attempts history.

use super::events::{begin_hand_on, cursor_position};
use super::jobs::enqueue_in;
use super::WriteTx;
use super::{backend, count_column, wall_ms, SqliteMeta};
use crate::columns::{join_lines, split_lines, target_columns, target_of_columns};
use berth_core::ports::{
    AttemptVerdict, DeliveryAttempt, DeliveryRecord, DeliveryState, MetaError, NewDelivery, NewJob,
    NewWebhook, WebhookRecord, WebhookStore,
};
use berth_core::webhooks::{PayloadFormat, WebhookEvent, WebhookTarget};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

fn webhook_from_row(row: &SqliteRow) -> Result<WebhookRecord, MetaError> {
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
        enabled: row.get::<i64, _>("enabled") != 0,
        disabled_reason: row.get("disabled_reason"),
        consecutive_failures: count_column(row, "consecutive_failures"),
        after_event: row.get("after_event"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
    })
}

async fn insert_delivery(tx: &mut WriteTx, delivery: &NewDelivery) -> Result<(), MetaError> {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_kind, body, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
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

#[async_trait::async_trait]
impl WebhookStore for SqliteMeta {
    async fn create_webhook(&self, w: &NewWebhook, limit: u32) -> Result<(), MetaError> {
        let (scope, namespace, repository) = target_columns(&w.target);
        let mut tx = super::begin_write(&self.write).await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhooks WHERE scope = ? \
             AND coalesce(namespace, '') = coalesce(?, '') AND coalesce(repository, '') = coalesce(?, '')",
        )
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
             after_event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
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
        let row = sqlx::query("SELECT * FROM webhooks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn webhooks_of(&self, target: &WebhookTarget) -> Result<Vec<WebhookRecord>, MetaError> {
        let (scope, namespace, repository) = target_columns(target);
        let rows = sqlx::query(
            "SELECT * FROM webhooks WHERE scope = ? AND coalesce(namespace, '') = coalesce(?, '') \
             AND coalesce(repository, '') = coalesce(?, '') ORDER BY created_at, id",
        )
        .bind(scope)
        .bind(namespace)
        .bind(repository)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        // Its pending deliveries have nobody left to go to.
        sqlx::query(
            "DELETE FROM jobs WHERE unique_key IN \
             (SELECT 'webhook.deliver:' || id FROM webhook_deliveries WHERE webhook_id = ?)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?")
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
            "UPDATE webhooks SET enabled = ?, disabled_reason = ?, \
             consecutive_failures = CASE WHEN ? THEN 0 ELSE consecutive_failures END WHERE id = ?",
        )
        .bind(enabled)
        .bind(if enabled { None } else { reason })
        .bind(enabled)
        .bind(id)
        .execute(&self.write)
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
            "SELECT * FROM webhooks WHERE enabled = 1 AND (scope = 'site' \
             OR (scope = 'namespace' AND namespace = ?) \
             OR (scope = 'repository' AND repository = ?)) ORDER BY created_at, id",
        )
        .bind(namespace)
        .bind(repository)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn event_cursor(&self, name: &str) -> Result<i64, MetaError> {
        cursor_position(self, name).await
    }

    async fn hand_on_events(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        deliveries: &[(NewDelivery, NewJob)],
    ) -> Result<bool, MetaError> {
        let Some(mut tx) = begin_hand_on(self, cursor, from, to).await? else {
            return Ok(false);
        };
        let now = wall_ms();
        for (delivery, job) in deliveries {
            insert_delivery(&mut tx, delivery).await?;
            enqueue_in(&mut tx, job, now).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn enqueue_delivery(
        &self,
        delivery: &NewDelivery,
        job: &NewJob,
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        insert_delivery(&mut tx, delivery).await?;
        enqueue_in(&mut tx, job, wall_ms()).await?;
        tx.commit().await.map_err(backend)
    }

    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, MetaError> {
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
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
        let mut tx = super::begin_write(&self.write).await?;
        let done = sqlx::query("UPDATE webhook_deliveries SET state = 'pending' WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        enqueue_in(&mut tx, job, wall_ms()).await?;
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.attempts.waiting.lock().unwrap().push(WaitingAttempt {
            attempt: a.clone(),
            verdict,
            disable_after,
            job: job.map(|(id, lease)| (id, lease.to_owned())),
            reply,
        });
        {
            // Whoever holds the turn writes every attempt waiting by then, this one included
            // unless an earlier holder already took it.
            let _turn = self.attempts.turn.lock().await;
            let batch = std::mem::take(&mut *self.attempts.waiting.lock().unwrap());
            if !batch.is_empty() {
                match write_attempts(&self.write, &batch).await {
                    Ok(results) => {
                        for (waiting, result) in batch.into_iter().zip(results) {
                            let _ = waiting.reply.send(result);
                        }
                    }
                    Err(err) => {
                        let err = err.to_string();
                        for waiting in batch {
                            let _ = waiting.reply.send(Err(MetaError::Backend(err.clone())));
                        }
                    }
                }
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(MetaError::Backend(
                "the batch holding the attempt was abandoned".into(),
            ))
        })
    }

    async fn delivery_attempts(
        &self,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, MetaError> {
        let rows = sqlx::query(
            "SELECT a.*, d.event_kind FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             WHERE a.webhook_id = ? ORDER BY a.id DESC LIMIT ?",
        )
        .bind(webhook_id)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
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
            "DELETE FROM webhook_deliveries WHERE created_at < ? AND state != 'pending'",
        )
        .bind(before)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

/// Delivery attempts recorded at the same moment, written together: on the one SQLite
/// writer, a transaction per attempt cost more than the attempts themselves (each commit
/// appends every page it touched to the WAL), and deliveries finish in bursts.
#[derive(Debug, Default)]
pub(super) struct AttemptBatch {
    waiting: std::sync::Mutex<Vec<WaitingAttempt>>,
    /// Held while a batch is written; the next holder takes what arrived meanwhile.
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct WaitingAttempt {
    attempt: DeliveryAttempt,
    verdict: AttemptVerdict,
    disable_after: u32,
    job: Option<(i64, String)>,
    reply: tokio::sync::oneshot::Sender<Result<bool, MetaError>>,
}

/// Writes a batch of attempts in one transaction, in order (so runs of failures count as
/// they would one by one); for each, whether it disabled its webhook. Each attempt is
/// written under a savepoint: one that cannot be written (its webhook deleted meanwhile)
/// fails alone, and the others commit.
async fn write_attempts(
    write: &super::writer::Writer,
    batch: &[WaitingAttempt],
) -> Result<Vec<Result<bool, MetaError>>, MetaError> {
    let mut tx = super::begin_write(write).await?;
    let mut results = Vec::with_capacity(batch.len());
    for waiting in batch {
        sqlx::query("SAVEPOINT attempt")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let result = write_attempt(&mut tx, waiting).await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO attempt")
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query("RELEASE attempt")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        results.push(result);
    }
    tx.commit().await.map_err(backend)?;
    Ok(results)
}

/// One attempt of a batch, in the batch's transaction (see the port's contract).
async fn write_attempt(tx: &mut WriteTx, waiting: &WaitingAttempt) -> Result<bool, MetaError> {
    let (a, verdict, disable_after) = (&waiting.attempt, &waiting.verdict, waiting.disable_after);
    let job = waiting
        .job
        .as_ref()
        .map(|(id, lease)| (*id, lease.as_str()));
    if let (AttemptVerdict::Delivered, Some((id, lease))) = (&verdict, job) {
        sqlx::query("DELETE FROM jobs WHERE id = ? AND lease_token = ?")
            .bind(id)
            .bind(lease)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, webhook_id, attempt, at, status, latency_ms, \
             response, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.delivery_id)
    .bind(&a.webhook_id)
    .bind(i64::from(a.attempt))
    .bind(a.at_ms)
    .bind(a.status.map(i64::from))
    .bind(a.latency_ms as i64)
    .bind(&a.response)
    .bind(&a.error)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    let state = match verdict {
        AttemptVerdict::Delivered => Some("delivered"),
        AttemptVerdict::Failed | AttemptVerdict::Gone => Some("failed"),
        AttemptVerdict::WillRetry => None,
    };
    if let Some(state) = state {
        sqlx::query("UPDATE webhook_deliveries SET state = ? WHERE id = ?")
            .bind(state)
            .bind(&a.delivery_id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    let disabled_reason = match verdict {
        AttemptVerdict::Delivered => {
            // Most deliveries end a run of none: then the row is not rewritten.
            sqlx::query(
                "UPDATE webhooks SET consecutive_failures = 0 \
                     WHERE id = ? AND consecutive_failures != 0",
            )
            .bind(&a.webhook_id)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
            None
        }
        AttemptVerdict::WillRetry => None,
        AttemptVerdict::Gone => Some("the receiver answered 410 Gone".to_owned()),
        AttemptVerdict::Failed => {
            let failures: Option<i64> = sqlx::query_scalar(
                "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 \
                     WHERE id = ? RETURNING consecutive_failures",
            )
            .bind(&a.webhook_id)
            .fetch_optional(&mut **tx)
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
            "UPDATE webhooks SET enabled = 0, disabled_reason = ? WHERE id = ? AND enabled = 1",
        )
        .bind(&reason)
        .bind(&a.webhook_id)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        disabled = done.rows_affected() == 1;
    }
    Ok(disabled)
}
