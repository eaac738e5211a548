//! The one factory of the blob store: the data directory's or an S3 bucket's, as
//! `[storage]` says, for `serve` and every command that touches blob bytes.

use crate::config::{Config, StorageKind};
use berth_core::ports::BlobStore;
use berth_storage::FsBlobStore;
use std::sync::Arc;

/// The blob store a command works on.
#[derive(Debug, Clone)]
pub enum BlobBackend {
    Filesystem(Arc<FsBlobStore>),
    #[cfg(feature = "s3")]
    S3(Arc<berth_storage::S3BlobStore>),
}

impl BlobBackend {
    /// Opens the configured store and proves it usable: the data directory's `blobs/` and
    /// `uploads/` exist, or the bucket answers, reads and writes. The error is one line.
    pub async fn open(config: &Config) -> Result<BlobBackend, String> {
        match config.storage.kind.value {
            StorageKind::Filesystem => {
                let dir = &config.data_dir.value;
                FsBlobStore::open(dir)
                    .map(|store| BlobBackend::Filesystem(Arc::new(store)))
                    .map_err(|e| format!("blob storage in {} is not usable: {e}", dir.display()))
            }
            #[cfg(feature = "s3")]
            StorageKind::S3 => berth_storage::S3BlobStore::open(&config.storage.s3_settings())
                .await
                .map(|store| BlobBackend::S3(Arc::new(store))),
            #[cfg(not(feature = "s3"))]
            StorageKind::S3 => Err(
                "[storage] kind = \"s3\" needs a berth built with the cargo feature `s3`".into(),
            ),
        }
    }

    /// The store behind the port, for the services.
    pub fn store(&self) -> Arc<dyn BlobStore> {
        match self {
            BlobBackend::Filesystem(store) => store.clone(),
            #[cfg(feature = "s3")]
            BlobBackend::S3(store) => store.clone(),
        }
    }

    /// The filesystem store, for what only works on files (`fsck`, `backup`, `restore`,
    /// upload recovery); on S3, a one-line refusal naming `what`.
    pub fn filesystem(&self, what: &str) -> Result<&Arc<FsBlobStore>, String> {
        match self {
            BlobBackend::Filesystem(store) => Ok(store),
            #[cfg(feature = "s3")]
            BlobBackend::S3(_) => Err(refusal(what)),
        }
    }
}

/// Why `what` does not run on S3 storage.
pub fn refusal(what: &str) -> String {
    format!(
        "{what} works on filesystem storage only, and [storage] kind is \"s3\"; on S3, rely on the bucket's own versioning or replication for copies, and on the server's garbage collection"
    )
}

/// Refuses `what` before anything is opened when `[storage]` is not the filesystem.
pub fn require_filesystem(config: &Config, what: &str) -> Result<(), String> {
    match config.storage.kind.value {
        StorageKind::Filesystem => Ok(()),
        StorageKind::S3 => Err(refusal(what)),
    }
}
