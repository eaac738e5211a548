//! The content lifecycle ports: what garbage collection and usage accounting need of the
//! metadata store.
//!
//! Contract for every backend (the collector's safety rests on it, see `crate::gc`):
//! - A blob is *doomed* once [`Collection::mark_blobs`] marked it. Marking is one
//!   transaction that re-checks, for each blob, that no manifest references it and that no
//!   repository linked it after the cutoff, and removes its (stale) repository links.
//! - No linking path ([`super::UploadSessions::complete_upload_session`],
//!   [`super::BlobLinks::mount_blob`], [`super::BlobLinks::link_blob`]) links a doomed blob,
//!   and a manifest push checks links, which a doomed blob no longer has.
//! - A doomed blob's row is dropped only by [`Collection::drop_doomed_blobs`], which the
//!   collector calls after the bytes are gone; a mark is never taken back.
//! - Usage counts change in the transaction that links or unlinks.

use super::meta::MetaError;
use berth_oci::{Digest, RepoName};

type Result<T> = std::result::Result<T, MetaError>;

/// One window of the blob table scanned for garbage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CandidateWindow {
    /// The last digest the window covered (`None`: the table is exhausted).
    pub last: Option<String>,
    /// Blobs in the window that looked collectable, with their sizes.
    pub candidates: Vec<(Digest, u64)>,
}

#[async_trait::async_trait]
pub trait Collection: Send + Sync {
    /// Doomed blobs (marked by a run that has not dropped them yet), at most `limit`.
    async fn doomed_blobs(&self, limit: u32) -> Result<Vec<(Digest, u64)>>;
    /// Looks at the next `window` blob rows after `after` (digest order) and returns those
    /// not doomed, not referenced by any manifest, created at or before `cutoff` and linked
    /// into no repository after it. A read: nothing is marked.
    async fn collectable_blobs(
        &self,
        after: Option<&str>,
        window: u32,
        cutoff: i64,
    ) -> Result<CandidateWindow>;
    /// Marks, in one transaction, those of `digests` still collectable (as above) and drops
    /// their repository links; returns the ones marked with their sizes.
    async fn mark_blobs(
        &self,
        digests: &[Digest],
        cutoff: i64,
        now: i64,
    ) -> Result<Vec<(Digest, u64)>>;
    /// Removes the rows of doomed blobs whose bytes are gone.
    async fn drop_doomed_blobs(&self, digests: &[Digest]) -> Result<()>;
    /// Manifests no repository holds and no stored index lists, at most `limit`, after
    /// `after` in digest order (a read).
    async fn orphan_manifests(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
    /// Deletes those of `digests` that are still orphans, in one transaction; returns how
    /// many went (their blob and child references go with them).
    async fn delete_orphan_manifests(&self, digests: &[String]) -> Result<u64>;
    /// How many blobs are doomed, and their bytes (what a run finishes first).
    async fn doomed_totals(&self) -> Result<(u64, u64)>;
    /// The manifests that deleting the orphans `gone` would orphan in turn: children of
    /// `gone`, not in it, that no repository holds and that only manifests of `gone` list.
    async fn orphaned_children(&self, gone: &[String]) -> Result<Vec<String>>;
    /// The blobs that only manifests of `gone` reference and that would be collectable once
    /// those are deleted (not doomed, created at or before `cutoff`, linked into no
    /// repository after it). A read, for the dry run.
    async fn blobs_only_in(&self, gone: &[String], cutoff: i64) -> Result<Vec<(Digest, u64)>>;
    /// Records bytes stored under `digest` that nothing links (a refused upload), so the
    /// collector reclaims them at its next run.
    async fn abandon_blob(&self, digest: &Digest, size: u64) -> Result<()>;
}

/// Space a namespace uses and may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    /// `None`: no limit.
    pub quota: Option<u64>,
}

/// What a recount corrected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageRepair {
    /// Repository and namespace totals whose stored value was wrong.
    pub corrected: u64,
}

#[async_trait::async_trait]
pub trait UsageStore: Send + Sync {
    /// The namespace's usage (zero bytes when it holds nothing) and quota.
    async fn namespace_usage(&self, namespace: &str) -> Result<Usage>;
    /// Bytes linked into the repository; `None` when it does not exist.
    async fn repository_usage(&self, repo: &RepoName) -> Result<Option<u64>>;
    /// Sets (or with `None` lifts) the namespace's quota.
    async fn set_quota(&self, namespace: &str, quota: Option<u64>) -> Result<()>;
    /// The quota namespaces created from now on start with.
    async fn set_default_quota(&self, quota: Option<u64>) -> Result<()>;
    /// Whether linking `digest` (of `size` bytes) into `repo` would take its namespace past
    /// its quota: `Some((bytes after, quota))` if so. A blob the namespace already holds
    /// adds nothing. A read, for refusing before bytes are stored; the link enforces it.
    async fn quota_check(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<(u64, u64)>>;
    /// Recounts every total from the links, in one transaction, and fixes what was off.
    async fn recompute_usage(&self) -> Result<UsageRepair>;
}
