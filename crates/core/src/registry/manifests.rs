//! Manifest push, pull and delete: validation, byte-exact storage, tags.

use super::platforms::read_platform;
use super::{ChangedBy, Registry};
use crate::error::{Error, Result};
use crate::events::{data_of, EventKind, ManifestPushedData, NewEvent};
use crate::ports::{ManifestPlatform, ManifestRecord, NewManifest};
use crate::time::now_unix;
use berth_oci::manifest::{ManifestError, MAX_MANIFEST_BYTES};
use berth_oci::{Digest, ParsedManifest, Platform, Reference, RepoName, Tag};

/// A manifest push as the client sent it.
pub struct PutManifest<'a> {
    pub repo: &'a RepoName,
    pub reference: &'a Reference,
    /// Extra tags (`?tag=`) to point at the manifest.
    pub extra_tags: &'a [Tag],
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Who pushes: the event's `pusher`.
    pub by: ChangedBy<'a>,
}

/// What a successful push tells the client.
#[derive(Debug, Clone)]
pub struct ManifestPushed {
    pub digest: Digest,
    pub subject: Option<Digest>,
}

impl Registry {
    pub async fn put_manifest(&self, put: PutManifest<'_>) -> Result<ManifestPushed> {
        if put.body.len() > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestTooLarge {
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let parsed = ParsedManifest::parse(put.content_type, put.body).map_err(|e| match e {
            ManifestError::Schema1 => Error::Unsupported(e.to_string()),
            other => Error::ManifestInvalid(other.to_string()),
        })?;
        let mut tags: Vec<String> = put.extra_tags.iter().map(|t| t.to_string()).collect();
        let digest = match put.reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), put.body);
                if &actual != expected {
                    return Err(Error::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(tag) => {
                tags.push(tag.to_string());
                Digest::sha256_of(put.body)
            }
        };
        tags.sort();
        tags.dedup();
        let annotations_json = parsed
            .annotations
            .as_ref()
            .filter(|a| !a.is_empty())
            .map(|a| serde_json::Value::Object(a.clone()).to_string());
        // One small read for an image (its configuration), stored in the same transaction.
        let platform = read_platform(&*self.blobs, &parsed).await;
        let event = pushed_event(&put, &parsed, &digest, &tags, &platform);
        let record = NewManifest {
            repo: put.repo.clone(),
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            body: put.body.to_vec(),
            blobs: parsed.required_blobs().map(|d| d.digest.clone()).collect(),
            children: parsed.manifests.iter().map(|d| d.digest.clone()).collect(),
            subject: parsed.subject.as_ref().map(|s| s.digest.clone()),
            artifact_type: parsed.effective_artifact_type().map(str::to_owned),
            annotations_json,
            platform,
            tags,
            now: now_unix(),
            actor: put.by.actor.map(str::to_owned),
            events: vec![event],
        };
        self.meta.put_manifest(&record).await?;
        self.wake.wake();
        Ok(ManifestPushed {
            digest,
            subject: record.subject,
        })
    }

    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<ManifestRecord> {
        let found = match reference {
            Reference::Tag(tag) => self.meta.manifest_by_tag(repo, tag.as_str()).await?,
            Reference::Digest(digest) => self.meta.manifest_by_digest(repo, digest).await?,
        };
        match found {
            Some(record) => Ok(record),
            None => Err(self.missing_manifest(repo, reference).await?),
        }
    }

    /// Deletes a tag (the manifest stays) or, by digest, the manifest with all its tags.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        by: ChangedBy<'_>,
    ) -> Result<()> {
        let (deleted, action, target) = match reference {
            Reference::Tag(tag) => (
                self.meta.delete_tag(repo, tag.as_str(), by.actor).await?,
                "tag.delete",
                format!("{repo}:{tag}"),
            ),
            Reference::Digest(digest) => (
                self.meta.delete_manifest(repo, digest, by.actor).await?,
                "manifest.delete",
                format!("{repo}@{digest}"),
            ),
        };
        if deleted {
            self.wake.wake();
            self.audit(by, action, target).await;
            Ok(())
        } else {
            Err(self.missing_manifest(repo, reference).await?)
        }
    }

    async fn missing_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<Error> {
        Ok(if self.meta.repository_exists(repo).await? {
            Error::ManifestUnknown(reference.to_string())
        } else {
            Error::NameUnknown(repo.clone())
        })
    }
}

/// The `manifest.pushed` event of a push: what a receiver needs to pull exactly this image.
fn pushed_event(
    put: &PutManifest<'_>,
    parsed: &ParsedManifest,
    digest: &Digest,
    tags: &[String],
    platform: &ManifestPlatform,
) -> NewEvent {
    let platforms: Vec<String> = match platform {
        ManifestPlatform::Known(platform) => vec![platform_name(platform)],
        _ => parsed
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().and_then(Platform::from_json))
            .map(|p| platform_name(&p))
            .collect(),
    };
    let declared: u64 = parsed
        .config
        .iter()
        .chain(&parsed.layers)
        .chain(&parsed.manifests)
        .map(|d| d.size)
        .fold(0, u64::saturating_add);
    let data = ManifestPushedData {
        digest: digest.to_string(),
        media_type: parsed.media_type.clone(),
        tags: tags.to_vec(),
        platforms,
        size: (put.body.len() as u64).saturating_add(declared),
        subject: parsed.subject.as_ref().map(|s| s.digest.to_string()),
    };
    NewEvent::about(
        EventKind::ManifestPushed,
        put.repo.as_str(),
        put.by.actor,
        data_of(&data),
    )
}

/// `linux/arm64/v8`, as docker names platforms.
fn platform_name(platform: &Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}
