//! How `/readyz` and `/metrics` see the stores `serve` composed: the database and
//! the blob store (the directories under the data directory, or the bucket).

use crate::backends::blobs::BlobBackend;
use crate::backends::metadata::Metadata;
use berth_http::ops::{PoolStats, StoreProbe};

pub struct Stores {
    pub meta: Metadata,
    pub blobs: BlobBackend,
}

#[async_trait::async_trait]
impl StoreProbe for Stores {
    async fn database(&self) -> Result<(), String> {
        self.meta.ping().await.map_err(|e| e.to_string())
    }

    /// Both directories are there and can be listed: a lost mount or a permission change
    /// shows here before a push fails on it. A bucket answers a lookup.
    async fn blobs(&self) -> Result<(), String> {
        let root = match &self.blobs {
            BlobBackend::Filesystem(files) => files.root(),
            #[cfg(feature = "s3")]
            BlobBackend::S3(bucket) => {
                use berth_core::ports::BlobStore as _;
                let nothing = berth_oci::Digest::sha256_of(b"");
                return bucket
                    .blob_size(&nothing)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("S3 bucket: {e}"));
            }
        };
        for dir in ["blobs", "uploads"] {
            let path = root.join(dir);
            let mut entries = tokio::fs::read_dir(&path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            entries
                .next_entry()
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    async fn uploads_in_progress(&self) -> Result<u64, String> {
        self.meta
            .open_upload_sessions()
            .await
            .map_err(|e| e.to_string())
    }

    async fn durable(&self) -> Result<(), String> {
        self.meta.sync().await.map_err(|e| e.to_string())
    }

    fn pools(&self) -> Vec<PoolStats> {
        self.meta
            .pool_use()
            .into_iter()
            .map(|pool| PoolStats {
                name: pool.name,
                open: pool.open,
                idle: pool.idle,
                max: pool.max,
            })
            .collect()
    }
}
