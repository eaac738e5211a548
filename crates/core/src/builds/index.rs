//! A multi-platform build's OCI index, made by Berth rather than buildah: buildah 1.28 can
//! annotate an index's entries but not the index itself, which is what a client reading a
//! multi-platform tag sees first. The platforms' images are read from the OCI layout buildah
//! wrote them to; the index names each with its platform and carries the source
//! annotations; and all of it is pushed to the repository through the server's own
//! listener, with the build's push token, as any client would.

use crate::mirror::UpstreamError;
use crate::ports::ByteStream;
use crate::replication::{BlobSource, Destination};
use berth_oci::manifest::OCI_INDEX;
use berth_oci::{Digest, ParsedManifest, Platform};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// The layout annotation buildah names each image in the layout by.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Manifests and configurations are small; a layout entry larger than this is refused
/// rather than read into memory.
const MAX_SMALL_BLOB: u64 = 4 * 1024 * 1024;

/// One platform's image in the layout.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LayoutImage {
    pub media_type: String,
    pub digest: Digest,
    pub manifest: Vec<u8>,
    pub platform: Platform,
    /// The config and the layers: what must be in the repository before the manifest.
    pub blobs: Vec<(Digest, u64)>,
}

fn blob_path(layout: &Path, digest: &Digest) -> PathBuf {
    layout
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

fn read_small(layout: &Path, digest: &Digest) -> Result<Vec<u8>, String> {
    let path = blob_path(layout, digest);
    let size = std::fs::metadata(&path)
        .map_err(|e| format!("the layout has no blob {digest}: {e}"))?
        .len();
    if size > MAX_SMALL_BLOB {
        return Err(format!(
            "the layout's {digest} is {size} bytes, too large for a manifest"
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {digest}: {e}"))?;
    if Digest::of(digest.algorithm(), &bytes) != *digest {
        return Err(format!(
            "the layout's blob {digest} does not match its digest"
        ));
    }
    Ok(bytes)
}

/// The images named `names` in the OCI layout at `layout`, in that order.
pub(super) fn read_layout(layout: &Path, names: &[String]) -> Result<Vec<LayoutImage>, String> {
    let index: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json"))
            .map_err(|e| format!("reading the layout's index.json: {e}"))?,
    )
    .map_err(|e| format!("the layout's index.json: {e}"))?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    names
        .iter()
        .map(|name| {
            let entry = entries
                .iter()
                .rev()
                .find(|e| e["annotations"][REF_NAME].as_str() == Some(name.as_str()))
                .ok_or_else(|| format!("the layout has no image named {name}"))?;
            let digest: Digest = entry["digest"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| format!("the layout's entry {name}: {e}"))?;
            let manifest = read_small(layout, &digest)?;
            let media_type = entry["mediaType"].as_str().map(str::to_owned);
            let parsed = ParsedManifest::parse(media_type.as_deref(), &manifest)
                .map_err(|e| format!("the layout's image {name}: {e}"))?;
            let config = parsed
                .config
                .ok_or_else(|| format!("the layout's image {name} has no config"))?;
            let platform = Platform::from_image_config(&read_small(layout, &config.digest)?)
                .ok_or_else(|| format!("the layout's image {name} names no platform"))?;
            let blobs = std::iter::once(&config)
                .chain(&parsed.layers)
                .map(|d| (d.digest.clone(), d.size))
                .collect();
            Ok(LayoutImage {
                media_type: parsed.media_type,
                digest,
                manifest,
                platform,
                blobs,
            })
        })
        .collect()
}

/// The OCI index of `images`, each with its platform, annotated with `annotations`.
pub(super) fn index_of(images: &[LayoutImage], annotations: &[(&str, String)]) -> Vec<u8> {
    let manifests: Vec<Value> = images
        .iter()
        .map(|image| {
            let mut platform = Map::new();
            platform.insert(
                "architecture".into(),
                image.platform.architecture.clone().into(),
            );
            platform.insert("os".into(), image.platform.os.clone().into());
            if let Some(variant) = &image.platform.variant {
                platform.insert("variant".into(), variant.clone().into());
            }
            json!({
                "mediaType": image.media_type,
                "digest": image.digest.to_string(),
                "size": image.manifest.len(),
                "platform": platform,
            })
        })
        .collect();
    let annotations: Map<String, Value> = annotations
        .iter()
        .map(|(key, value)| ((*key).to_owned(), Value::String(value.clone())))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
        "annotations": annotations,
    }))
    .unwrap_or_default()
}

/// A blob of the layout, read from its file.
struct LayoutBlob(PathBuf);

#[async_trait::async_trait]
impl BlobSource for LayoutBlob {
    async fn open(&self, start: u64, len: u64) -> Result<ByteStream, UpstreamError> {
        let unreadable = |e: std::io::Error| {
            UpstreamError::Invalid(format!("reading {}: {e}", self.0.display()))
        };
        let mut file = tokio::fs::File::open(&self.0).await.map_err(unreadable)?;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(unreadable)?;
        // In pieces of 256 KiB: memory stays flat whatever the layer's size.
        let stream = futures_util::stream::try_unfold(file.take(len), |mut part| async move {
            let mut buf = vec![0u8; 256 * 1024];
            let n = part.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), part)))
        });
        Ok(Box::pin(stream))
    }
}

/// Pushes the images (their blobs the repository lacks, then their manifests by digest) and
/// the index under each of `tags`; returns the index's digest. `say` gets a line per step.
pub(super) async fn push(
    dest: &dyn Destination,
    repo: &str,
    layout: &Path,
    images: &[LayoutImage],
    index: &[u8],
    tags: &[String],
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<Digest, String> {
    for image in images {
        for (digest, size) in &image.blobs {
            let present = dest
                .blob_size(repo, digest)
                .await
                .map_err(|e| format!("looking for {digest} in {repo}: {e}"))?;
            if present.is_some() {
                continue;
            }
            dest.push_blob(repo, digest, *size, &LayoutBlob(blob_path(layout, digest)))
                .await
                .map_err(|e| format!("pushing {digest} to {repo}: {e}"))?;
        }
        dest.put_manifest(
            repo,
            &image.digest.to_string(),
            &image.media_type,
            &image.manifest,
        )
        .await
        .map_err(|e| {
            format!(
                "pushing the {} image to {repo}: {e}",
                platform_name(&image.platform)
            )
        })?;
        say(&format!(
            "[berth] pushed the {} image {}",
            platform_name(&image.platform),
            image.digest
        ));
    }
    let digest = Digest::sha256_of(index);
    for tag in tags {
        dest.put_manifest(repo, tag, OCI_INDEX, index)
            .await
            .map_err(|e| format!("pushing {repo}:{tag} failed: {e}"))?;
        say(&format!("[berth] pushed {repo}:{tag} {digest}"));
    }
    Ok(digest)
}

/// `linux/arm/v7`.
fn platform_name(platform: &Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` as a blob of the layout; its digest.
    fn put(layout: &Path, bytes: &[u8]) -> Digest {
        let digest = Digest::sha256_of(bytes);
        let dir = layout.join("blobs/sha256");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(digest.hex()), bytes).unwrap();
        digest
    }

    fn image(layout: &Path, architecture: &str, variant: Option<&str>) -> (Digest, usize) {
        let mut config = json!({"os": "linux", "architecture": architecture, "rootfs": {}});
        if let Some(variant) = variant {
            config["variant"] = variant.into();
        }
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = put(layout, &config);
        let layer_digest = put(layout, architecture.as_bytes());
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest.to_string(), "size": architecture.len()}],
        }))
        .unwrap();
        (put(layout, &manifest), manifest.len())
    }

    #[test]
    fn the_index_names_each_platform_and_says_where_it_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path();
        let (amd64, amd64_size) = image(layout, "amd64", None);
        let (arm, _) = image(layout, "arm", Some("v7"));
        let entry = |digest: &Digest, size: usize, name: &str| {
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": digest.to_string(), "size": size,
                   "annotations": {REF_NAME: name}})
        };
        std::fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
                entry(&amd64, amd64_size, "linux-amd64"),
                entry(&arm, 0, "linux-arm-v7"),
            ]}))
            .unwrap(),
        )
        .unwrap();

        let names = vec!["linux-arm-v7".to_owned(), "linux-amd64".to_owned()];
        let images = read_layout(layout, &names).unwrap();
        assert_eq!(images[0].digest, arm);
        assert_eq!(images[0].platform.variant.as_deref(), Some("v7"));
        assert_eq!(images[1].blobs.len(), 2, "the config and the layer");
        let index = index_of(
            &images,
            &[
                (
                    "org.opencontainers.image.source",
                    "https://git.example/app.git".into(),
                ),
                ("org.opencontainers.image.revision", "abc123".into()),
            ],
        );
        let parsed = ParsedManifest::parse(Some(OCI_INDEX), &index).unwrap();
        assert_eq!(parsed.manifests.len(), 2);
        assert_eq!(parsed.manifests[1].digest, amd64);
        assert_eq!(parsed.manifests[1].size, amd64_size as u64);
        assert_eq!(
            parsed.manifests[0].platform,
            Some(json!({"architecture": "arm", "os": "linux", "variant": "v7"}))
        );
        let annotations = parsed.annotations.unwrap();
        assert_eq!(annotations["org.opencontainers.image.revision"], "abc123");
        assert_eq!(
            annotations["org.opencontainers.image.source"],
            "https://git.example/app.git"
        );

        // A name the layout lacks, or a blob that is not what its name says: refused.
        assert!(read_layout(layout, &["linux-s390x".to_owned()])
            .unwrap_err()
            .contains("no image named linux-s390x"));
        std::fs::write(blob_path(layout, &amd64), b"{}").unwrap();
        assert!(read_layout(layout, &names[1..])
            .unwrap_err()
            .contains("does not match"));
    }
}
