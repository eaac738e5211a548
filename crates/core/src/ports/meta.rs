//! The metadata port: the database that is the source of truth for what each repository holds.
//!
//! One small trait per aggregate; a backend implements them all and is used as `MetaStore`.

use super::events::EventLog;
use super::hub::HubStore;
use super::identity::IdentityStore;
use super::jobs::JobQueue;
use super::lifecycle::{Collection, Usage, UsageStore};
use super::policies::LifecycleStore;
use super::scans::ScanStore;
use super::signatures::SignatureStore;
use super::webhooks::WebhookStore;
use super::BlobStore;
use crate::events::NewEvent;
use berth_oci::{Digest, Platform, RepoName};

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A manifest references a blob that is not linked into the repository.
    #[error("blob {0} is not in the repository")]
    MissingBlob(Digest),
    /// An index references a manifest that is not in the repository.
    #[error("manifest {0} is not in the repository")]
    MissingManifest(Digest),
    /// An immutable tag would be moved to another manifest or deleted; `rule` describes
    /// the rule that protects it.
    #[error("tag {tag} is immutable under {rule}")]
    TagImmutable { tag: String, rule: String },
    /// A unique name is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// The blob is being garbage-collected (or its bytes are gone): it cannot be linked;
    /// the client uploads it again.
    #[error("blob {0} is being garbage-collected")]
    BlobCollected(Digest),
    /// The link would take the namespace past its quota; nothing was linked.
    #[error("quota exceeded: the namespace would use {used} of {quota} bytes")]
    QuotaExceeded { used: u64, quota: u64 },
    /// The database's disk is full; the change was not made.
    #[error("the database's disk is full")]
    StorageFull,
    /// The database cannot be reached just now (restarting, failing over, out of
    /// connections); nothing was changed and the same request may be retried.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database failure: {0}")]
    Backend(String),
}

/// A resumable upload, persisted so it survives restarts and can continue on any node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub repo: RepoName,
    /// Bytes received so far.
    pub size: u64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The account that opened it (`None`: anonymous, or opened before owners were kept).
    pub owner: Option<String>,
}

/// What the metadata held when a session about to be completed was read, in the same read:
/// enough to refuse a blob the quota cannot hold, and to spare the link a look at the blob
/// store for bytes stored after it. One read instead of three on every blob push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkPrecheck {
    /// The namespace's bytes and quota, when it has a quota.
    pub quota: Option<Usage>,
    /// Whether the namespace holds the blob already (then it adds nothing to the usage).
    pub namespace_holds_blob: bool,
    /// The backend's view of its collector at the read, when the blob was not being
    /// collected then: bytes stored after this read are known to be there at link time
    /// unless a collector has acted since, which the backend can tell from it. `None`: the
    /// link looks at the blob store itself.
    pub collector_marks: Option<i64>,
}

impl LinkPrecheck {
    /// `Some((used, quota))` when linking `size` more bytes would take the namespace past
    /// its quota: the same answer as `UsageStore::quota_check`, from the precheck's read.
    pub fn over_quota(&self, size: u64) -> Option<(u64, u64)> {
        let usage = self.quota?;
        let quota = usage.quota.unwrap_or(u64::MAX);
        if self.namespace_holds_blob || usage.bytes.saturating_add(size) <= quota {
            return None;
        }
        Some((usage.bytes, quota))
    }
}

#[async_trait::async_trait]
pub trait UploadSessions: Send + Sync {
    /// Records a new session; false (and nothing recorded) when its owner already holds
    /// `max_per_owner` sessions. The count and the insert are one atomic step, so a burst of
    /// requests cannot pass the cap together.
    async fn create_upload_session(
        &self,
        session: &UploadSession,
        max_per_owner: Option<u32>,
    ) -> Result<bool, MetaError>;
    async fn upload_session(&self, id: &str) -> Result<Option<UploadSession>, MetaError>;
    /// The session, read together with the [`LinkPrecheck`] for completing it as `digest`
    /// in `repo` (its namespace's quota; the collector's state).
    async fn upload_session_to_complete(
        &self,
        id: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<(UploadSession, LinkPrecheck)>, MetaError>;
    /// Moves the session from `from` to `to` bytes; false if it was not at `from` (or is gone).
    async fn advance_upload_session(
        &self,
        id: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<bool, MetaError>;
    async fn remove_upload_session(&self, id: &str) -> Result<(), MetaError>;
    /// Sessions not touched since `before`, oldest first.
    async fn stale_upload_sessions(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError>;
    /// In one transaction: link the verified blob into the session's repository and end the
    /// session. Refused with `BlobCollected` (nothing changed) when the blob is doomed, or
    /// when `bytes` does not hold it, checked inside the transaction, so that a collector
    /// that deleted the bytes after they were committed cannot go unnoticed; refused with
    /// `QuotaExceeded` when the link would take the namespace past its quota. Records
    /// `quota.warning` when the link takes the namespace past 85 % of it.
    ///
    /// `stored_after`: the precheck read before the bytes were stored (and found stored),
    /// which lets a backend that can tell no collector acted since skip the look at `bytes`.
    async fn complete_upload_session(
        &self,
        id: &str,
        digest: &Digest,
        size: u64,
        now: i64,
        bytes: &dyn BlobStore,
        stored_after: Option<&LinkPrecheck>,
    ) -> Result<(), MetaError>;
}

#[async_trait::async_trait]
pub trait BlobLinks: Send + Sync {
    /// Records the blob and links it into `repo` (creating the repository, with its
    /// `repository.created` event). The caller guarantees the bytes are stored (imports and
    /// tests); refused with `BlobCollected` when the blob is doomed.
    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError>;
    /// The blob's size if it is linked into `repo`.
    async fn linked_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError>;
    /// Links `digest` from `from` into `repo` in one transaction, if `from` holds it and it is
    /// not doomed; returns its size, `None` when there is nothing to mount. Quotas as for
    /// [`UploadSessions::complete_upload_session`].
    async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<u64>, MetaError>;
    /// Removes the link; false if there was none.
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError>;
}

/// Everything needed to store a validated manifest in one transaction.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub repo: RepoName,
    pub digest: Digest,
    pub media_type: String,
    pub body: Vec<u8>,
    /// Config and layers; each must be linked into the repository.
    pub blobs: Vec<Digest>,
    /// Manifests of an index; each must be in the repository.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    /// The manifest's annotations as a JSON object, for referrer listings.
    pub annotations_json: Option<String>,
    /// The platform its image configuration names, stored with the manifest row.
    pub platform: ManifestPlatform,
    pub tags: Vec<String>,
    pub now: i64,
    /// Who pushes; named in the `repository.created` event when the push creates it.
    pub actor: Option<String>,
    /// Recorded in the push's transaction (the `manifest.pushed` event).
    pub events: Vec<NewEvent>,
}

/// What a push learned of an image manifest's platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestPlatform {
    /// An index, an artifact, or an image configuration naming no platform.
    None,
    Known(Platform),
    /// The configuration could not be read just now (a storage failure): the platform
    /// backfill reads it again at the next start.
    Unread,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub body: Vec<u8>,
}

/// One manifest whose `subject` is the digest asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations_json: Option<String>,
}

#[async_trait::async_trait]
pub trait Manifests: Send + Sync {
    /// Stores the manifest, links it into the repository, points its tags at it, records
    /// the push as the repository's latest and records its events (and `repository.created`
    /// when the push creates the repository), atomically.
    async fn put_manifest(&self, manifest: &NewManifest) -> Result<(), MetaError>;
    /// As [`Manifests::put_manifest`], for a manifest copied from a mirror's upstream: its
    /// blobs and children need not be in the repository yet (they are fetched when first
    /// asked for), but are recorded as its references all the same.
    async fn put_cached_manifest(&self, manifest: &NewManifest) -> Result<(), MetaError>;
    async fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &str,
    ) -> Result<Option<ManifestRecord>, MetaError>;
    async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>, MetaError>;
    /// Removes the manifest from the repository with every tag pointing at it, recording
    /// `manifest.deleted` (naming those tags) by `actor` in the same transaction.
    async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        actor: Option<&str>,
    ) -> Result<bool, MetaError>;
    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRecord>, MetaError>;
    /// Manifests (of any repository) whose platform has not been read: stored before
    /// platforms were recorded, or pushed while their configuration could not be read. In
    /// digest order after `after`, at most `limit`.
    async fn manifests_without_platform(
        &self,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ManifestRecord>, MetaError>;
    /// Records the platforms read for such manifests (None: they have none), in one
    /// transaction; a manifest whose platform a push recorded meanwhile is left alone.
    async fn record_platforms(
        &self,
        platforms: &[(Digest, Option<Platform>)],
    ) -> Result<(), MetaError>;
}

#[async_trait::async_trait]
pub trait Tags: Send + Sync {
    /// Tags of `repo` in lexical order after `last`, at most `limit`; None if the repository is unknown.
    async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, MetaError>;
    /// Removes the tag, recording `tag.deleted` by `actor` in the same transaction.
    async fn delete_tag(
        &self,
        repo: &RepoName,
        tag: &str,
        actor: Option<&str>,
    ) -> Result<bool, MetaError>;
}

#[async_trait::async_trait]
pub trait Repositories: Send + Sync {
    /// Repository names in lexical order after `last`, at most `limit`.
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError>;
    async fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetaError>;
}

/// A complete metadata backend.
pub trait MetaStore:
    UploadSessions
    + BlobLinks
    + Manifests
    + Tags
    + Repositories
    + IdentityStore
    + HubStore
    + EventLog
    + JobQueue
    + WebhookStore
    + Collection
    + UsageStore
    + LifecycleStore
    + super::RateLimitStore
    + super::ReplicationStore
    + SignatureStore
    + ScanStore
    + super::BuildStore
{
}

impl<T> MetaStore for T where
    T: UploadSessions
        + BlobLinks
        + Manifests
        + Tags
        + Repositories
        + IdentityStore
        + HubStore
        + EventLog
        + JobQueue
        + WebhookStore
        + Collection
        + UsageStore
        + LifecycleStore
        + super::RateLimitStore
        + super::ReplicationStore
        + SignatureStore
        + ScanStore
        + super::BuildStore
{
}
