//! Webhooks and the event stream: `/api/v1/{repositories/NAME/-,namespaces/NS,}/webhooks`,
//! `/api/v1/webhooks/{id}` with its pings, deliveries and redeliveries, and
//! `/api/v1/events?since=CURSOR`. Field names follow Docker Hub's webhook API (`name`,
//! `hook_url`, `active`, `creator`, `created`).

use super::error::ApiResult;
use super::wire::{created, instant, no_content, ok, query_number};
use super::Call;
use crate::query::query_param;
use axum::body::Body;
use axum::http::Response;
use berth_core::events::{visible_events, EventRecord, MAX_EVENT_PAGE};
use berth_core::ports::DeliveryAttempt;
use berth_core::webhooks::{WebhookRequest, WebhookTarget, WebhookView};
use serde::{Deserialize, Serialize};

/// A webhook on the wire.
#[derive(Debug, Serialize)]
struct WebhookWire {
    id: String,
    name: String,
    hook_url: String,
    /// `repository`, `namespace` or `site`.
    scope: &'static str,
    target: String,
    events: Vec<&'static str>,
    tags: Vec<String>,
    format: &'static str,
    custom_header: Option<String>,
    active: bool,
    disabled_reason: Option<String>,
    consecutive_failures: u32,
    creator: String,
    created: String,
    /// The signing secret (`whsec_…`): only in the answer that creates the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookWire {
    fn of(view: WebhookView, secret: Option<String>) -> WebhookWire {
        WebhookWire {
            id: view.id,
            name: view.name,
            hook_url: view.url,
            scope: view.scope,
            target: view.target,
            events: view.events,
            tags: view.tags,
            format: view.format,
            custom_header: view.header_name,
            active: view.enabled,
            disabled_reason: view.disabled_reason,
            consecutive_failures: view.consecutive_failures,
            creator: view.created_by,
            created: view.created_at,
            secret,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    #[serde(default)]
    name: Option<String>,
    hook_url: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    format: Option<String>,
    /// `{"name": "Authorization", "value": "Bearer …"}`, sent with every delivery.
    #[serde(default)]
    custom_header: Option<CustomHeader>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomHeader {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookChange {
    active: bool,
}

#[derive(Debug, Serialize)]
struct AttemptWire {
    delivery_id: String,
    event: String,
    attempt: u32,
    at: String,
    status: Option<u16>,
    latency_ms: u64,
    response: Option<String>,
    error: Option<String>,
}

impl From<DeliveryAttempt> for AttemptWire {
    fn from(a: DeliveryAttempt) -> AttemptWire {
        AttemptWire {
            delivery_id: a.delivery_id,
            event: a.event_kind,
            attempt: a.attempt,
            at: instant(a.at_ms.div_euclid(1000)),
            status: a.status,
            latency_ms: a.latency_ms,
            response: a.response,
            error: a.error,
        }
    }
}

pub(super) async fn list(call: &Call<'_>, target: WebhookTarget) -> ApiResult<Response<Body>> {
    let views = call.state.webhooks.list(&call.acting(), &target).await?;
    call.page(
        views
            .into_iter()
            .map(|v| WebhookWire::of(v, None))
            .collect(),
    )
}

pub(super) async fn create(call: &Call<'_>, target: WebhookTarget) -> ApiResult<Response<Body>> {
    let body: NewWebhook = call.json()?;
    let request = WebhookRequest {
        name: body.name,
        url: body.hook_url,
        events: body.events,
        tags: body.tags,
        format: body.format,
        header: body.custom_header.map(|h| (h.name, h.value)),
    };
    let made = call
        .state
        .webhooks
        .create(&call.acting(), target, request)
        .await?;
    created(&WebhookWire::of(made.webhook, Some(made.secret)))
}

pub(super) async fn show(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let view = call.state.webhooks.get(&call.acting(), id).await?;
    ok(&WebhookWire::of(view, None))
}

pub(super) async fn update(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let change: WebhookChange = call.json()?;
    let view = call
        .state
        .webhooks
        .set_enabled(&call.acting(), id, change.active)
        .await?;
    ok(&WebhookWire::of(view, None))
}

pub(super) async fn delete(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    call.state.webhooks.delete(&call.acting(), id).await?;
    no_content()
}

pub(super) async fn ping(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let delivery = call.state.webhooks.ping(&call.acting(), id).await?;
    let mut response = ok(&serde_json::json!({ "delivery_id": delivery }))?;
    *response.status_mut() = axum::http::StatusCode::ACCEPTED;
    Ok(response)
}

pub(super) async fn deliveries(call: &Call<'_>, id: &str) -> ApiResult<Response<Body>> {
    let attempts = call
        .state
        .webhooks
        .attempts(&call.acting(), id, 1000)
        .await?;
    call.page(attempts.into_iter().map(AttemptWire::from).collect())
}

pub(super) async fn redeliver(
    call: &Call<'_>,
    id: &str,
    delivery: &str,
) -> ApiResult<Response<Body>> {
    call.state
        .webhooks
        .redeliver(&call.acting(), id, delivery)
        .await?;
    let mut response = ok(&serde_json::json!({ "delivery_id": delivery }))?;
    *response.status_mut() = axum::http::StatusCode::ACCEPTED;
    Ok(response)
}

#[derive(Debug, Serialize)]
struct EventWire {
    id: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    namespace: String,
    repository: Option<String>,
    actor: Option<String>,
    at: String,
    data: serde_json::Value,
}

impl From<EventRecord> for EventWire {
    fn from(e: EventRecord) -> EventWire {
        EventWire {
            id: e.id,
            kind: e.kind.as_str(),
            namespace: e.namespace,
            repository: e.repository,
            actor: e.actor,
            at: instant(e.created_at),
            data: e.data,
        }
    }
}

#[derive(Debug, Serialize)]
struct EventsWire {
    events: Vec<EventWire>,
    /// Pass as `since` to read on.
    next_cursor: String,
}

/// `GET /api/v1/events?since=CURSOR&limit=N`: the events after the cursor that the caller
/// may see, oldest first. Without `since`, from the beginning of the kept log.
pub(super) async fn events(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let since = match query_param(&call.query, "since") {
        None => 0,
        Some(raw) => raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            super::error::ApiError::BadRequest(format!(
                "since must be a cursor from an earlier answer (a whole number), not {:?}",
                raw.chars().take(40).collect::<String>()
            ))
        })?,
    };
    let limit: u32 = query_number(&call.query, "limit")?.unwrap_or(100);
    if !(1..=MAX_EVENT_PAGE).contains(&limit) {
        return Err(super::error::ApiError::BadRequest(format!(
            "limit must be from 1 to {MAX_EVENT_PAGE}"
        )));
    }
    let page = visible_events(
        call.state.webhooks.event_log(),
        call.state.auth.authorizer().as_ref(),
        &call.principal,
        since,
        limit,
    )
    .await?;
    ok(&EventsWire {
        events: page.events.into_iter().map(EventWire::from).collect(),
        next_cursor: page.next.to_string(),
    })
}
