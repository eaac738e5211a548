//! Managing webhooks: creating (with the address checks), listing, disabling and deleting
//! them, pings, redeliveries and the delivery history. Whoever holds Admin on the target
//! manages its webhooks: the repository's admins, the namespace's owners, site admins for
//! site-wide ones.

use super::address::check_address;
use super::deliver::delivery_job;
use super::dispatch::new_delivery_id;
use super::seal::SealKey;
use super::signature::new_secret;
use super::{check_url, PayloadFormat, WebhookEvent, WebhookTarget, WebhookTransport};
use crate::access::{owns_namespace, Actor, Authorizer};
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::identity::Acting;
use crate::jobs::Wake;
use crate::ports::{
    DeliveryAttempt, MetaStore, NamespaceOwner, NewDelivery, NewWebhook, Permission, WebhookRecord,
};
use crate::time::rfc3339;
use std::sync::Arc;

/// Most webhooks one repository, namespace or the site may have.
pub const MAX_WEBHOOKS_PER_TARGET: u32 = 25;
const MAX_TAG_FILTERS: usize = 20;
const MAX_NAME_LEN: usize = 100;
const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Headers Berth writes itself, which a custom header may not replace.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Allow receivers on loopback and private networks (`webhook_allow_private`).
    pub allow_private: bool,
    /// Consecutive failed deliveries after which a webhook is disabled.
    pub disable_after: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            allow_private: false,
            disable_after: 5,
        }
    }
}

/// A webhook to create, as a caller asks for it.
#[derive(Debug, Clone, Default)]
pub struct WebhookRequest {
    pub name: Option<String>,
    pub url: String,
    /// Event kinds by their names (`push`, ...); none means `push`.
    pub events: Vec<String>,
    /// Glob patterns (`*`); none means every tag.
    pub tags: Vec<String>,
    /// `dockerhub` (the default) or `cloudevents`.
    pub format: Option<String>,
    /// A header sent with every delivery, e.g. `Authorization`, stored encrypted.
    pub header: Option<(String, String)>,
}

/// A webhook as its managers see it: never its secret or header value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WebhookView {
    pub id: String,
    pub scope: &'static str,
    pub target: String,
    pub name: String,
    pub url: String,
    pub events: Vec<&'static str>,
    pub tags: Vec<String>,
    pub format: &'static str,
    pub header_name: Option<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: u32,
    pub created_by: String,
    pub created_at: String,
}

impl WebhookView {
    fn of(record: &WebhookRecord) -> WebhookView {
        WebhookView {
            id: record.id.clone(),
            scope: record.target.scope(),
            target: record.target.name().to_owned(),
            name: record.name.clone(),
            url: record.url.clone(),
            events: record.events.iter().map(|e| e.as_str()).collect(),
            tags: record.tag_filters.clone(),
            format: record.format.as_str(),
            header_name: record.header_name.clone(),
            enabled: record.enabled,
            disabled_reason: record.disabled_reason.clone(),
            consecutive_failures: record.consecutive_failures,
            created_by: record.created_by.clone(),
            created_at: rfc3339(record.created_at),
        }
    }
}

/// A created webhook, with its secret: shown this once.
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    pub webhook: WebhookView,
    pub secret: String,
}

/// The webhooks service.
#[derive(Clone)]
pub struct Webhooks {
    store: Arc<dyn MetaStore>,
    audit: Audit,
    authorizer: Arc<dyn Authorizer>,
    transport: Arc<dyn WebhookTransport>,
    seal: SealKey,
    clock: Arc<dyn Clock>,
    settings: WebhookSettings,
    wake: Wake,
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn MetaStore>,
        authorizer: Arc<dyn Authorizer>,
        transport: Arc<dyn WebhookTransport>,
        seal: SealKey,
        clock: Arc<dyn Clock>,
        settings: WebhookSettings,
        wake: Wake,
    ) -> Webhooks {
        Webhooks {
            audit: Audit::over(store.clone()),
            store,
            authorizer,
            transport,
            seal,
            clock,
            settings,
            wake,
        }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// The event log, for the event stream.
    pub fn event_log(&self) -> &dyn crate::ports::EventLog {
        &*self.store
    }

    pub async fn create(
        &self,
        acting: &Acting<'_>,
        target: WebhookTarget,
        request: WebhookRequest,
    ) -> Result<CreatedWebhook> {
        self.require_admin_of(acting, &target).await?;
        let url = self.check_target(&request.url).await?;
        let events = parse_events(&request.events)?;
        let tags = parse_tag_filters(&request.tags)?;
        let format = match request.format.as_deref() {
            None | Some("") => PayloadFormat::default(),
            Some(format) => PayloadFormat::parse(format).ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown payload format {format:?}; use dockerhub or cloudevents"
                ))
            })?,
        };
        let name = match request.name.as_deref().map(str::trim) {
            None | Some("") => url.host_str().unwrap_or("webhook").to_owned(),
            Some(name) if name.chars().count() > MAX_NAME_LEN => {
                return Err(Error::Invalid(format!(
                    "a webhook name has at most {MAX_NAME_LEN} characters"
                )))
            }
            Some(name) => name.to_owned(),
        };
        let header = request.header.map(check_header).transpose()?;
        let secret = new_secret();
        let now = self.clock.now_unix();
        let record = NewWebhook {
            id: format!("wh_{}", uuid::Uuid::new_v4().simple()),
            target: target.clone(),
            name,
            url: url.to_string(),
            events,
            tag_filters: tags,
            format,
            secret_sealed: self.seal.seal(&secret),
            header_name: header.as_ref().map(|(name, _)| name.clone()),
            header_value_sealed: header.as_ref().map(|(_, value)| self.seal.seal(value)),
            created_by: acting.actor_name(),
            created_at: now,
        };
        self.store
            .create_webhook(&record, MAX_WEBHOOKS_PER_TARGET)
            .await
            .map_err(|e| match e {
                crate::ports::MetaError::Conflict(_) => Error::Invalid(format!(
                    "{target} has {MAX_WEBHOOKS_PER_TARGET} webhooks already, the most it may have"
                )),
                other => other.into(),
            })?;
        self.audit(acting, "webhook.create", &record.id, &target)
            .await;
        let stored = self
            .store
            .webhook(&record.id)
            .await?
            .ok_or_else(|| Error::internal("webhooks", "a created webhook vanished"))?;
        Ok(CreatedWebhook {
            webhook: WebhookView::of(&stored),
            secret,
        })
    }

    pub async fn list(
        &self,
        acting: &Acting<'_>,
        target: &WebhookTarget,
    ) -> Result<Vec<WebhookView>> {
        self.require_admin_of(acting, target).await?;
        Ok(self
            .store
            .webhooks_of(target)
            .await?
            .iter()
            .map(WebhookView::of)
            .collect())
    }

    pub async fn get(&self, acting: &Acting<'_>, id: &str) -> Result<WebhookView> {
        Ok(WebhookView::of(&self.managed(acting, id).await?))
    }

    pub async fn delete(&self, acting: &Acting<'_>, id: &str) -> Result<()> {
        let record = self.managed(acting, id).await?;
        self.store.delete_webhook(id).await?;
        self.audit(acting, "webhook.delete", id, &record.target)
            .await;
        Ok(())
    }

    /// Turns a webhook on (its run of failures forgotten) or off.
    pub async fn set_enabled(
        &self,
        acting: &Acting<'_>,
        id: &str,
        enabled: bool,
    ) -> Result<WebhookView> {
        let record = self.managed(acting, id).await?;
        let reason = (!enabled).then(|| format!("disabled by {}", acting.actor_name()));
        self.store
            .set_webhook_enabled(id, enabled, reason.as_deref())
            .await?;
        let action = if enabled {
            "webhook.enable"
        } else {
            "webhook.disable"
        };
        self.audit(acting, action, id, &record.target).await;
        self.get(acting, id).await
    }

    /// Sends a `ping` event to the webhook now; returns the delivery's id.
    pub async fn ping(&self, acting: &Acting<'_>, id: &str) -> Result<String> {
        let record = self.managed(acting, id).await?;
        let now = self.clock.now_unix();
        let body = match record.format {
            PayloadFormat::DockerHub => serde_json::json!({
                "event": "ping",
                "webhook_id": record.id,
                "target": record.target.name(),
                "sent_at": now,
            }),
            PayloadFormat::CloudEvents => serde_json::json!({
                "specversion": "1.0",
                "id": format!("ping_{}", uuid::Uuid::new_v4().simple()),
                "source": format!("/webhooks/{}", record.id),
                "type": "io.berth.ping",
                "time": rfc3339(now),
                "datacontenttype": "application/json",
                "data": { "webhook_id": record.id, "target": record.target.name() },
            }),
        };
        let delivery = NewDelivery {
            id: new_delivery_id(),
            webhook_id: record.id.clone(),
            event_id: None,
            event_kind: "ping".to_owned(),
            body: body.to_string(),
            created_at: now,
        };
        self.store
            .enqueue_delivery(&delivery, &delivery_job(&delivery.id, self.clock.now_ms()))
            .await?;
        self.wake.wake();
        Ok(delivery.id)
    }

    /// Sends a delivery of the webhook again, with its `webhook-id` and body unchanged.
    pub async fn redeliver(&self, acting: &Acting<'_>, id: &str, delivery_id: &str) -> Result<()> {
        self.managed(acting, id).await?;
        let delivery = self.store.delivery(delivery_id).await?;
        if delivery.as_ref().is_none_or(|d| d.webhook_id != id) {
            return Err(Error::WebhookUnknown(delivery_id.to_owned()));
        }
        let job = delivery_job(delivery_id, self.clock.now_ms());
        self.store.redeliver(delivery_id, &job).await?;
        self.wake.wake();
        Ok(())
    }

    /// The webhook's delivery attempts, newest first.
    pub async fn attempts(
        &self,
        acting: &Acting<'_>,
        id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>> {
        self.managed(acting, id).await?;
        Ok(self
            .store
            .delivery_attempts(id, limit.clamp(1, 1000))
            .await?)
    }

    /// The webhook, if the caller manages it; otherwise unknown, as if it did not exist.
    async fn managed(&self, acting: &Acting<'_>, id: &str) -> Result<WebhookRecord> {
        let unknown = || Error::WebhookUnknown(id.to_owned());
        let record = self.store.webhook(id).await?.ok_or_else(unknown)?;
        match self.require_admin_of(acting, &record.target).await {
            Ok(()) => Ok(record),
            Err(Error::Unauthorized) => Err(Error::Unauthorized),
            Err(Error::Internal(e)) => Err(Error::Internal(e)),
            Err(_) => Err(unknown()),
        }
    }

    /// Refuses unless the caller holds Admin on the target.
    async fn require_admin_of(&self, acting: &Acting<'_>, target: &WebhookTarget) -> Result<()> {
        require_admin_of(&*self.store, &*self.authorizer, acting, target).await
    }

    /// The URL, if Berth may call it: a web URL whose host resolves only to addresses it may
    /// call (checked again at every delivery).
    async fn check_target(&self, raw: &str) -> Result<url::Url> {
        let url = check_url(raw.trim(), self.settings.allow_private).map_err(Error::Invalid)?;
        if self.settings.allow_private {
            return Ok(url);
        }
        if let Some(url::Host::Domain(host)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addresses = self
                .transport
                .resolve(host, port)
                .await
                .map_err(|e| Error::Invalid(format!("{host} cannot be resolved: {e}")))?;
            if addresses.is_empty() {
                return Err(Error::Invalid(format!("{host} resolves to no address")));
            }
            for ip in addresses {
                if let Err(why) = check_address(ip) {
                    return Err(Error::Invalid(format!(
                        "{host} resolves to {ip}, {why}; Berth does not call it"
                    )));
                }
            }
        }
        Ok(url)
    }

    async fn audit(&self, acting: &Acting<'_>, action: &str, id: &str, target: &WebhookTarget) {
        let detail = serde_json::json!({ "scope": target.scope(), "target": target.name() });
        self.audit.record_by(acting, action, id, detail).await;
    }
}

/// Refuses unless the caller holds Admin on the target: the repository's admins, the
/// namespace's owners (with an unnarrowed token), site admins for the site. Webhooks and
/// the lifecycle rules are managed under this one check.
pub(crate) async fn require_admin_of(
    store: &dyn MetaStore,
    authorizer: &dyn Authorizer,
    acting: &Acting<'_>,
    target: &WebhookTarget,
) -> Result<()> {
    let principal = acting.principal;
    if principal.is_anonymous() {
        return Err(Error::Unauthorized);
    }
    match target {
        WebhookTarget::Site => acting.require_site_admin(),
        WebhookTarget::Repository(repo) => {
            let exists = store.repository_exists(repo).await?;
            match authorizer
                .permission(principal, repo)
                .await?
                .filter(|_| exists)
            {
                None => Err(Error::NameUnknown(repo.clone())),
                Some(Permission::Admin) => Ok(()),
                Some(_) => Err(Error::Denied),
            }
        }
        WebhookTarget::Namespace(name) => {
            let namespace = store
                .namespace(name)
                .await?
                .ok_or_else(|| Error::AccountUnknown(name.clone()))?;
            if principal.is_site_admin() {
                return Ok(());
            }
            // A token narrowed to some repositories, or below admin, manages no namespace.
            let full = principal.limits.as_ref().is_none_or(|l| {
                l.scope == crate::identity::TokenScope::Admin && l.repositories.is_empty()
            });
            let owns_org = match (&principal.actor, namespace.owner) {
                (Actor::User { id, .. }, NamespaceOwner::Organization(org)) => {
                    store.is_org_owner(org, *id).await?
                }
                _ => false,
            };
            let owner = owns_namespace(&principal.actor, Some(namespace.owner), owns_org);
            if full && owner {
                Ok(())
            } else {
                Err(Error::Denied)
            }
        }
    }
}

fn parse_events(names: &[String]) -> Result<Vec<WebhookEvent>> {
    if names.is_empty() {
        return Ok(vec![WebhookEvent::Push]);
    }
    let mut events = Vec::new();
    for name in names {
        let event = WebhookEvent::parse(name.trim()).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown event kind {name:?}; use push, tag_delete, manifest_delete, repository or retention"
            ))
        })?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

fn parse_tag_filters(patterns: &[String]) -> Result<Vec<String>> {
    if patterns.len() > MAX_TAG_FILTERS {
        return Err(Error::Invalid(format!(
            "a webhook takes at most {MAX_TAG_FILTERS} tag patterns"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for pattern in patterns {
        let pattern = pattern.trim();
        let valid = !pattern.is_empty()
            && pattern.len() <= 128
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-*".contains(c));
        if !valid {
            return Err(Error::Invalid(format!(
                "invalid tag pattern {:?}: letters, digits, '_', '.', '-' and '*' only, at most 128",
                pattern.chars().take(140).collect::<String>()
            )));
        }
        if !out.iter().any(|p| p == pattern) {
            out.push(pattern.to_owned());
        }
    }
    Ok(out)
}

fn check_header((name, value): (String, String)) -> Result<(String, String)> {
    let name = name.trim().to_ascii_lowercase();
    let token = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !token {
        return Err(Error::Invalid(format!(
            "invalid header name {:?}",
            name.chars().take(70).collect::<String>()
        )));
    }
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(Error::Invalid(format!(
            "the header {name} is set by Berth and cannot be replaced"
        )));
    }
    if value.len() > MAX_HEADER_VALUE_LEN || value.chars().any(|c| c.is_control()) {
        return Err(Error::Invalid(format!(
            "the value of {name} must be at most {MAX_HEADER_VALUE_LEN} characters without line breaks"
        )));
    }
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_default_to_push_and_unknown_kinds_are_refused() {
        assert_eq!(parse_events(&[]).unwrap(), vec![WebhookEvent::Push]);
        let events = parse_events(&["push".into(), "tag_delete".into(), "push".into()]).unwrap();
        assert_eq!(events, vec![WebhookEvent::Push, WebhookEvent::TagDelete]);
        let err = parse_events(&["pull".into()]).unwrap_err();
        assert!(err.to_string().contains("\"pull\""), "{err}");
    }

    #[test]
    fn tag_patterns_and_headers_are_checked() {
        assert_eq!(
            parse_tag_filters(&["v*".into(), "latest".into(), "v*".into()]).unwrap(),
            vec!["v*".to_owned(), "latest".to_owned()]
        );
        assert!(parse_tag_filters(&["a/b".into()]).is_err());
        assert!(parse_tag_filters(&vec!["x".to_owned(); 21]).is_err());
        assert_eq!(
            check_header(("Authorization".into(), "Bearer x".into())).unwrap(),
            ("authorization".to_owned(), "Bearer x".to_owned())
        );
        assert!(check_header(("webhook-signature".into(), "x".into())).is_err());
        assert!(check_header(("x-token".into(), "a\r\nb: c".into())).is_err());
        assert!(check_header(("bad name".into(), "x".into())).is_err());
    }
}
