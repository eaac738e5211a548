//! The hand-on of events to webhooks: reads the event log after the webhooks' cursor, picks
//! the webhooks each event concerns, renders one delivery per webhook (per tag for Docker
//! Hub's push payload) and stores the deliveries with their jobs as the cursor moves on.

use super::deliver::delivery_job;
use super::payload::{render, RenderContext};
use super::PayloadFormat;
use crate::access::glob_matches;
use crate::clock::Clock;
use crate::events::{EventKind, EventRecord};
use crate::jobs::JobFeed;
use crate::ports::{MetaError, MetaStore, NewDelivery, NewJob, RepositoryInfo, WebhookRecord};
use berth_oci::RepoName;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The event cursor webhooks read from.
pub const WEBHOOKS_CURSOR: &str = "webhooks";

/// Events read per transaction.
const BATCH: u32 = 200;

/// Turns new events into webhook deliveries (a [`JobFeed`] of the runner).
pub struct EventHandOn {
    store: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    public_url: String,
}

impl EventHandOn {
    pub fn new(store: Arc<dyn MetaStore>, clock: Arc<dyn Clock>, public_url: &str) -> EventHandOn {
        EventHandOn {
            store,
            clock,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The deliveries one batch of events makes.
    async fn deliveries_for(
        &self,
        events: &[EventRecord],
    ) -> Result<Vec<(NewDelivery, NewJob)>, MetaError> {
        let mut listening: HashMap<(String, Option<String>), Vec<WebhookRecord>> = HashMap::new();
        let mut infos: HashMap<String, Option<RepositoryInfo>> = HashMap::new();
        let mut out = Vec::new();
        let now_ms = self.clock.now_ms();
        for event in events {
            let key = (event.namespace.clone(), event.repository.clone());
            if !listening.contains_key(&key) {
                let found = self
                    .store
                    .webhooks_listening(&event.namespace, event.repository.as_deref())
                    .await?;
                listening.insert(key.clone(), found);
            }
            let webhooks = &listening[&key];
            if webhooks.is_empty() {
                continue;
            }
            let info = match &event.repository {
                Some(name) => {
                    if !infos.contains_key(name) {
                        let info = match name.parse::<RepoName>() {
                            Ok(repo) => self.store.repository_info(&repo).await?,
                            Err(_) => None,
                        };
                        infos.insert(name.clone(), info);
                    }
                    infos[name].as_ref()
                }
                None => None,
            };
            let context = RenderContext {
                public_url: &self.public_url,
                repository: info,
            };
            for webhook in webhooks {
                for tag in tags_to_send(webhook, event) {
                    let body = render(webhook.format, event, tag.as_deref(), &context);
                    let delivery = NewDelivery {
                        id: new_delivery_id(),
                        webhook_id: webhook.id.clone(),
                        event_id: Some(event.id),
                        event_kind: event.kind.as_str().to_owned(),
                        body,
                        created_at: event.created_at,
                    };
                    let job = delivery_job(&delivery.id, now_ms);
                    out.push((delivery, job));
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl JobFeed for EventHandOn {
    async fn feed(&self) -> Result<usize, MetaError> {
        let mut made = 0;
        loop {
            let from = self.store.event_cursor(WEBHOOKS_CURSOR).await?;
            let events = self.store.events_after(from, BATCH).await?;
            let Some(last) = events.last() else {
                return Ok(made);
            };
            let to = last.id;
            let deliveries = self.deliveries_for(&events).await?;
            if self
                .store
                .hand_on_events(WEBHOOKS_CURSOR, from, to, &deliveries)
                .await?
            {
                made += deliveries.len();
            }
            // Otherwise another node handed these on first: read on from where it left off.
            if events.len() < BATCH as usize {
                return Ok(made);
            }
        }
    }
}

/// A fresh `webhook-id`: `msg_` and 32 hex digits (no `.`, as signing requires).
pub(super) fn new_delivery_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The tags the webhook fires for (one delivery each), `[None]` for one delivery not about
/// a tag, or nothing when the webhook does not want the event.
fn tags_to_send(webhook: &WebhookRecord, event: &EventRecord) -> Vec<Option<String>> {
    if event.id <= webhook.after_event || !webhook.events.iter().any(|e| e.covers(event.kind)) {
        return Vec::new();
    }
    let wanted = |tag: &str| {
        webhook.tag_filters.is_empty() || webhook.tag_filters.iter().any(|p| glob_matches(p, tag))
    };
    match event.kind {
        EventKind::ManifestPushed => {
            // A push by digest alone (the images of a multi-platform push) fires nothing; the
            // tagged push that follows does.
            let tags: Vec<String> = event
                .data
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|t| wanted(t))
                .map(str::to_owned)
                .collect();
            if tags.is_empty() {
                Vec::new()
            } else if webhook.format == PayloadFormat::DockerHub {
                tags.into_iter().map(Some).collect()
            } else {
                vec![None]
            }
        }
        EventKind::TagDeleted => {
            let tag = event.data.get("tag").and_then(Value::as_str).unwrap_or("");
            if wanted(tag) {
                vec![Some(tag.to_owned())]
            } else {
                Vec::new()
            }
        }
        _ => vec![None],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::{WebhookEvent, WebhookTarget};
    use serde_json::json;

    fn webhook(events: &[WebhookEvent], tags: &[&str], format: PayloadFormat) -> WebhookRecord {
        WebhookRecord {
            id: "wh_1".into(),
            target: WebhookTarget::Site,
            name: "hook".into(),
            url: "https://example.com".into(),
            events: events.to_vec(),
            tag_filters: tags.iter().map(|t| t.to_string()).collect(),
            format,
            secret_sealed: Vec::new(),
            header_name: None,
            header_value_sealed: None,
            enabled: true,
            disabled_reason: None,
            consecutive_failures: 0,
            after_event: 0,
            created_by: "alice".into(),
            created_at: 0,
        }
    }

    fn event(kind: EventKind, data: Value) -> EventRecord {
        EventRecord {
            id: 1,
            kind,
            namespace: "alice".into(),
            repository: Some("alice/app".into()),
            actor: None,
            data,
            created_at: 0,
        }
    }

    #[test]
    fn docker_hub_pushes_are_one_delivery_per_wanted_tag() {
        let push = event(
            EventKind::ManifestPushed,
            json!({"tags": ["1.0", "latest", "dev"]}),
        );
        let all = webhook(&[WebhookEvent::Push], &[], PayloadFormat::DockerHub);
        assert_eq!(tags_to_send(&all, &push).len(), 3);
        let releases = webhook(
            &[WebhookEvent::Push],
            &["1.*", "latest"],
            PayloadFormat::DockerHub,
        );
        assert_eq!(
            tags_to_send(&releases, &push),
            vec![Some("1.0".to_owned()), Some("latest".to_owned())]
        );
        let cloud = webhook(&[WebhookEvent::Push], &["1.*"], PayloadFormat::CloudEvents);
        assert_eq!(tags_to_send(&cloud, &push), vec![None]);
        let none = webhook(&[WebhookEvent::Push], &["2.*"], PayloadFormat::CloudEvents);
        assert!(tags_to_send(&none, &push).is_empty());
    }

    #[test]
    fn a_webhook_hears_only_of_events_after_it_was_made() {
        let push = event(EventKind::ManifestPushed, json!({"tags": ["1.0"]}));
        let mut hook = webhook(&[WebhookEvent::Push], &[], PayloadFormat::DockerHub);
        hook.after_event = push.id;
        assert!(tags_to_send(&hook, &push).is_empty());
        hook.after_event = push.id - 1;
        assert_eq!(tags_to_send(&hook, &push).len(), 1);
    }

    #[test]
    fn pushes_by_digest_alone_and_unwanted_kinds_fire_nothing() {
        let by_digest = event(EventKind::ManifestPushed, json!({"tags": []}));
        let all = webhook(&WebhookEvent::ALL, &[], PayloadFormat::DockerHub);
        assert!(tags_to_send(&all, &by_digest).is_empty());
        let deleted = event(EventKind::TagDeleted, json!({"tag": "old"}));
        let push_only = webhook(&[WebhookEvent::Push], &[], PayloadFormat::DockerHub);
        assert!(tags_to_send(&push_only, &deleted).is_empty());
        assert_eq!(tags_to_send(&all, &deleted), vec![Some("old".to_owned())]);
        let created = event(EventKind::RepositoryCreated, json!({}));
        assert_eq!(tags_to_send(&all, &created), vec![None]);
        let access = event(EventKind::AccessChanged, json!({}));
        assert!(tags_to_send(&all, &access).is_empty());
    }

    #[test]
    fn retention_runs_reach_webhooks_that_ask_for_them_once() {
        let run = event(
            EventKind::RetentionCompleted,
            json!({"tags": ["acme/app:old"]}),
        );
        let retention = webhook(&[WebhookEvent::Retention], &[], PayloadFormat::DockerHub);
        assert_eq!(tags_to_send(&retention, &run), vec![None]);
        let push_only = webhook(&[WebhookEvent::Push], &[], PayloadFormat::DockerHub);
        assert!(tags_to_send(&push_only, &run).is_empty());
    }
}
