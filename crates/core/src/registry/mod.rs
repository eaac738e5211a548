//! The registry service: the OCI distribution operations, over the blob store and metadata ports.

mod blobs;
mod catalog;
mod listing;
mod manifests;
mod platforms;
mod referrers;
mod uploads;

pub use blobs::BlobContent;
pub use catalog::CatalogCache;
pub use listing::Page;
pub use manifests::{ManifestPushed, PutManifest};
pub use platforms::PlatformBackfill;
pub use referrers::Referrer;
pub use uploads::ChunkFraming;

use crate::audit::Audit;
use crate::error::Error;
use crate::jobs::Wake;
use crate::ports::{BlobStore, MetaError, MetaStore, StoreError};
use std::sync::Arc;
use std::time::Duration;
use uploads::UploadLocks;

/// Tunables of the registry service.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Upload sessions untouched for this long are expired and their bytes removed.
    pub upload_ttl: Duration,
    /// Unfinished upload sessions one account may hold (`None`: no cap).
    pub max_upload_sessions: Option<u32>,
    /// The largest blob accepted, in bytes (`None`: no limit).
    pub max_blob_size: Option<u64>,
}

/// Default of `max_upload_sessions`: far more than a parallel `docker push` opens.
pub const DEFAULT_MAX_UPLOAD_SESSIONS: u32 = 100;

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            upload_ttl: Duration::from_secs(24 * 3600),
            max_upload_sessions: Some(DEFAULT_MAX_UPLOAD_SESSIONS),
            max_blob_size: None,
        }
    }
}

/// The OCI registry: every protocol operation, access-agnostic (the HTTP layer authorizes first).
#[derive(Clone)]
pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    uploads: Arc<UploadLocks>,
    options: RegistryOptions,
    /// Told after every change that recorded events, so they go out at once.
    wake: Wake,
    audit: Audit,
}

/// Who makes a registry change: named in its events and in the audit log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangedBy<'a> {
    /// An account name, `org/NAME`, or None for an anonymous caller.
    pub actor: Option<&'a str>,
    pub address: Option<&'a str>,
}

impl<'a> ChangedBy<'a> {
    /// A change by `actor` (empty: anonymous) from `address`.
    pub fn new(actor: &'a str, address: Option<&'a str>) -> ChangedBy<'a> {
        ChangedBy {
            actor: Some(actor).filter(|a| !a.is_empty()),
            address,
        }
    }
}

impl Registry {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetaStore>,
        options: RegistryOptions,
    ) -> Registry {
        Registry {
            blobs,
            audit: Audit::over(meta.clone()),
            meta,
            uploads: Arc::new(UploadLocks::default()),
            options,
            wake: Wake::default(),
        }
    }

    /// The same registry, waking `wake` (the jobs runner) after changes that record events.
    pub fn with_wake(self, wake: Wake) -> Registry {
        Registry { wake, ..self }
    }

    /// Appends to the audit log a change that already happened, through the one writer.
    async fn audit(&self, by: ChangedBy<'_>, action: &str, target: String) {
        self.audit
            .record(
                by.actor.unwrap_or("anonymous"),
                by.address,
                action,
                &target,
                serde_json::Value::Null,
            )
            .await;
    }
}

impl From<MetaError> for Error {
    fn from(err: MetaError) -> Error {
        match err {
            MetaError::MissingBlob(d) | MetaError::MissingManifest(d) => {
                Error::ManifestBlobUnknown(d)
            }
            // Linked while being collected: the client uploads it again.
            MetaError::BlobCollected(d) => Error::BlobUnknown(d),
            MetaError::QuotaExceeded { used, quota } => Error::QuotaExceeded { used, quota },
            MetaError::Conflict(what) => Error::Conflict(what),
            MetaError::TagImmutable { tag, rule } => Error::TagImmutable { tag, rule },
            MetaError::StorageFull => {
                tracing::error!("the database's disk is full");
                Error::StorageFull
            }
            MetaError::Unavailable(msg) => Error::Unavailable(msg),
            MetaError::Backend(msg) => Error::Internal(format!("metadata: {msg}")),
        }
    }
}

/// Maps a store failure; `NotFound` means our metadata and bytes disagree, which is ours to fix.
fn store_error(context: &str, err: StoreError) -> Error {
    match err {
        StoreError::Source(e) => Error::BodyInterrupted(e.to_string()),
        StoreError::LengthMismatch { expected, actual } => Error::SizeInvalid(format!(
            "the request promised {expected} bytes but carried {actual}"
        )),
        StoreError::NotFound => Error::internal(context, "stored bytes are missing"),
        StoreError::Io(e) if is_out_of_space(&e) => {
            tracing::error!(context, "the data directory is full");
            Error::StorageFull
        }
        StoreError::Io(e) => Error::internal(context, e),
    }
}

/// Whether an I/O failure means the disk (or the account's quota on it) is full.
fn is_out_of_space(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
