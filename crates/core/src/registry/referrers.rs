//! The referrers API: manifests whose `subject` is a given digest.

use super::Registry;
use crate::error::Result;
use berth_oci::{Digest, RepoName};

/// One entry of a referrers index.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Registry {
    /// Referrers of `subject` in `repo`; empty (never an error) when there are none.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let records = self.meta.referrers(repo, subject, artifact_type).await?;
        Ok(records
            .into_iter()
            .map(|r| Referrer {
                digest: r.digest,
                media_type: r.media_type,
                size: r.size,
                artifact_type: r.artifact_type,
                annotations: r
                    .annotations_json
                    .and_then(|json| serde_json::from_str(&json).ok()),
            })
            .collect())
    }
}
