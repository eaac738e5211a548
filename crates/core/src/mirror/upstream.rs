//! The upstream port: what the pull-through cache asks of a remote registry (implemented
//! over HTTP in `berth-outbound`), and how its failures are told apart.

use crate::ports::ByteStream;
use berth_oci::Digest;

/// Why an upstream request did not give an answer the cache can use.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// No connection, a reset, a TLS failure: the upstream is down or unreachable.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    #[error("upstream did not answer within {0} seconds")]
    Timeout(u64),
    /// `429`: the upstream rate-limits us.
    #[error("upstream rate limit reached (429)")]
    Throttled,
    /// A `5xx`.
    #[error("upstream failed with status {0}")]
    Server(u16),
    /// `401`/`403` even with the configured credentials.
    #[error("upstream refused access (status {0})")]
    Denied(u16),
    /// A redirect or token realm to an address Berth may not call.
    #[error("upstream redirect refused: {0}")]
    Refused(String),
    /// A manifest over the size pushes are capped at.
    #[error("upstream manifest is larger than {0} bytes")]
    TooLarge(usize),
    /// Anything else the upstream sent that the cache cannot use (an odd status, a bad
    /// header).
    #[error("upstream answer unusable: {0}")]
    Invalid(String),
}

impl UpstreamError {
    /// Whether the cache should fall back to what it holds (the upstream is unwell), as
    /// opposed to a definite answer about the content.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unreachable(_)
                | UpstreamError::Timeout(_)
                | UpstreamError::Throttled
                | UpstreamError::Server(_)
                | UpstreamError::Denied(_)
                | UpstreamError::Refused(_)
        )
    }
}

/// A manifest as the upstream sent it.
#[derive(Debug, Clone)]
pub struct UpstreamManifest {
    /// The `Content-Type`.
    pub media_type: Option<String>,
    /// The exact bytes (at most `MAX_MANIFEST_BYTES`).
    pub body: Vec<u8>,
    /// The `Docker-Content-Digest` header, when sent (and well-formed).
    pub digest: Option<Digest>,
}

/// A blob download under way.
pub struct UpstreamBlob {
    /// The `Content-Length`, when sent.
    pub size: Option<u64>,
    pub body: ByteStream,
}

/// A remote registry, reached with the mirror's credentials. `repo` is the repository's
/// name at the upstream (`library/nginx`); `reference` a tag or digest. `Ok(None)` means the
/// upstream said `404`.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync {
    /// The digest a tag points at now (a `HEAD`, which Docker Hub does not count).
    async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError>;

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<UpstreamManifest>, UpstreamError>;

    /// The blob's size, without its bytes.
    async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, UpstreamError>;

    /// Starts downloading a blob (following redirects within the address policy).
    async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, UpstreamError>;
}
