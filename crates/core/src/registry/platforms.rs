//! Image platforms: read from the configuration at push, and backfilled for older manifests.

use super::Registry;
use crate::error::Result;
use crate::ports::{collect_at_most, BlobStore, ManifestPlatform, StoreError};
use berth_oci::platform::{is_image_config, MAX_PLATFORM_CONFIG_BYTES};
use berth_oci::{Digest, ManifestKind, ParsedManifest, Platform};

/// Manifests examined per backfill step (one read query, one write transaction).
const BACKFILL_BATCH: u32 = 100;

/// What the platform backfill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlatformBackfill {
    /// Manifests examined and settled (with or without a platform).
    pub recorded: u64,
    /// Of those, how many name a platform.
    pub with_platform: u64,
    /// Manifests whose configuration could not be read; tried again at the next start.
    pub unread: u64,
}

/// The platform of a parsed manifest: read from its configuration blob for an image whose
/// configuration is an image config of at most [`MAX_PLATFORM_CONFIG_BYTES`]. Never an
/// error: a configuration that is missing, too large or not JSON names no platform, and a
/// storage failure leaves the platform to the backfill.
pub(super) async fn read_platform(
    blobs: &dyn BlobStore,
    parsed: &ParsedManifest,
) -> ManifestPlatform {
    let Some(config) = parsed.config.as_ref().filter(|config| {
        parsed.kind == ManifestKind::Image
            && is_image_config(&config.media_type)
            && config.size <= MAX_PLATFORM_CONFIG_BYTES
    }) else {
        return ManifestPlatform::None;
    };
    match read_small_blob(blobs, &config.digest).await {
        Ok(Some(bytes)) => match Platform::from_image_config(&bytes) {
            Some(platform) => ManifestPlatform::Known(platform),
            None => ManifestPlatform::None,
        },
        Ok(None) => ManifestPlatform::None,
        Err(err) => {
            tracing::warn!(config = %config.digest, error = %err, "could not read an image configuration for its platform");
            ManifestPlatform::Unread
        }
    }
}

/// The whole blob if it is stored and no larger than [`MAX_PLATFORM_CONFIG_BYTES`] (the
/// descriptor's size is the pusher's word; the bytes are counted too).
async fn read_small_blob(
    blobs: &dyn BlobStore,
    digest: &Digest,
) -> std::result::Result<Option<Vec<u8>>, StoreError> {
    let stream = match blobs.read_blob(digest, None).await {
        Ok(stream) => stream,
        Err(StoreError::NotFound) => return Ok(None),
        Err(err) => return Err(err),
    };
    collect_at_most(stream, MAX_PLATFORM_CONFIG_BYTES)
        .await
        .map_err(StoreError::Io)
}

impl Registry {
    /// Reads and records the platform of every manifest that has none recorded yet (stored
    /// before platforms were, or pushed while its configuration could not be read), a batch
    /// at a time. Runs once per start, in the background; one pass over the pending
    /// manifests, so one whose configuration still cannot be read waits for the next start.
    pub async fn backfill_platforms(&self) -> Result<PlatformBackfill> {
        let mut report = PlatformBackfill::default();
        let mut after: Option<Digest> = None;
        loop {
            let batch = self
                .meta
                .manifests_without_platform(after.as_ref(), BACKFILL_BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(report);
            };
            after = Some(last.digest.clone());
            let mut found = Vec::with_capacity(batch.len());
            for record in batch {
                // Stored manifests were validated on push; one that no longer parses has
                // no platform to find.
                let platform = match ParsedManifest::parse(Some(&record.media_type), &record.body) {
                    Ok(parsed) => read_platform(&*self.blobs, &parsed).await,
                    Err(_) => ManifestPlatform::None,
                };
                match platform {
                    ManifestPlatform::Unread => report.unread += 1,
                    ManifestPlatform::None => found.push((record.digest, None)),
                    ManifestPlatform::Known(platform) => {
                        report.with_platform += 1;
                        found.push((record.digest, Some(platform)));
                    }
                }
            }
            report.recorded += found.len() as u64;
            self.meta.record_platforms(&found).await?;
        }
    }
}
