//! Webhooks: where events are sent (a repository, a namespace or the whole site), in which
//! format, signed how, and their durable delivery through the jobs runner.

mod address;
mod deliver;
mod dispatch;
mod payload;
mod seal;
mod service;
mod signature;

pub use address::{check_address, check_url, AddressRefusal};
pub use deliver::{DeliverWebhook, DELIVER_JOB, WEBHOOK_BACKOFF, WEBHOOK_MAX_ATTEMPTS};
pub use dispatch::{EventHandOn, WEBHOOKS_CURSOR};
pub use payload::{render, RenderContext};
pub use seal::{SealKey, SEAL_KEY_BYTES};
pub(crate) use service::require_admin_of;
pub use service::{
    CreatedWebhook, WebhookRequest, WebhookSettings, WebhookView, Webhooks, MAX_WEBHOOKS_PER_TARGET,
};
pub use signature::{new_secret, sign, verify, SECRET_PREFIX};

use crate::events::EventKind;
use berth_oci::RepoName;
use std::time::Duration;

/// What a webhook fires for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WebhookTarget {
    /// One repository.
    Repository(RepoName),
    /// Every repository of a user or an organization.
    Namespace(String),
    /// Every repository of the site.
    Site,
}

impl WebhookTarget {
    /// `NAMESPACE/REPO` is a repository, a single name a namespace.
    pub fn parse(target: &str) -> Result<WebhookTarget, String> {
        if target.contains('/') {
            target
                .parse::<RepoName>()
                .map(WebhookTarget::Repository)
                .map_err(|e| format!("invalid repository name {target:?}: {e}"))
        } else {
            let valid = !target.is_empty()
                && target.len() <= 255
                && target
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if valid {
                Ok(WebhookTarget::Namespace(target.to_owned()))
            } else {
                Err(format!("invalid namespace name {target:?}"))
            }
        }
    }

    /// `repository`, `namespace` or `site`.
    pub fn scope(&self) -> &'static str {
        match self {
            WebhookTarget::Repository(_) => "repository",
            WebhookTarget::Namespace(_) => "namespace",
            WebhookTarget::Site => "site",
        }
    }

    /// The repository or namespace name; `""` for the site.
    pub fn name(&self) -> &str {
        match self {
            WebhookTarget::Repository(repo) => repo.as_str(),
            WebhookTarget::Namespace(namespace) => namespace,
            WebhookTarget::Site => "",
        }
    }
}

impl std::fmt::Display for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebhookTarget::Site => f.write_str("the site"),
            other => f.write_str(other.name()),
        }
    }
}

/// The event kinds a webhook can ask for, as the CLI and the API name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    /// A manifest pushed under one or more tags.
    Push,
    TagDelete,
    ManifestDelete,
    /// A repository created, deleted, or made public or private.
    Repository,
    /// A push took the namespace past 85 % of its quota.
    QuotaWarning,
    /// A retention run deleted tags or manifests (`retention.completed`).
    Retention,
    /// An image was scanned for vulnerabilities (`scan.completed`).
    Scan,
    /// An automated build finished (`build.completed`).
    Build,
    /// A replication rule's run finished (`replication.completed`): site webhooks hear every
    /// rule's, a namespace's the pull rules importing into it.
    Replication,
}

impl WebhookEvent {
    pub const ALL: [WebhookEvent; 9] = [
        WebhookEvent::Push,
        WebhookEvent::TagDelete,
        WebhookEvent::ManifestDelete,
        WebhookEvent::Repository,
        WebhookEvent::QuotaWarning,
        WebhookEvent::Retention,
        WebhookEvent::Scan,
        WebhookEvent::Build,
        WebhookEvent::Replication,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Push => "push",
            WebhookEvent::TagDelete => "tag_delete",
            WebhookEvent::ManifestDelete => "manifest_delete",
            WebhookEvent::Repository => "repository",
            WebhookEvent::QuotaWarning => "quota_warning",
            WebhookEvent::Retention => "retention",
            WebhookEvent::Scan => "scan",
            WebhookEvent::Build => "build",
            WebhookEvent::Replication => "replication",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether events of `kind` are of this sort.
    pub fn covers(self, kind: EventKind) -> bool {
        match self {
            WebhookEvent::Push => kind == EventKind::ManifestPushed,
            WebhookEvent::TagDelete => kind == EventKind::TagDeleted,
            WebhookEvent::ManifestDelete => kind == EventKind::ManifestDeleted,
            WebhookEvent::Repository => matches!(
                kind,
                EventKind::RepositoryCreated
                    | EventKind::RepositoryDeleted
                    | EventKind::RepositoryVisibilityChanged
            ),
            WebhookEvent::QuotaWarning => kind == EventKind::QuotaWarning,
            WebhookEvent::Retention => kind == EventKind::RetentionCompleted,
            WebhookEvent::Scan => kind == EventKind::ScanCompleted,
            WebhookEvent::Build => kind == EventKind::BuildCompleted,
            WebhookEvent::Replication => kind == EventKind::ReplicationCompleted,
        }
    }
}

/// How a delivery's body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PayloadFormat {
    /// Docker Hub's push payload, field for field, plus the digest and media type.
    #[default]
    DockerHub,
    /// CloudEvents 1.0, structured JSON.
    CloudEvents,
}

impl PayloadFormat {
    pub const ALL: [PayloadFormat; 2] = [PayloadFormat::DockerHub, PayloadFormat::CloudEvents];

    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::DockerHub => "dockerhub",
            PayloadFormat::CloudEvents => "cloudevents",
        }
    }

    pub fn parse(s: &str) -> Option<PayloadFormat> {
        PayloadFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// An HTTP request to a receiver.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

/// What a receiver answered: its status and the start of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    /// At most the first KiB.
    pub body_start: Vec<u8>,
}

/// Why nothing was answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The address is not one Berth may call (loopback, private, link-local, metadata).
    #[error("refused: {0}")]
    Refused(String),
    #[error("no answer within {0} seconds")]
    Timeout(u64),
    #[error("{0}")]
    Failed(String),
}

/// The outgoing HTTP port: how deliveries reach receivers. Implementations check every
/// address they connect to with [`check_address`] (unless private targets are allowed), at
/// connection time, so a name that resolves differently later gains nothing, and never
/// follow redirects.
#[async_trait::async_trait]
pub trait WebhookTransport: Send + Sync {
    async fn post(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError>;
    /// The addresses `host` resolves to.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<std::net::IpAddr>, OutboundError>;
}
