//! Manifests through a mirror: served from the cache, tags checked again with a `HEAD` after
//! the mirror's ttl, fetched once for concurrent misses, stored byte for byte under their
//! verified digest, and served stale (with a warning) when the upstream fails.

use super::{upstream_failure, MirrorTarget, Mirrors, UpstreamError, MAX_VALIDATED};
use crate::error::{Error, Result};
use crate::ports::{ManifestPlatform, ManifestRecord, NewManifest};
use berth_oci::manifest::{ManifestError, MAX_MANIFEST_BYTES};
use berth_oci::{Digest, ParsedManifest, Reference, Tag};

/// Whether a cached answer is as the upstream has it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Fetched just now, checked within the ttl, or pulled by digest.
    Fresh,
    /// Served from the cache because the upstream could not confirm it; says why.
    Stale(String),
}

/// A manifest served through a mirror.
#[derive(Debug, Clone)]
pub struct MirrorManifest {
    pub record: ManifestRecord,
    pub freshness: Freshness,
}

/// Why a manifest could not be fetched; cloned to every caller of a shared fetch.
#[derive(Debug, Clone)]
pub(crate) enum FetchFailure {
    NotFound,
    Upstream(UpstreamError),
    /// Wrong digest, not a manifest, too large: nothing was cached.
    Corrupt(String),
    Store(String),
}

pub(crate) type Fetched = std::result::Result<ManifestRecord, FetchFailure>;

impl Mirrors {
    /// A manifest of a mirrored repository, by tag or digest.
    pub async fn manifest(
        &self,
        target: &MirrorTarget,
        reference: &Reference,
    ) -> Result<MirrorManifest> {
        let meta = &self.inner.meta;
        let counters = self.counters(target);
        let fresh = |record| MirrorManifest {
            record,
            freshness: Freshness::Fresh,
        };
        let tag = match reference {
            Reference::Digest(digest) => {
                // Content named by digest never changes: no revalidation.
                if let Some(record) = meta.manifest_by_digest(&target.local, digest).await? {
                    counters.hit();
                    return Ok(fresh(record));
                }
                let fetched = self.fetch_manifest(target, &digest.to_string(), None).await;
                return match fetched {
                    Ok(record) => {
                        counters.miss();
                        Ok(fresh(record))
                    }
                    Err(failure) => Err(self.failure(target, failure, reference)),
                };
            }
            Reference::Tag(tag) => tag,
        };
        let Some(cached) = meta.manifest_by_tag(&target.local, tag.as_str()).await? else {
            return match self.fetch_manifest(target, tag.as_str(), Some(tag)).await {
                Ok(record) => {
                    counters.miss();
                    Ok(fresh(record))
                }
                Err(failure) => Err(self.failure(target, failure, reference)),
            };
        };
        if self.checked_lately(target, tag) {
            counters.hit();
            return Ok(fresh(cached));
        }
        let stale = |why: String| {
            counters.stale();
            tracing::warn!(repo = %target.local, %tag, reason = %why, "serving a cached tag the upstream could not confirm");
            MirrorManifest {
                record: cached.clone(),
                freshness: Freshness::Stale(why),
            }
        };
        let upstream = self.upstream(target);
        let head = self
            .timed(target, upstream.head_manifest(&target.remote, tag.as_str()))
            .await;
        match head {
            Ok(Some(digest)) if digest == cached.digest => {
                self.mark_checked(target, tag);
                counters.hit();
                return Ok(fresh(cached));
            }
            Ok(None) => return Ok(stale("the tag is no longer found upstream".to_owned())),
            Err(err) if err.is_outage() => return Ok(stale(err.to_string())),
            // Moved upstream, or a HEAD without a digest: fetch it.
            Ok(Some(_)) | Err(_) => {}
        }
        match self.fetch_manifest(target, tag.as_str(), Some(tag)).await {
            Ok(record) => {
                counters.miss();
                Ok(fresh(record))
            }
            Err(FetchFailure::Store(msg)) => Err(Error::Internal(msg)),
            Err(FetchFailure::NotFound) => {
                Ok(stale("the tag is no longer found upstream".to_owned()))
            }
            Err(FetchFailure::Upstream(err)) => Ok(stale(err.to_string())),
            Err(FetchFailure::Corrupt(why)) => Ok(stale(why)),
        }
    }

    fn checked_lately(&self, target: &MirrorTarget, tag: &Tag) -> bool {
        let ttl_ms = i64::try_from(self.config(target).ttl.as_millis()).unwrap_or(i64::MAX);
        let now = self.inner.clock.now_ms();
        let validated = self
            .inner
            .validated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        validated
            .get(&(target.local.to_string(), tag.to_string()))
            .is_some_and(|at| now.saturating_sub(*at) < ttl_ms)
    }

    fn mark_checked(&self, target: &MirrorTarget, tag: &Tag) {
        let now = self.inner.clock.now_ms();
        let mut validated = self
            .inner
            .validated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if validated.len() >= MAX_VALIDATED {
            validated.clear();
        }
        validated.insert((target.local.to_string(), tag.to_string()), now);
    }

    /// One upstream `GET` per (repository, reference) at a time, however many ask.
    async fn fetch_manifest(
        &self,
        target: &MirrorTarget,
        reference: &str,
        tag: Option<&Tag>,
    ) -> Fetched {
        let key = (
            target.mirror,
            target.local.to_string(),
            reference.to_owned(),
        );
        self.inner
            .manifest_flights
            .run(key, self.fetch_and_store(target, reference, tag))
            .await
    }

    async fn fetch_and_store(
        &self,
        target: &MirrorTarget,
        reference: &str,
        tag: Option<&Tag>,
    ) -> Fetched {
        let counters = self.counters(target);
        let got = self
            .timed(
                target,
                self.upstream(target)
                    .get_manifest(&target.remote, reference),
            )
            .await;
        let manifest = match got {
            Ok(Some(manifest)) => manifest,
            Ok(None) => return Err(FetchFailure::NotFound),
            Err(err @ UpstreamError::TooLarge(_)) => {
                counters.corrupt();
                return Err(FetchFailure::Corrupt(err.to_string()));
            }
            Err(err) => return Err(FetchFailure::Upstream(err)),
        };
        let corrupt = |why: String| {
            counters.corrupt();
            tracing::warn!(repo = %target.local, reference, reason = %why, "refused an upstream manifest");
            FetchFailure::Corrupt(why)
        };
        if manifest.body.len() > MAX_MANIFEST_BYTES {
            return Err(corrupt(format!(
                "upstream manifest is larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let expected: Option<Digest> = reference.parse().ok().or(manifest.digest.clone());
        let algorithm = expected
            .as_ref()
            .map_or(berth_oci::Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, &manifest.body);
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(corrupt(format!(
                "upstream manifest has digest {digest}, not {expected}"
            )));
        }
        let parsed = ParsedManifest::parse(manifest.media_type.as_deref(), &manifest.body)
            .map_err(|e| match e {
                ManifestError::Schema1 => corrupt(format!("upstream manifest: {e}")),
                other => corrupt(format!("upstream manifest is invalid: {other}")),
            })?;
        let annotations_json = parsed
            .annotations
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|a| serde_json::Value::Object(a.clone()).to_string());
        let record = NewManifest {
            repo: target.local.clone(),
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            blobs: parsed.required_blobs().map(|d| d.digest.clone()).collect(),
            children: parsed.manifests.iter().map(|d| d.digest.clone()).collect(),
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
            artifact_type: parsed.effective_artifact_type().map(str::to_owned),
            annotations_json,
            // Its configuration is fetched when a client asks for it, if ever.
            platform: ManifestPlatform::None,
            tags: tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
            now: self.inner.clock.now_unix(),
            actor: None,
            // A copy, not a push: no `manifest.pushed`, so webhooks stay quiet.
            events: Vec::new(),
            body: manifest.body,
        };
        if let Err(err) = self.inner.meta.put_cached_manifest(&record).await {
            tracing::error!(repo = %target.local, error = %err, "cannot cache an upstream manifest");
            return Err(FetchFailure::Store(format!("caching a manifest: {err}")));
        }
        if let Some(tag) = tag {
            self.mark_checked(target, tag);
        }
        Ok(ManifestRecord {
            digest,
            media_type: record.media_type,
            body: record.body,
        })
    }

    /// The error a client sees when nothing is cached.
    fn failure(
        &self,
        target: &MirrorTarget,
        failure: FetchFailure,
        reference: &Reference,
    ) -> Error {
        match failure {
            FetchFailure::NotFound => Error::ManifestUnknown(reference.to_string()),
            FetchFailure::Upstream(err) => {
                tracing::warn!(repo = %target.local, %reference, error = %err, "upstream failed and nothing is cached");
                upstream_failure(&err, "fetching the manifest from the upstream")
            }
            FetchFailure::Corrupt(why) => Error::Upstream(why),
            FetchFailure::Store(msg) => Error::Internal(msg),
        }
    }
}
