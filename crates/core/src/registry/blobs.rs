//! Blob reads and deletes within a repository.

use super::{store_error, ChangedBy, Registry};
use crate::error::{Error, Result};
use crate::ports::{ByteStream, StoreError};
use berth_oci::{ByteRange, Digest, RangeRequest, RepoName};

/// A blob about to be served: its size, the range sent, and the bytes (absent for HEAD).
pub struct BlobContent {
    pub size: u64,
    pub range: Option<ByteRange>,
    pub body: Option<ByteStream>,
}

impl Registry {
    /// The size of `digest` if it is in `repo`.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        self.meta
            .linked_blob_size(repo, digest)
            .await?
            .ok_or_else(|| Error::BlobUnknown(digest.clone()))
    }

    /// Where a client may fetch `digest` of `repo` directly (a presigned URL of an object
    /// store configured to redirect), or `None`: serve it with [`Registry::read_blob`].
    pub async fn blob_location(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        let location = self
            .blobs
            .blob_location(digest)
            .await
            .map_err(|e| store_error("locate blob", e))?;
        if location.is_some() {
            // Signing needs no request to the store; the link check does the access part.
            self.blob_size(repo, digest).await?;
        }
        Ok(location)
    }

    /// Opens a blob of `repo` for reading, honouring a `Range` request.
    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<BlobContent> {
        let size = self.blob_size(repo, digest).await?;
        let range = range
            .map(|r| r.resolve(size))
            .transpose()
            .map_err(|_| Error::RangeNotSatisfiable { size })?;
        let body = if with_body {
            match self.blobs.read_blob(digest, range).await {
                Ok(stream) => Some(stream),
                Err(StoreError::NotFound) => {
                    tracing::error!(%digest, repo = %repo, "blob is linked but its bytes are missing");
                    return Err(Error::BlobUnknown(digest.clone()));
                }
                Err(err) => return Err(store_error("read blob", err)),
            }
        } else {
            None
        };
        Ok(BlobContent { size, range, body })
    }

    /// Removes the blob from `repo`; its bytes stay until garbage collection finds them unused.
    pub async fn delete_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        by: ChangedBy<'_>,
    ) -> Result<()> {
        if self.meta.unlink_blob(repo, digest).await? {
            self.audit(by, "blob.delete", format!("{repo}@{digest}"))
                .await;
            Ok(())
        } else {
            Err(Error::BlobUnknown(digest.clone()))
        }
    }
}
