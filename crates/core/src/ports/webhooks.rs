//! The webhooks port: webhook settings, the hand-on of events to them, and delivery history.
//!
//! Contract for every backend:
//! - `create_webhook` counts the target's webhooks and inserts in one transaction, so the
//!   per-target limit holds under concurrent creation.
//! - `hand_on_events` moves the named event cursor from `from` to `to` with a
//!   compare-and-set and, in the same transaction, stores the deliveries and their jobs: the
//!   events between are handed on exactly once, whichever node does it.
//! - `record_attempt` stores the attempt, settles the delivery and keeps the webhook's run of
//!   consecutive failed deliveries in one transaction; the webhook is disabled when the run
//!   reaches the limit. A delivered attempt also finishes its job (given by id and lease) in
//!   that transaction. Attempts recorded at the same time may share one transaction (in the
//!   order they were recorded, each all-or-nothing on its own): a backend with one writer
//!   then commits a burst of finished deliveries once, not once each. It returns once its
//!   attempt is committed.

use super::jobs::NewJob;
use super::meta::MetaError;
use crate::webhooks::{PayloadFormat, WebhookEvent, WebhookTarget};

type Result<T> = std::result::Result<T, MetaError>;

/// A webhook to store; secrets arrive sealed (encrypted with the node key).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: String,
    pub target: WebhookTarget,
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub tag_filters: Vec<String>,
    pub format: PayloadFormat,
    pub secret_sealed: Vec<u8>,
    pub header_name: Option<String>,
    pub header_value_sealed: Option<Vec<u8>>,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: String,
    pub target: WebhookTarget,
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub tag_filters: Vec<String>,
    pub format: PayloadFormat,
    pub secret_sealed: Vec<u8>,
    pub header_name: Option<String>,
    pub header_value_sealed: Option<Vec<u8>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: u32,
    /// The newest event when the webhook was made: it hears only of later ones.
    pub after_event: i64,
    pub created_by: String,
    pub created_at: i64,
}

/// One message to one webhook, with its fixed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The `webhook-id` receivers deduplicate on.
    pub id: String,
    pub webhook_id: String,
    pub event_id: Option<i64>,
    /// `ping`, or the event kind's wire name.
    pub event_kind: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook_id: String,
    pub event_id: Option<i64>,
    pub event_kind: String,
    pub body: String,
    pub state: DeliveryState,
    pub created_at: i64,
}

/// One attempt to deliver, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_kind: String,
    pub attempt: u32,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The first KiB of the response body.
    pub response: Option<String>,
    pub error: Option<String>,
}

/// How an attempt settles its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// 2xx: delivered; the webhook's run of failures ends.
    Delivered,
    /// Failed, and will be tried again.
    WillRetry,
    /// Failed for the last time: the delivery failed and counts toward disabling.
    Failed,
    /// The receiver said the webhook is gone (410): disable it now.
    Gone,
}

#[async_trait::async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores the webhook unless its target already has `limit` (then `Conflict`).
    async fn create_webhook(&self, webhook: &NewWebhook, limit: u32) -> Result<()>;
    async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>>;
    async fn webhooks_of(&self, target: &WebhookTarget) -> Result<Vec<WebhookRecord>>;
    async fn delete_webhook(&self, id: &str) -> Result<bool>;
    /// Turns the webhook on (clearing its failures) or off with a reason.
    async fn set_webhook_enabled(
        &self,
        id: &str,
        enabled: bool,
        reason: Option<&str>,
    ) -> Result<bool>;
    /// The enabled webhooks that may fire for a repository of `namespace`: the site's, the
    /// namespace's and, when `repository` is given, the repository's.
    async fn webhooks_listening(
        &self,
        namespace: &str,
        repository: Option<&str>,
    ) -> Result<Vec<WebhookRecord>>;
    /// Where the named consumer stands in the event log.
    async fn event_cursor(&self, name: &str) -> Result<i64>;
    /// See the module contract. False when the cursor was not at `from` (nothing stored).
    async fn hand_on_events(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        deliveries: &[(NewDelivery, NewJob)],
    ) -> Result<bool>;
    /// Stores a delivery and its job (a ping or a redelivery) in one transaction.
    async fn enqueue_delivery(&self, delivery: &NewDelivery, job: &NewJob) -> Result<()>;
    async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>>;
    /// Sends a settled delivery again: back to pending, with a new job, in one transaction.
    /// False if there is no such delivery.
    async fn redeliver(&self, id: &str, job: &NewJob) -> Result<bool>;
    /// Stores the attempt and applies the verdict (see the module contract); returns whether
    /// this attempt disabled the webhook.
    async fn record_attempt(
        &self,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
        disable_after: u32,
        job: Option<(i64, &str)>,
    ) -> Result<bool>;
    /// The webhook's attempts, newest first, at most `limit`.
    async fn delivery_attempts(&self, webhook_id: &str, limit: u32)
        -> Result<Vec<DeliveryAttempt>>;
    /// Removes deliveries (and their attempts) created before `before` that are settled.
    async fn prune_deliveries(&self, before: i64) -> Result<u64>;
}
