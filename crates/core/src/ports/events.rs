//! The event log port: reading the outbox that changes write to (see `crate::events`).
//!
//! Contract for every backend: each store method that changes what a repository holds or
//! who may reach it records its events in the same transaction as the change; event ids
//! increase in commit order.

use super::meta::MetaError;
use crate::events::EventRecord;

type Result<T> = std::result::Result<T, MetaError>;

#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
    /// Events with an id above `after`, oldest first, at most `limit`.
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<EventRecord>>;
    /// The id of the newest event (0 when there is none).
    async fn last_event_id(&self) -> Result<i64>;
    /// Removes events older than `before` (seconds) that every consumer has read; returns
    /// how many went.
    async fn prune_events(&self, before: i64) -> Result<u64>;
}
