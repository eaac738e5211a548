//! The remote ports: what replication asks of a remote registry it copies to, or imports
//! from (implemented over HTTP in `berth-outbound`). Errors are the cache's [`UpstreamError`],
//! which already tells an outage from a refusal.

use crate::mirror::{Upstream, UpstreamError};
use crate::ports::ByteStream;
use berth_oci::Digest;
use std::sync::Arc;

/// How a remote is reached: its URL and credentials (the password opened from its seal).
#[derive(Clone)]
pub struct RemoteSpec {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls_verify: bool,
}

impl std::fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSpec")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("tls_verify", &self.tls_verify)
            .finish_non_exhaustive()
    }
}

/// A manifest put: the digest the remote reports, and whether it said it recorded the
/// subject (`OCI-Subject`), i.e. whether it serves the referrers API for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPut {
    pub digest: Option<Digest>,
    pub subject_recorded: bool,
}

/// A manifest as the remote holds it.
#[derive(Debug, Clone)]
pub struct RemoteManifest {
    pub media_type: Option<String>,
    pub body: Vec<u8>,
}

/// A remote registry to copy to. `repo` is the name at the remote.
#[async_trait::async_trait]
pub trait Destination: Send + Sync {
    /// The digest `reference` (a tag or digest) resolves to there, if any (a `HEAD`).
    async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError>;
    /// The manifest itself (for the referrers tag fallback's index).
    async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<RemoteManifest>, UpstreamError>;
    /// The blob's size if the remote has it in `repo` (a `HEAD`).
    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, UpstreamError>;
    /// Links a blob the remote holds in `from` into `repo`; false when it did not.
    async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &Digest,
    ) -> Result<bool, UpstreamError>;
    /// Uploads a blob of `size` bytes; `open(start, len)` streams that part of it. The
    /// implementation decides how many requests it takes (one, or chunks).
    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        open: &(dyn BlobSource + '_),
    ) -> Result<(), UpstreamError>;
    /// Puts a manifest byte for byte under `reference` (a tag or its digest).
    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<ManifestPut, UpstreamError>;
    /// Deletes `reference` (a tag or digest); false when the remote did not have it.
    async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<bool, UpstreamError>;
}

/// Where a pushed blob's bytes come from: a part of a blob in Berth's store.
#[async_trait::async_trait]
pub trait BlobSource: Send + Sync {
    async fn open(&self, start: u64, len: u64) -> Result<ByteStream, UpstreamError>;
}

/// Makes clients for remotes: destinations of push rules, origins of pull rules.
pub trait Connector: Send + Sync {
    fn connect(&self, remote: &RemoteSpec) -> Result<Arc<dyn Destination>, String>;
    /// A client to import from; connectors that only push say so.
    fn connect_origin(&self, remote: &RemoteSpec) -> Result<Arc<dyn Origin>, String> {
        let _ = remote;
        Err("this connector cannot import from remote registries".to_owned())
    }
}

/// A remote registry to import from (pull rules): the cache's [`Upstream`] reads, plus
/// listing what the remote holds. `Ok(None)` means the remote said `404`.
#[async_trait::async_trait]
pub trait Origin: Upstream {
    /// One page of the remote's repositories (`_catalog`), in its order, after `last`.
    async fn catalog_page(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, UpstreamError>;
    /// One page of a repository's tags, after `last`; None when the repository is unknown.
    async fn tags_page(
        &self,
        repo: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, UpstreamError>;
    /// The manifests whose subject is `digest` (the referrers API); None when the remote
    /// does not serve that API (then the `sha256-HEX` fallback tag is read instead).
    async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<Digest>>, UpstreamError>;
}
