//! The store probe the test kit gives `/readyz` and `/metrics`: the same checks as `berth
//! serve`'s (`crates/berth/src/probe.rs`), over the test's database and blob directories.

use berth_http::ops::{PoolStats, StoreProbe};
use berth_meta::SqliteMeta;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Stores {
    pub meta: Arc<SqliteMeta>,
    /// The blob store's root (`blobs/` and `uploads/` below it).
    pub blob_root: PathBuf,
}

#[async_trait::async_trait]
impl StoreProbe for Stores {
    async fn database(&self) -> Result<(), String> {
        self.meta.ping().await.map_err(|e| e.to_string())
    }

    /// Both directories are there and can be listed: a lost mount or a permission change
    /// shows here before a push fails on it.
    async fn blobs(&self) -> Result<(), String> {
        for dir in ["blobs", "uploads"] {
            let path = self.blob_root.join(dir);
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
