//! Delivering one message: sign it, POST it, keep the attempt in the history, and tell the
//! runner whether it is done, worth retrying, or over.

use super::seal::SealKey;
use super::signature::sign;
use super::{OutboundError, OutboundRequest, PayloadFormat, WebhookTransport};
use crate::clock::Clock;
use crate::jobs::{Backoff, JobError, JobHandler, JobOutcome};
use crate::ports::{AttemptVerdict, ClaimedJob, DeliveryAttempt, MetaStore, NewJob};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The job kind of a delivery.
pub const DELIVER_JOB: &str = "webhook.deliver";

/// Attempts per delivery: with [`WEBHOOK_BACKOFF`] they span more than a day.
pub const WEBHOOK_MAX_ATTEMPTS: u32 = 13;

/// 10 s after the first failure, then three times longer each time, at most 6 h apart.
pub const WEBHOOK_BACKOFF: Backoff = Backoff {
    first: Duration::from_secs(10),
    factor: 3.0,
    max: Duration::from_secs(6 * 3600),
    jitter: 0.2,
};

/// How long a receiver has to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a response body the history keeps.
const RESPONSE_KEPT: usize = 1024;

/// The job that delivers `delivery_id`, due at `now_ms`.
pub(super) fn delivery_job(delivery_id: &str, now_ms: i64) -> NewJob {
    NewJob {
        kind: DELIVER_JOB.to_owned(),
        payload: serde_json::json!({ "delivery": delivery_id }).to_string(),
        due_at_ms: now_ms,
        max_attempts: WEBHOOK_MAX_ATTEMPTS,
        // A redelivery of a message that is still being tried adds nothing.
        unique_key: Some(format!("{DELIVER_JOB}:{delivery_id}")),
    }
}

/// Runs delivery jobs.
pub struct DeliverWebhook {
    store: Arc<dyn MetaStore>,
    transport: Arc<dyn WebhookTransport>,
    seal: SealKey,
    clock: Arc<dyn Clock>,
    /// Consecutive failed deliveries after which a webhook is disabled.
    disable_after: u32,
}

impl DeliverWebhook {
    pub fn new(
        store: Arc<dyn MetaStore>,
        transport: Arc<dyn WebhookTransport>,
        seal: SealKey,
        clock: Arc<dyn Clock>,
        disable_after: u32,
    ) -> DeliverWebhook {
        DeliverWebhook {
            store,
            transport,
            seal,
            clock,
            disable_after,
        }
    }
}

#[async_trait::async_trait]
impl JobHandler for DeliverWebhook {
    async fn run(&self, job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let payload: serde_json::Value = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("broken payload: {e}")))?;
        let Some(delivery_id) = payload.get("delivery").and_then(|d| d.as_str()) else {
            return Err(JobError::Permanent("the payload names no delivery".into()));
        };
        // A delivery or webhook deleted meanwhile has nobody left to tell.
        let Some(delivery) = self.store.delivery(delivery_id).await? else {
            return Ok(JobOutcome::Done);
        };
        let Some(webhook) = self.store.webhook(&delivery.webhook_id).await? else {
            return Ok(JobOutcome::Done);
        };
        let mut attempt = DeliveryAttempt {
            delivery_id: delivery.id.clone(),
            webhook_id: webhook.id.clone(),
            event_kind: delivery.event_kind.clone(),
            attempt: job.attempt,
            at_ms: self.clock.now_ms(),
            status: None,
            latency_ms: 0,
            response: None,
            error: None,
        };
        if !webhook.enabled {
            attempt.error = Some("not sent: the webhook is disabled".into());
            self.store
                .record_attempt(&attempt, AttemptVerdict::Failed, self.disable_after, None)
                .await?;
            return Ok(JobOutcome::Done);
        }
        let Some(secret) = self.seal.open(&webhook.secret_sealed) else {
            return Err(JobError::Permanent(
                "the webhook's secret cannot be opened with this node's key".into(),
            ));
        };
        let timestamp = self.clock.now_unix();
        let content_type = match webhook.format {
            PayloadFormat::DockerHub => "application/json",
            PayloadFormat::CloudEvents => "application/cloudevents+json",
        };
        let mut headers = vec![
            ("content-type".to_owned(), content_type.to_owned()),
            (
                "user-agent".to_owned(),
                concat!("Berth-Webhook/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
            ("webhook-id".to_owned(), delivery.id.clone()),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
            (
                "webhook-signature".to_owned(),
                sign(&secret, &delivery.id, timestamp, delivery.body.as_bytes()),
            ),
        ];
        if let (Some(name), Some(sealed)) = (&webhook.header_name, &webhook.header_value_sealed) {
            if let Some(value) = self.seal.open(sealed) {
                headers.push((name.clone(), value));
            }
        }
        let started = Instant::now();
        let answer = self
            .transport
            .post(OutboundRequest {
                url: webhook.url.clone(),
                headers,
                body: delivery.body.into_bytes(),
                timeout: DELIVERY_TIMEOUT,
            })
            .await;
        attempt.latency_ms = started.elapsed().as_millis() as u64;
        let last = job.attempt >= job.max_attempts;
        let verdict = match &answer {
            Ok(response) => {
                attempt.status = Some(response.status);
                let kept = &response.body_start[..response.body_start.len().min(RESPONSE_KEPT)];
                attempt.response = Some(String::from_utf8_lossy(kept).into_owned());
                match response.status {
                    200..=299 => AttemptVerdict::Delivered,
                    410 => AttemptVerdict::Gone,
                    _ if last => AttemptVerdict::Failed,
                    _ => AttemptVerdict::WillRetry,
                }
            }
            Err(error) => {
                attempt.error = Some(error.to_string());
                match error {
                    // An address refused now will be refused at every attempt.
                    OutboundError::Refused(_) => AttemptVerdict::Failed,
                    _ if last => AttemptVerdict::Failed,
                    _ => AttemptVerdict::WillRetry,
                }
            }
        };
        let disabled = self
            .store
            .record_attempt(
                &attempt,
                verdict.clone(),
                self.disable_after,
                Some((job.id, &job.lease)),
            )
            .await?;
        if disabled {
            tracing::warn!(webhook = %webhook.id, url = %webhook.url, "webhook disabled after failed deliveries");
        }
        match verdict {
            // Its job went in the same transaction as the attempt.
            AttemptVerdict::Delivered => Ok(JobOutcome::Settled),
            AttemptVerdict::Gone => Err(JobError::Permanent(
                "the receiver answered 410 Gone: webhook disabled".into(),
            )),
            AttemptVerdict::Failed if !last => Err(JobError::Permanent(
                attempt.error.unwrap_or_else(|| "refused".into()),
            )),
            _ => Err(JobError::Retry(match (attempt.status, attempt.error) {
                (Some(status), _) => format!("the receiver answered {status}"),
                (None, Some(error)) => error,
                (None, None) => "no answer".into(),
            })),
        }
    }

    fn backoff(&self) -> Backoff {
        WEBHOOK_BACKOFF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_retry_is_within_30_seconds_and_retries_span_a_day() {
        assert!(WEBHOOK_BACKOFF.delay(1, 0.999) <= Duration::from_secs(30));
        let shortest = WEBHOOK_BACKOFF.shortest_span(WEBHOOK_MAX_ATTEMPTS);
        assert!(shortest >= Duration::from_secs(24 * 3600), "{shortest:?}");
    }
}
