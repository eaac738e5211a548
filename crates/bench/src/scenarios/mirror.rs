//! The pull-through cache: a large image pulled through a target's `[[mirror]]` of the
//! upstream target, cold (fetched from the upstream while it streams) and cached, against
//! the same pull straight from the upstream.

use crate::data::{sha256_digest, BigBlob};
use crate::registry::{image_config, image_manifest};
use crate::target::{Cost, Target};
use crate::Result;
use bytes::Bytes;
use reqwest::Body;

/// One round's image at the upstream: `bench/mirror-ROUND:v1`, a config and one large
/// layer.
pub struct MirrorImage {
    /// The repository's name at the upstream.
    pub repo: String,
    pub config: Bytes,
    pub config_digest: String,
    pub layer: BigBlob,
}

impl MirrorImage {
    pub fn new(round: usize, layer: BigBlob) -> MirrorImage {
        let repo = format!("bench/mirror-{round}");
        let config = image_config(&repo);
        MirrorImage {
            config_digest: sha256_digest(&config),
            repo,
            config,
            layer,
        }
    }

    /// Pushes the image to the upstream (unmeasured).
    pub async fn seed(&self, upstream: &Target) -> Result<()> {
        let repo = &self.repo;
        upstream
            .push_blob(repo, &self.config_digest, self.config.clone())
            .await?;
        let layer = &self.layer;
        let upload = upstream.start_upload(repo).await?;
        let body = Body::wrap_stream(layer.stream(0, layer.size));
        upstream
            .finish_upload(upload, &layer.digest, body, layer.size)
            .await?;
        let manifest = image_manifest(
            (&self.config_digest, self.config.len()),
            &[(&layer.digest, layer.size as usize)],
        );
        upstream.put_manifest(repo, "v1", manifest).await
    }

    /// The name to pull at a target: through its mirror under `prefix`, or (None) the
    /// upstream's own name.
    pub fn name_at(&self, prefix: Option<&str>) -> String {
        match prefix {
            Some(prefix) => format!("{prefix}/{}", self.repo),
            None => self.repo.clone(),
        }
    }

    /// A pull as a client makes it, timed: the manifest by tag, the config, the layer.
    pub async fn pull(&self, t: &Target, name: &str, verify: bool) -> Result<Cost> {
        let (n, cost) = t
            .measure(async {
                t.get_manifest(t.url(&format!("v2/{name}/manifests/v1")))
                    .await?;
                t.pull_blob(name, &self.config_digest, verify).await?;
                t.pull_blob(name, &self.layer.digest, verify).await
            })
            .await?;
        if n != self.layer.size {
            return Err(format!(
                "pulled {n} bytes of the layer, expected {}",
                self.layer.size
            )
            .into());
        }
        Ok(cost)
    }
}
