//! The audit log for site admins, in the shape of Docker Hub's `/v2/auditlogs/{account}`.

use super::error::ApiResult;
use super::wire::{instant, ok, query_number};
use super::Call;
use crate::query::query_param;
use axum::body::Body;
use axum::http::Response;
use berth_core::ports::{AuditQuery, AuditRecord};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
struct LogEntry {
    id: i64,
    /// Who acted.
    account: String,
    action: String,
    /// What it was done to.
    name: String,
    data: Value,
    /// When it (first) happened.
    timestamp: String,
    address: Option<String>,
    /// How many times it happened: identical failures from one address are counted in one
    /// entry.
    count: u32,
    /// When it last happened.
    last_timestamp: String,
}

impl From<AuditRecord> for LogEntry {
    fn from(record: AuditRecord) -> LogEntry {
        let event = record.event;
        // Details are stored as JSON; anything else is shown as the text it is.
        let data = event.detail.map_or(Value::Null, |detail| {
            serde_json::from_str(&detail).unwrap_or(Value::String(detail))
        });
        LogEntry {
            id: record.id,
            account: event.actor,
            action: event.action,
            name: event.target,
            data,
            timestamp: instant(event.at),
            address: event.address,
            count: record.count,
            last_timestamp: instant(record.last_at),
        }
    }
}

/// `GET /api/v1/auditlogs?account=&before=&limit=`, newest first: `account` keeps the
/// records by or about one name, `before` pages back (records with a smaller id).
pub(super) async fn list(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let query = AuditQuery {
        account: query_param(&call.query, "account").filter(|a| !a.is_empty()),
        before: query_number(&call.query, "before")?,
        limit: query_number(&call.query, "limit")?.unwrap_or(0),
    };
    let records = call
        .state
        .identity
        .audit_records(&call.acting(), query)
        .await?;
    let logs: Vec<LogEntry> = records.into_iter().map(LogEntry::from).collect();
    ok(&serde_json::json!({ "logs": logs }))
}
