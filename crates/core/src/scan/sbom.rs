//! The SBOM referrer: a CycloneDX document of the inventory pushed by Berth itself through
//! the registry service, as an OCI artifact whose `subject` is the image, so `oras
//! discover` and the referrers API list it.

use crate::registry::{ChangedBy, PutManifest, Registry};
use crate::Result;
use berth_oci::manifest::{OCI_EMPTY_CONFIG, OCI_MANIFEST};
use berth_oci::{Digest, Reference, RepoName};
use berth_scan::sbom::{cyclonedx, CYCLONEDX_MEDIA_TYPE};
use berth_scan::Inventory;
use bytes::Bytes;
use serde_json::json;

/// The empty configuration of an artifact manifest (OCI image-spec's `{}`).
const EMPTY_CONFIG: &[u8] = b"{}";

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
        "annotations": {"dev.berth.sbom.generator": "berth"},
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
