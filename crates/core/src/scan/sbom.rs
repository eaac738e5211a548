//! SBOMs of an image: the CycloneDX document of the inventory pushed by Berth itself through
//! the registry service, as an OCI artifact whose `subject` is the image, so `oras
//! discover` and the referrers API list it; and the SBOMs clients attached (as referrers or
//! under cosign's `sha256-<hex>.sbom` tag), whose packages the scan adds to its own.

use crate::ports::{collect_at_most, BlobStore, MetaError, MetaStore};
use crate::registry::{ChangedBy, PutManifest, Registry};
use crate::Result;
use berth_oci::manifest::{OCI_EMPTY_CONFIG, OCI_MANIFEST};
use berth_oci::signature::{cosign_tag_subject, CosignTagKind};
use berth_oci::{Descriptor, Digest, ParsedManifest, Reference, RepoName};
use berth_scan::inventory::sbom::{SbomPackages, MAX_SBOM_BYTES};
use berth_scan::sbom::{cyclonedx, CYCLONEDX_MEDIA_TYPE};
use berth_scan::Inventory;
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;

/// The empty configuration of an artifact manifest (OCI image-spec's `{}`).
const EMPTY_CONFIG: &[u8] = b"{}";

/// The annotation that marks the SBOMs Berth pushed itself.
pub const GENERATOR_ANNOTATION: &str = "dev.berth.sbom.generator";

/// Layer media types of the SBOM documents the scan reads (JSON only).
const READABLE_SBOM_TYPES: [&str; 3] = [
    CYCLONEDX_MEDIA_TYPE,
    "application/spdx+json",
    "text/spdx+json",
];

/// Client SBOMs read per image: a few tools' worth; more is someone filling the list.
const MAX_CLIENT_SBOMS: usize = 8;

/// The SBOM document of a manifest that is an SBOM a client attached: its first layer in a
/// readable SBOM format; `None` for Berth's own SBOMs and everything else.
pub(super) fn client_sbom_layer(parsed: &ParsedManifest) -> Option<&Descriptor> {
    if parsed
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(GENERATOR_ANNOTATION))
    {
        return None;
    }
    parsed
        .layers
        .iter()
        .find(|l| READABLE_SBOM_TYPES.contains(&l.media_type.as_str()))
}

/// The image a pushed cosign `sha256-<hex>.sbom` tag attaches an SBOM to.
pub(super) fn cosign_sbom_subject(tags: &[String]) -> Option<Digest> {
    tags.iter().find_map(|t| match cosign_tag_subject(t) {
        Some((digest, CosignTagKind::Sbom)) => Some(digest),
        _ => None,
    })
}

/// The packages of every SBOM clients attached to `subject` in `repo`, with a warning for
/// each one that could not be read.
pub(super) async fn client_packages(
    meta: &Arc<dyn MetaStore>,
    blobs: &Arc<dyn BlobStore>,
    repo: &RepoName,
    subject: &Digest,
) -> std::result::Result<(Vec<SbomPackages>, Vec<String>), MetaError> {
    let mut manifests = Vec::new();
    for referrer in meta.referrers(repo, subject, None).await? {
        manifests.extend(meta.manifest_by_digest(repo, &referrer.digest).await?);
    }
    let cosign_tag = format!("sha256-{}.sbom", subject.hex());
    manifests.extend(meta.manifest_by_tag(repo, &cosign_tag).await?);
    let mut found = Vec::new();
    let mut warnings = Vec::new();
    for record in manifests {
        let Ok(parsed) = ParsedManifest::parse(Some(&record.media_type), &record.body) else {
            continue;
        };
        let Some(layer) = client_sbom_layer(&parsed) else {
            continue;
        };
        if found.len() == MAX_CLIENT_SBOMS {
            warnings.push(format!(
                "more than {MAX_CLIENT_SBOMS} SBOMs are attached; the others were not read"
            ));
            break;
        }
        let location = format!("sbom {}", record.digest);
        let bytes = if layer.size > MAX_SBOM_BYTES {
            Err(format!("larger than {MAX_SBOM_BYTES} bytes"))
        } else {
            match blobs.read_blob(&layer.digest, None).await {
                Ok(stream) => match collect_at_most(stream, MAX_SBOM_BYTES).await {
                    Ok(Some(bytes)) => Ok(bytes),
                    Ok(None) => Err(format!("larger than {MAX_SBOM_BYTES} bytes")),
                    Err(error) => Err(error.to_string()),
                },
                Err(error) => Err(error.to_string()),
            }
        };
        match bytes.and_then(|b| {
            berth_scan::inventory::sbom::parse(&b, &location).map_err(|e| e.to_string())
        }) {
            Ok(packages) => found.push(packages),
            Err(why) => warnings.push(format!("{location}: {why}")),
        }
    }
    Ok((found, warnings))
}

async fn upload(registry: &Registry, repo: &RepoName, bytes: Vec<u8>) -> Result<(Digest, u64)> {
    let digest = Digest::sha256_of(&bytes);
    let size = bytes.len() as u64;
    let body: crate::ports::ByteStream = Box::pin(futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(bytes))
    }));
    registry
        .upload_monolithic(repo, None, &digest, Some(size), body)
        .await?;
    Ok((digest, size))
}

/// Pushes the SBOM of `subject` into `repo` and returns the SBOM manifest's digest. The
/// document has no timestamp, so scanning the same image again pushes the same bytes: one
/// referrer per distinct inventory, not one per scan.
pub(super) async fn attach(
    registry: &Registry,
    repo: &RepoName,
    subject: &Digest,
    subject_media_type: &str,
    subject_size: u64,
    inventory: &Inventory,
    _scanned_at: i64,
) -> Result<Digest> {
    let document = cyclonedx(
        inventory,
        &repo.to_string(),
        &subject.to_string(),
        None,
        env!("CARGO_PKG_VERSION"),
    );
    let (sbom, sbom_size) = upload(
        registry,
        repo,
        serde_json::to_vec(&document).unwrap_or_default(),
    )
    .await?;
    let (config, config_size) = upload(registry, repo, EMPTY_CONFIG.to_vec()).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": CYCLONEDX_MEDIA_TYPE,
        "config": {"mediaType": OCI_EMPTY_CONFIG, "digest": config.to_string(), "size": config_size},
        "layers": [{
            "mediaType": CYCLONEDX_MEDIA_TYPE,
            "digest": sbom.to_string(),
            "size": sbom_size,
            "annotations": {"org.opencontainers.image.title": "sbom.cdx.json"},
        }],
        "subject": {"mediaType": subject_media_type, "digest": subject.to_string(), "size": subject_size},
        "annotations": {GENERATOR_ANNOTATION: "berth"},
    });
    let body = serde_json::to_vec(&manifest).unwrap_or_default();
    let digest = Digest::sha256_of(&body);
    let pushed = registry
        .put_manifest(PutManifest {
            repo,
            reference: &Reference::Digest(digest.clone()),
            extra_tags: &[],
            content_type: Some(OCI_MANIFEST),
            body: &body,
            by: ChangedBy::default(),
        })
        .await?;
    Ok(pushed.digest)
}
