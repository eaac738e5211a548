//! Consistent copies of the database and the content records they name, for `berth backup`,
//! `berth restore` and `berth fsck`: an online snapshot (`VACUUM INTO`) of a live database,
//! and a read-only view of such a copy.

use super::{backend, SqliteMeta};
use berth_core::ports::MetaError;
use berth_oci::Digest;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;

/// One row of the `blobs` table: bytes the blob store must hold under this digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRecord {
    pub digest: Digest,
    pub size: u64,
}

/// What a database holds, counted: written into a backup's manifest and checked on restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContentCounts {
    pub repositories: u64,
    pub manifests: u64,
    pub tags: u64,
    pub blobs: u64,
    /// The sum of every blob's size.
    pub blob_bytes: u64,
}

impl SqliteMeta {
    /// Writes a consistent copy of the whole database to `target`, which must not exist.
    /// `VACUUM INTO` reads inside one read transaction, so the copy is the database as of
    /// one commit; in WAL mode it never blocks the server's writer, whose commits after
    /// that instant are simply not in the copy.
    pub async fn snapshot_into(&self, target: &Path) -> Result<(), MetaError> {
        let target = target.to_str().ok_or_else(|| {
            MetaError::Backend(format!("{} is not a UTF-8 path", target.display()))
        })?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.read)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Every blob record, ordered by digest.
    pub async fn blob_records(&self) -> Result<Vec<BlobRecord>, MetaError> {
        blob_records(&self.read).await
    }

    /// The ids of every open upload session (their scratch files are not orphans).
    pub async fn upload_session_ids(&self) -> Result<Vec<String>, MetaError> {
        sqlx::query_scalar("SELECT id FROM upload_sessions")
            .fetch_all(&self.read)
            .await
            .map_err(backend)
    }
}

/// A database file that nothing writes (a backup's copy), opened read-only and immutable so
/// reading it neither locks nor leaves `-wal`/`-shm` files beside it.
#[derive(Debug)]
pub struct SqliteSnapshot {
    pool: SqlitePool,
}

impl SqliteSnapshot {
    /// Opens the copy at `path`; fails when it is missing or is not a Berth database.
    pub async fn open(path: &Path) -> Result<SqliteSnapshot, MetaError> {
        if !path.is_file() {
            return Err(MetaError::Backend(format!("{} is missing", path.display())));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(backend)?;
        let snapshot = SqliteSnapshot { pool };
        // Any Berth database has this table; a different file fails here, not halfway.
        if let Err(err) = snapshot.counts().await {
            snapshot.close().await;
            return Err(MetaError::Backend(format!(
                "{} is not a Berth database ({err})",
                path.display()
            )));
        }
        Ok(snapshot)
    }

    /// Every blob record, ordered by digest.
    pub async fn blob_records(&self) -> Result<Vec<BlobRecord>, MetaError> {
        blob_records(&self.pool).await
    }

    /// The copy's schema version, and the newest this build knows: a copy from a newer
    /// Berth cannot be served by this one.
    pub async fn schema_versions(&self) -> Result<(i64, i64), MetaError> {
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok((applied.unwrap_or(0), super::migrate::latest_version()))
    }

    pub async fn counts(&self) -> Result<ContentCounts, MetaError> {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM repositories) AS repositories, \
                    (SELECT count(*) FROM manifests) AS manifests, \
                    (SELECT count(*) FROM tags) AS tags, \
                    (SELECT count(*) FROM blobs WHERE deleting_at IS NULL) AS blobs, \
                    (SELECT coalesce(sum(size), 0) FROM blobs WHERE deleting_at IS NULL) \
                      AS blob_bytes",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let count = |column: &str| row.get::<i64, _>(column).max(0) as u64;
        Ok(ContentCounts {
            repositories: count("repositories"),
            manifests: count("manifests"),
            tags: count("tags"),
            blobs: count("blobs"),
            blob_bytes: count("blob_bytes"),
        })
    }

    pub async fn close(self) {
        self.pool.close().await;
    }
}

async fn blob_records(pool: &SqlitePool) -> Result<Vec<BlobRecord>, MetaError> {
    let rows =
        sqlx::query("SELECT digest, size FROM blobs WHERE deleting_at IS NULL ORDER BY digest")
            .fetch_all(pool)
            .await
            .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(BlobRecord {
                digest: super::registry::parse_digest(row.get("digest"))?,
                size: row.get::<i64, _>("size").max(0) as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::ports::{UploadSession, UploadSessions as _};

    /// Puts `data` in `bytes` as a blob, the way a finished upload does.
    async fn store_bytes(bytes: &berth_storage::FsBlobStore, upload: &str, data: &'static [u8]) {
        use berth_core::ports::BlobStore as _;
        bytes.create_upload(upload).await.unwrap();
        let stream: berth_core::ports::ByteStream =
            Box::pin(futures_util::stream::once(async move {
                Ok(bytes::Bytes::from_static(data))
            }));
        bytes.append_upload(upload, 0, stream, None).await.unwrap();
        bytes
            .commit_upload(upload, &Digest::sha256_of(data), data.len() as u64)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_snapshot_holds_the_blob_records_of_the_moment_it_was_taken() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap();
        let digest = Digest::sha256_of(b"layer");
        let session = UploadSession {
            id: "s1".into(),
            repo: "acme/app".parse().unwrap(),
            size: 5,
            created_at: 1,
            updated_at: 1,
            owner: None,
        };
        meta.create_upload_session(&session, None).await.unwrap();
        let bytes = berth_storage::FsBlobStore::open(dir.path().join("blobs")).unwrap();
        store_bytes(&bytes, "s1", b"layer").await;
        meta.complete_upload_session("s1", &digest, 5, 2, &bytes, None)
            .await
            .unwrap();
        let copy = dir.path().join("copy.db");
        meta.snapshot_into(&copy).await.unwrap();
        // A later commit is not in the copy.
        let later = UploadSession {
            id: "s2".into(),
            ..session
        };
        meta.create_upload_session(&later, None).await.unwrap();
        store_bytes(&bytes, "s2", b"later").await;
        meta.complete_upload_session("s2", &Digest::sha256_of(b"later"), 5, 3, &bytes, None)
            .await
            .unwrap();
        assert_eq!(meta.blob_records().await.unwrap().len(), 2);

        let snapshot = SqliteSnapshot::open(&copy).await.unwrap();
        assert_eq!(
            snapshot.blob_records().await.unwrap(),
            vec![BlobRecord { digest, size: 5 }]
        );
        let counts = snapshot.counts().await.unwrap();
        assert_eq!((counts.blobs, counts.blob_bytes), (1, 5));
        assert_eq!(counts.repositories, 1);
        let (version, latest) = snapshot.schema_versions().await.unwrap();
        assert!(version == latest && latest >= 10, "{version} {latest}");
        snapshot.close().await;
        assert!(
            !dir.path().join("copy.db-wal").exists(),
            "reading the copy wrote beside it"
        );
        // An existing file is never overwritten.
        assert!(meta.snapshot_into(&copy).await.is_err());
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_berth_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        std::fs::write(&path, b"not a database at all, just some bytes").unwrap();
        let err = SqliteSnapshot::open(&path).await.unwrap_err();
        assert!(err.to_string().contains("is not a Berth database"), "{err}");
        let err = SqliteSnapshot::open(&dir.path().join("absent.db"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }
}
