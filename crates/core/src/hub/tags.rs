//! The tags view: each tag with its digest, size, platforms, push and pull times and the
//! referrers (signatures, SBOMs, other artifacts) attached to it, a page at a time.

use super::Hub;
use crate::access::Principal;
use crate::error::Result;
use crate::lifecycle::protecting;

use crate::ports::{ScanRecord, TagRecord, TagSort, VulnerabilitySummary};
use crate::signatures::ImageSignature;
use berth_oci::{Digest, ManifestKind, ParsedManifest, RepoName};
use std::collections::HashMap;

pub use berth_oci::Platform;

/// One page of a repository's tags and how many it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPage {
    pub total: u64,
    pub tags: Vec<TagView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagView {
    pub name: String,
    pub digest: Digest,
    pub media_type: String,
    /// Config and layers for an image; for an index, the sum of its manifests' sizes.
    pub size: u64,
    /// The platforms of an index (attestations left out), or the one of a single image
    /// (recorded from its configuration when it was pushed); empty for an artifact, an
    /// image whose configuration names none, and an image the platform backfill has not
    /// reached yet.
    pub platforms: Vec<Platform>,
    pub last_pushed_at: i64,
    pub last_pulled_at: Option<i64>,
    pub referrers: Vec<ReferrerView>,
    /// An immutable-tag rule (the repository's or its namespace's) protects it.
    pub immutable: bool,
    /// Unsigned, signed, or verified with the names of the trusted keys.
    pub signature: ImageSignature,
    /// Counts of the latest scan by severity: the image's, or for an index the sum over
    /// its scanned images (scanned at the oldest of their scans); None until scanned.
    pub vulnerabilities: Option<VulnerabilitySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerView {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
}

/// The summary of several images: counts added, the oldest scan time.
fn combine(summaries: impl Iterator<Item = VulnerabilitySummary>) -> Option<VulnerabilitySummary> {
    summaries.reduce(|a, b| VulnerabilitySummary {
        critical: a.critical + b.critical,
        high: a.high + b.high,
        medium: a.medium + b.medium,
        low: a.low + b.low,
        unknown: a.unknown + b.unknown,
        scanned_at: a.scanned_at.min(b.scanned_at),
    })
}

/// Nested indexes deeper than this are not followed for sizes.
const MAX_INDEX_DEPTH: usize = 3;

/// What the tags view reads from a manifest body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Image {
        size: u64,
    },
    Index {
        manifests: Vec<Digest>,
        platforms: Vec<Platform>,
    },
}

/// The annotation buildx puts on the attestation manifests of an index.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

fn shape(media_type: &str, body: &[u8]) -> Option<Shape> {
    // Stored manifests were validated on push; one that no longer parses shows no details.
    let parsed = ParsedManifest::parse(Some(media_type), body).ok()?;
    Some(match parsed.kind {
        // What a pull downloads, as Docker Hub shows it: the (compressed) layers.
        ManifestKind::Image => Shape::Image {
            size: parsed
                .layers
                .iter()
                .fold(0u64, |sum, d| sum.saturating_add(d.size)),
        },
        ManifestKind::Index => Shape::Index {
            platforms: parsed
                .manifests
                .iter()
                .filter(|d| {
                    let reference_type = d.annotations.as_ref().and_then(|a| a.get(REFERENCE_TYPE));
                    reference_type.and_then(|t| t.as_str()) != Some("attestation-manifest")
                })
                .filter_map(|d| d.platform.as_ref().and_then(Platform::from_json))
                .collect(),
            manifests: parsed.manifests.into_iter().map(|d| d.digest).collect(),
        },
    })
}

impl Hub {
    /// One page (1-based; page sizes are brought into 1..=100) of the repository's tags in
    /// the order asked; `NameUnknown` unless the principal may read the repository.
    pub async fn tags(
        &self,
        principal: &Principal,
        repo: &RepoName,
        sort: TagSort,
        page: u32,
        page_size: u32,
    ) -> Result<TagPage> {
        self.readable(principal, repo).await?;
        let limit = page_size.clamp(1, super::MAX_PAGE_SIZE);
        let offset = page.max(1).saturating_sub(1).saturating_mul(limit);
        let (total, records) = self.store.tag_records(repo, sort, offset, limit).await?;
        let rules = self.store.immutable_rules_for(repo).await?;
        // Tags often share manifests (and indexes their children): size each once.
        let mut sizes = HashMap::new();
        let digests: Vec<Digest> = records.iter().map(|r| r.digest.clone()).collect();
        let signatures: HashMap<Digest, ImageSignature> = self
            .store
            .signature_states(repo, &digests)
            .await?
            .into_iter()
            .collect();
        let mut tags = Vec::with_capacity(records.len());
        for record in records {
            let mut view = self.tag_view(repo, record, &mut sizes).await?;
            view.immutable = protecting(&rules, &view.name).is_some();
            if let Some(signature) = signatures.get(&view.digest) {
                view.signature = signature.clone();
            }
            tags.push(view);
        }
        Ok(TagPage { total, tags })
    }

    async fn tag_view(
        &self,
        repo: &RepoName,
        record: TagRecord,
        sizes: &mut HashMap<Digest, u64>,
    ) -> Result<TagView> {
        let shape = shape(&record.media_type, &record.body);
        let scanned: Vec<String> = match &shape {
            Some(Shape::Index { manifests, .. }) => {
                manifests.iter().map(|d| d.to_string()).collect()
            }
            _ => vec![record.digest.to_string()],
        };
        let vulnerabilities = combine(
            self.store
                .vulnerability_summaries(&scanned)
                .await?
                .into_values(),
        );
        let (size, platforms) = match shape {
            Some(Shape::Image { size }) => (size, record.platform.into_iter().collect()),
            Some(Shape::Index {
                manifests,
                platforms,
            }) => (self.index_size(repo, manifests, sizes).await?, platforms),
            None => (0, Vec::new()),
        };
        let referrers = self
            .store
            .referrers(repo, &record.digest, None)
            .await?
            .into_iter()
            .map(|r| ReferrerView {
                digest: r.digest,
                media_type: r.media_type,
                artifact_type: r.artifact_type,
            })
            .collect();
        Ok(TagView {
            name: record.name,
            digest: record.digest,
            media_type: record.media_type,
            size,
            platforms,
            last_pushed_at: record.pushed_at,
            last_pulled_at: record.last_pulled_at,
            referrers,
            immutable: false,
            signature: ImageSignature::unsigned(),
            vulnerabilities,
        })
    }

    /// The latest scans of what `reference` (a tag or a digest) names: the image, or each
    /// scanned image of an index. `NameUnknown` unless the principal may read the
    /// repository; `ManifestUnknown` when the reference names nothing.
    pub async fn scans(
        &self,
        principal: &Principal,
        repo: &RepoName,
        reference: &berth_oci::Reference,
    ) -> Result<Vec<ScanRecord>> {
        self.readable(principal, repo).await?;
        let record = match reference {
            berth_oci::Reference::Tag(tag) => {
                self.store.manifest_by_tag(repo, tag.as_str()).await?
            }
            berth_oci::Reference::Digest(digest) => {
                self.store.manifest_by_digest(repo, digest).await?
            }
        }
        .ok_or_else(|| crate::Error::ManifestUnknown(reference.to_string()))?;
        let digests: Vec<Digest> = match shape(&record.media_type, &record.body) {
            Some(Shape::Index { manifests, .. }) => manifests,
            _ => vec![record.digest],
        };
        let mut scans = Vec::new();
        for digest in digests {
            if let Some(scan) = self.store.scan_result(&digest.to_string()).await? {
                scans.push(scan);
            }
        }
        Ok(scans)
    }

    /// The sum of the sizes of an index's manifests, following nested indexes a few levels;
    /// manifests no longer in the repository count nothing.
    async fn index_size(
        &self,
        repo: &RepoName,
        manifests: Vec<Digest>,
        sizes: &mut HashMap<Digest, u64>,
    ) -> Result<u64> {
        let mut total = 0u64;
        let mut level = manifests;
        for _ in 0..MAX_INDEX_DEPTH {
            let mut nested = Vec::new();
            for digest in level {
                if let Some(size) = sizes.get(&digest) {
                    total = total.saturating_add(*size);
                    continue;
                }
                let Some(child) = self.store.manifest_by_digest(repo, &digest).await? else {
                    continue;
                };
                match shape(&child.media_type, &child.body) {
                    Some(Shape::Image { size }) => {
                        sizes.insert(digest, size);
                        total = total.saturating_add(size);
                    }
                    Some(Shape::Index { manifests, .. }) => nested.extend(manifests),
                    None => {}
                }
            }
            if nested.is_empty() {
                break;
            }
            level = nested;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::manifest::{OCI_INDEX, OCI_MANIFEST};

    fn digest(n: u8) -> String {
        Digest::sha256_of(&[n]).to_string()
    }

    #[test]
    fn an_image_weighs_its_layers() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":100}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":2000}},
                      {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":30000}}]}}"#,
            digest(1),
            digest(2),
            digest(3)
        );
        assert_eq!(
            shape(OCI_MANIFEST, body.as_bytes()),
            Some(Shape::Image { size: 32_000 })
        );
    }

    #[test]
    fn an_index_lists_its_platforms_without_attestations() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"arm","variant":"v7"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}},
                "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1}}]}}"#,
            digest(1),
            digest(2),
            digest(3),
            digest(4)
        );
        let Some(Shape::Index {
            manifests,
            platforms,
        }) = shape(OCI_INDEX, body.as_bytes())
        else {
            panic!("not an index");
        };
        assert_eq!(manifests.len(), 4);
        assert_eq!(
            platforms,
            [
                Platform {
                    os: "linux".into(),
                    architecture: "amd64".into(),
                    variant: None
                },
                Platform {
                    os: "linux".into(),
                    architecture: "arm".into(),
                    variant: Some("v7".into())
                },
            ]
        );
    }

    #[test]
    fn unreadable_bodies_have_no_shape() {
        assert_eq!(shape(OCI_MANIFEST, b"not json"), None);
    }
}
