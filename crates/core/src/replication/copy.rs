//! The executor: copies tags from Berth's store to a destination byte for byte, with the
//! children of indexes, their referrers (referrers API and cosign's tag fallback) and only
//! the blobs the destination lacks (checked with `HEAD`, mounted from a repository this run
//! already filled, pushed otherwise). It reads the store directly, so its reads are never
//! counted as pulls.

use super::destination::{BlobSource, Destination};
use super::pacing::{paced, SharedPacer};
use super::rule::fallback_tags;
use crate::mirror::UpstreamError;
use crate::ports::{BlobStore, ByteStream, ManifestRecord, MetaError, MetaStore};
use berth_oci::manifest::{ParsedManifest, OCI_INDEX};
use berth_oci::range::ByteRange;
use berth_oci::{Digest, RepoName};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How deep referrers of referrers are followed (a signature of an SBOM of an image).
const MAX_REFERRER_DEPTH: u32 = 3;

/// What became of one item (a tag, a deletion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// `SOURCE_REPO:TAG -> DESTINATION_REPO:TAG`.
    pub item: String,
    /// `copied`, `skipped`, `deleted` or `failed`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a run did, item by item and in blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub blobs_copied: u64,
    pub blobs_mounted: u64,
    pub blobs_skipped: u64,
    pub bytes_copied: u64,
    pub items: Vec<ItemResult>,
}

impl Tally {
    pub(super) fn record(&mut self, item: String, outcome: &str, reason: Option<String>) {
        match outcome {
            "failed" => self.failed += 1,
            "skipped" => self.skipped += 1,
            _ => self.copied += 1,
        }
        self.items.push(ItemResult {
            item,
            outcome: outcome.to_owned(),
            reason,
        });
    }
}

/// Why an item could not be copied.
#[derive(Debug)]
enum CopyError {
    Destination(UpstreamError),
    Source(String),
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Destination(err) => write!(f, "destination: {}", describe(err)),
            CopyError::Source(why) => write!(f, "source: {why}"),
        }
    }
}

/// The destination's error in replication's words (the cache's say "upstream").
pub(super) fn describe(err: &UpstreamError) -> String {
    err.to_string().replacen("upstream ", "", 1)
}

impl From<UpstreamError> for CopyError {
    fn from(err: UpstreamError) -> CopyError {
        CopyError::Destination(err)
    }
}

impl From<MetaError> for CopyError {
    fn from(err: MetaError) -> CopyError {
        CopyError::Source(err.to_string())
    }
}

/// One run's copier.
pub struct Copier<'a> {
    meta: &'a dyn MetaStore,
    blobs: &'a dyn BlobStore,
    dest: &'a dyn Destination,
    /// Blobs known to be at the destination, with a repository holding them (to mount from).
    held: HashMap<Digest, String>,
    /// The rule's bandwidth limit, shared by the run's blob pushes.
    pacer: Option<SharedPacer>,
    pub tally: Tally,
}

/// A blob in Berth's store, read in parts for a push.
struct StoredBlob<'a> {
    blobs: &'a dyn BlobStore,
    digest: &'a Digest,
    size: u64,
    pacer: Option<SharedPacer>,
}

#[async_trait::async_trait]
impl BlobSource for StoredBlob<'_> {
    async fn open(&self, start: u64, len: u64) -> Result<ByteStream, UpstreamError> {
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let range = (start != 0 || len != self.size).then(|| ByteRange {
            start,
            end: start + len - 1,
        });
        let stream = self
            .blobs
            .read_blob(self.digest, range)
            .await
            .map_err(|e| UpstreamError::Invalid(format!("reading blob {}: {e}", self.digest)))?;
        Ok(paced(stream, self.pacer.clone()))
    }
}

impl<'a> Copier<'a> {
    pub fn new(
        meta: &'a dyn MetaStore,
        blobs: &'a dyn BlobStore,
        dest: &'a dyn Destination,
    ) -> Copier<'a> {
        Copier {
            meta,
            blobs,
            dest,
            held: HashMap::new(),
            pacer: None,
            tally: Tally::default(),
        }
    }

    /// The same copier, holding blob pushes to the pacer's rate.
    pub fn with_pacer(self, pacer: Option<SharedPacer>) -> Copier<'a> {
        Copier { pacer, ..self }
    }

    /// Copies `source:tag` to `target:tag`, recording the item.
    pub async fn copy_tag(&mut self, source: &RepoName, target: &str, tag: &str) {
        let item = format!("{source}:{tag} -> {target}:{tag}");
        match self.copy_tag_inner(source, target, tag).await {
            Ok(Some(true)) => self.tally.record(item, "copied", None),
            Ok(Some(false)) => self
                .tally
                .record(item, "skipped", Some("up to date".to_owned())),
            Ok(None) => self.tally.record(
                item,
                "skipped",
                Some("the tag is no longer in the source".to_owned()),
            ),
            Err(err) => self.tally.record(item, "failed", Some(err.to_string())),
        }
    }

    /// Deletes `target:tag` at the destination, recording the item.
    pub async fn delete_tag(&mut self, target: &str, tag: &str) {
        let item = format!("delete {target}:{tag}");
        match self.delete_inner(target, tag).await {
            Ok(true) => self.tally.record(item, "deleted", None),
            Ok(false) => {
                self.tally
                    .record(item, "skipped", Some("not at the destination".to_owned()))
            }
            Err(err) => self.tally.record(item, "failed", Some(err.to_string())),
        }
    }

    async fn delete_inner(&mut self, target: &str, tag: &str) -> Result<bool, CopyError> {
        match self.dest.delete_manifest(target, tag).await {
            Ok(found) => Ok(found),
            // Registries that cannot delete a tag by name (Distribution 2.x) delete the
            // manifest it points at, by digest.
            Err(UpstreamError::Invalid(_)) => match self.dest.manifest_digest(target, tag).await? {
                None => Ok(false),
                Some(digest) => Ok(self
                    .dest
                    .delete_manifest(target, &digest.to_string())
                    .await?),
            },
            Err(other) => Err(other.into()),
        }
    }

    /// Some(true) when something was put, Some(false) when all was there already, None when
    /// the tag is gone from the source.
    async fn copy_tag_inner(
        &mut self,
        source: &RepoName,
        target: &str,
        tag: &str,
    ) -> Result<Option<bool>, CopyError> {
        let Some(record) = self.meta.manifest_by_tag(source, tag).await? else {
            return Ok(None);
        };
        let mut changed = false;
        if self.dest.manifest_digest(target, tag).await?.as_ref() != Some(&record.digest) {
            self.copy_contents(source, target, &record).await?;
            self.dest
                .put_manifest(target, tag, &record.media_type, &record.body)
                .await?;
            changed = true;
        }
        changed |= self
            .copy_attachments(source, target, &record.digest, 0)
            .await?;
        Ok(Some(changed))
    }

    /// Everything a manifest references: its blobs, and for an index its child manifests
    /// (each put by digest, with its own contents first).
    async fn copy_contents(
        &mut self,
        source: &RepoName,
        target: &str,
        record: &ManifestRecord,
    ) -> Result<(), CopyError> {
        let parsed = ParsedManifest::parse(Some(&record.media_type), &record.body)
            .map_err(|e| CopyError::Source(format!("manifest {}: {e}", record.digest)))?;
        for child in &parsed.manifests {
            self.copy_by_digest(source, target, &child.digest).await?;
        }
        for blob in parsed.required_blobs() {
            self.copy_blob(target, &blob.digest, blob.size).await?;
        }
        Ok(())
    }

    /// Puts the manifest `digest` (with its contents) unless the destination has it; true
    /// when it was put.
    async fn copy_by_digest(
        &mut self,
        source: &RepoName,
        target: &str,
        digest: &Digest,
    ) -> Result<bool, CopyError> {
        let reference = digest.to_string();
        if self
            .dest
            .manifest_digest(target, &reference)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let record = self
            .meta
            .manifest_by_digest(source, digest)
            .await?
            .ok_or_else(|| CopyError::Source(format!("manifest {digest} is not in {source}")))?;
        Box::pin(self.copy_contents(source, target, &record)).await?;
        let put = self
            .dest
            .put_manifest(target, &reference, &record.media_type, &record.body)
            .await?;
        if let Ok(parsed) = ParsedManifest::parse(Some(&record.media_type), &record.body) {
            if let (Some(subject), false) = (parsed.subject, put.subject_recorded) {
                self.add_to_fallback_index(target, &subject.digest, &record, &parsed.artifact_type)
                    .await?;
            }
        }
        Ok(true)
    }

    /// Referrers of `digest` (from the referrers API of the store) and cosign's fallback
    /// tags, with their own referrers; true when something was put.
    async fn copy_attachments(
        &mut self,
        source: &RepoName,
        target: &str,
        digest: &Digest,
        depth: u32,
    ) -> Result<bool, CopyError> {
        if depth > MAX_REFERRER_DEPTH {
            return Ok(false);
        }
        let mut changed = false;
        for referrer in self.meta.referrers(source, digest, None).await? {
            changed |= Box::pin(self.copy_by_digest(source, target, &referrer.digest)).await?;
            changed |= Box::pin(self.copy_attachments(source, target, &referrer.digest, depth + 1))
                .await?;
        }
        for tag in fallback_tags(digest) {
            let Some(record) = self.meta.manifest_by_tag(source, &tag).await? else {
                continue;
            };
            if self.dest.manifest_digest(target, &tag).await?.as_ref() == Some(&record.digest) {
                continue;
            }
            Box::pin(self.copy_contents(source, target, &record)).await?;
            self.dest
                .put_manifest(target, &tag, &record.media_type, &record.body)
                .await?;
            changed = true;
        }
        Ok(changed)
    }

    /// For a destination without the referrers API: adds the referrer to the index under the
    /// subject's fallback tag (`sha256-HEX`), as the distribution spec tells clients to.
    async fn add_to_fallback_index(
        &mut self,
        target: &str,
        subject: &Digest,
        referrer: &ManifestRecord,
        artifact_type: &Option<String>,
    ) -> Result<(), CopyError> {
        let tag = subject.to_string().replacen(':', "-", 1);
        let mut manifests: Vec<serde_json::Value> = match self.dest.manifest(target, &tag).await? {
            Some(existing) => serde_json::from_slice::<serde_json::Value>(&existing.body)
                .ok()
                .and_then(|v| v.get("manifests").and_then(|m| m.as_array()).cloned())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let digest = referrer.digest.to_string();
        if manifests
            .iter()
            .any(|m| m.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str()))
        {
            return Ok(());
        }
        let mut descriptor = serde_json::json!({
            "mediaType": referrer.media_type,
            "digest": digest,
            "size": referrer.body.len(),
        });
        if let Some(kind) = artifact_type {
            descriptor["artifactType"] = serde_json::Value::String(kind.clone());
        }
        manifests.push(descriptor);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        });
        let body = serde_json::to_vec(&index).unwrap_or_default();
        self.dest
            .put_manifest(target, &tag, OCI_INDEX, &body)
            .await?;
        Ok(())
    }

    async fn copy_blob(
        &mut self,
        target: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), CopyError> {
        if self.dest.blob_size(target, digest).await?.is_some() {
            self.tally.blobs_skipped += 1;
            self.held
                .entry(digest.clone())
                .or_insert_with(|| target.to_owned());
            return Ok(());
        }
        if let Some(from) = self
            .held
            .get(digest)
            .filter(|from| *from != target)
            .cloned()
        {
            if self.dest.mount_blob(target, &from, digest).await? {
                self.tally.blobs_mounted += 1;
                return Ok(());
            }
        }
        let stored = self
            .blobs
            .blob_size(digest)
            .await
            .map_err(|e| CopyError::Source(format!("blob {digest}: {e}")))?
            .ok_or_else(|| CopyError::Source(format!("blob {digest} is not stored")))?;
        if stored != size {
            return Err(CopyError::Source(format!(
                "blob {digest} holds {stored} bytes, its manifest says {size}"
            )));
        }
        let source = StoredBlob {
            blobs: self.blobs,
            digest,
            size,
            pacer: self.pacer.clone(),
        };
        self.dest.push_blob(target, digest, size, &source).await?;
        self.tally.blobs_copied += 1;
        self.tally.bytes_copied += size;
        self.held.insert(digest.clone(), target.to_owned());
        Ok(())
    }
}
