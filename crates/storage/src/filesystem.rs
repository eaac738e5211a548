//! The local filesystem store: `blobs/<alg>/<2 hex>/<hex>` and `uploads/<id>` under one root.

use crate::append::{append_file, append_small, write_all_vectored, Caching};
use crate::stream::{io_error, read_blob_file, read_file};
use berth_core::ports::{BlobStore, ByteStream, CollectionLock, StoreError, WHOLE_BODY_MAX};
use berth_oci::{ByteRange, Digest};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};

/// Blob bytes on a local filesystem. Blobs become visible only by an atomic rename of a
/// fully written and fsynced upload file, so a crash never leaves a blob under a wrong name.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsBlobStore> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs"))?;
        fs::create_dir_all(root.join("uploads"))?;
        Ok(FsBlobStore { root })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path_under(&self.root, digest)
    }

    /// The directory `blobs/` and `uploads/` are under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Crash recovery of the upload scratch files, for startup: run it before serving,
    /// while no other process uses this store. `sessions` maps every open session's id to
    /// the size its metadata acknowledged.
    ///
    /// - A crash during an append can leave bytes of an unacknowledged chunk at the end of
    ///   a file; resuming would re-hash them. They are cut off.
    /// - A crash between creating an upload file and recording its session leaves a file
    ///   no session owns, which would never expire. It is removed.
    /// - Sessions whose file is shorter than acknowledged, or missing when bytes were
    ///   acknowledged, cannot resume; they are returned in [`UploadRecovery::lost`] for the
    ///   caller to end. A session with no bytes yet has no file (the first append makes it).
    pub fn recover_uploads(&self, sessions: &HashMap<String, u64>) -> io::Result<UploadRecovery> {
        let mut report = UploadRecovery::default();
        let mut present = HashSet::new();
        for entry in fs::read_dir(self.root.join("uploads"))? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let Ok(id) = entry.file_name().into_string() else {
                continue; // not a name Berth gives
            };
            let path = entry.path();
            match sessions.get(&id) {
                Some(&acknowledged) => {
                    present.insert(id.clone());
                    let len = entry.metadata()?.len();
                    if len > acknowledged {
                        let file = OpenOptions::new().write(true).open(&path)?;
                        file.set_len(acknowledged)?;
                        file.sync_all()?;
                        report.trimmed += 1;
                    } else if len < acknowledged {
                        report.lost.push(id);
                    }
                }
                None => match fs::remove_file(&path) {
                    Ok(()) => report.removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                },
            }
        }
        report.lost.extend(
            sessions
                .iter()
                .filter(|(id, acknowledged)| **acknowledged > 0 && !present.contains(*id))
                .map(|(id, _)| id.clone()),
        );
        Ok(report)
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        // Session ids are ours (hex), but never let one name a path outside uploads/.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(StoreError::NotFound);
        }
        Ok(self.root.join("uploads").join(id))
    }

    /// An upload's file, opened for an append.
    /// Appends to upload `id`'s scratch file, which its first append (at offset 0) makes.
    /// Small appends of a known length are received whole and written in one trip to the
    /// blocking pool, through the page cache.
    async fn append_to_upload(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
        caching: Caching,
    ) -> Result<u64, StoreError> {
        let path = self.upload_path(id)?;
        let open = move || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(offset == 0)
                .truncate(false)
                .open(&path)
        };
        if let Some(len) = expected_len.filter(|len| *len <= WHOLE_BODY_MAX) {
            return append_small(open, offset, data, len).await;
        }
        let file = blocking(move || open().map_err(io_error)).await?;
        append_file(file, offset, data, expected_len, caching).await
    }
}

/// Where a store rooted at `root` keeps blob `digest` (a backup uses the same layout).
pub(crate) fn blob_path_under(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(&hex[..2])
        .join(hex)
}

/// What [`FsBlobStore::recover_uploads`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadRecovery {
    /// Upload files cut back to their session's acknowledged size.
    pub trimmed: usize,
    /// Upload files no session owned, removed.
    pub removed: usize,
    /// Sessions whose bytes are missing or shorter than acknowledged.
    pub lost: Vec<String>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Io(e)),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let path = self.blob_path(digest);
        blocking(move || match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io(e)),
        })
        .await
    }

    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError> {
        let path = self.blob_path(digest);
        let (file, start, len) = blocking(move || {
            let file = File::open(&path).map_err(io_error)?;
            let size = file.metadata().map_err(StoreError::Io)?.len();
            Ok(match range {
                Some(r) => (file, r.start, r.len().min(size.saturating_sub(r.start))),
                None => (file, 0, size),
            })
        })
        .await?;
        Ok(read_blob_file(file, start, len))
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        blocking(move || remove_if_present(&path)).await
    }

    async fn delete_blobs(&self, digests: &[Digest]) -> Result<(), StoreError> {
        // One trip to the blocking pool for the whole batch.
        let paths: Vec<PathBuf> = digests.iter().map(|d| self.blob_path(d)).collect();
        blocking(move || paths.iter().try_for_each(|path| remove_if_present(path))).await
    }

    async fn lock_collection(&self) -> Result<Option<CollectionLock>, StoreError> {
        let path = self.root.join("gc.lock");
        blocking(move || {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(StoreError::Io)?;
            // An advisory lock the kernel drops with the process, however it ends.
            match file.try_lock() {
                Ok(()) => Ok(Some(Box::new(file) as CollectionLock)),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(err)) => Err(StoreError::Io(err)),
            }
        })
        .await
    }

    async fn create_upload(&self, id: &str) -> Result<(), StoreError> {
        // The scratch file is made by the first append (at offset 0): a push whose only
        // request after the `POST` is the `PUT` carrying the whole blob spares a file create
        // and a trip to the blocking pool. A session without a file holds no bytes.
        self.upload_path(id).map(|_| ())
    }

    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.append_to_upload(id, offset, data, expected_len, Caching::AroundLarge)
            .await
    }

    async fn append_upload_hot(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.append_to_upload(id, offset, data, expected_len, Caching::Keep)
            .await
    }

    async fn read_upload(&self, id: &str) -> Result<ByteStream, StoreError> {
        let path = self.upload_path(id)?;
        let (file, len) = blocking(move || {
            let file = File::open(&path).map_err(io_error)?;
            let len = file.metadata().map_err(StoreError::Io)?.len();
            Ok((file, len))
        })
        .await?;
        Ok(read_file(file, 0, len))
    }

    async fn commit_upload(&self, id: &str, digest: &Digest, size: u64) -> Result<(), StoreError> {
        // Recovery cut the file to its acknowledged size and every append cuts back what
        // it does not complete, so the whole file is the upload.
        let upload = self.upload_path(id)?;
        let target = self.blob_path(digest);
        blocking(move || {
            let file = match File::open(&upload) {
                Ok(file) => file,
                // An empty blob: no append ever made the scratch file.
                Err(e) if e.kind() == io::ErrorKind::NotFound && size == 0 => {
                    File::create_new(&upload).map_err(StoreError::Io)?
                }
                Err(e) => return Err(io_error(e)),
            };
            if target.exists() {
                // Same digest, same bytes: keep the existing blob.
                drop(file);
                return remove_if_present(&upload);
            }
            file.sync_all().map_err(StoreError::Io)?;
            drop(file);
            let dir = target.parent().ok_or(StoreError::NotFound)?;
            fs::create_dir_all(dir).map_err(StoreError::Io)?;
            fs::rename(&upload, &target).map_err(StoreError::Io)?;
            sync_dir(dir).map_err(StoreError::Io)
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        let path = self.upload_path(id)?;
        blocking(move || remove_if_present(&path)).await
    }

    async fn put_small_blob(
        &self,
        id: &str,
        digest: &Digest,
        frames: Vec<Bytes>,
    ) -> Result<(), StoreError> {
        // Written beside its final name and renamed within that directory: the shared
        // `uploads/` directory and a cross-directory rename (which the kernel serializes
        // filesystem-wide) are left out of a small push, whose cost is mostly the kernel's.
        let upload = self.upload_path(id)?;
        let target = self.blob_path(digest);
        let partial_name = format!(".{id}.partial");
        blocking(move || {
            // A first append that failed may have left an empty scratch file.
            remove_if_present(&upload)?;
            if target.exists() {
                return Ok(()); // same digest, same bytes
            }
            let dir = target.parent().ok_or(StoreError::NotFound)?;
            fs::create_dir_all(dir).map_err(StoreError::Io)?;
            let partial = dir.join(partial_name);
            let written = write_synced(&partial, &frames)
                .and_then(|()| fs::rename(&partial, &target))
                .and_then(|()| sync_dir(dir));
            if written.is_err() {
                let _ = fs::remove_file(&partial);
            }
            written.map_err(StoreError::Io)
        })
        .await
    }
}

/// Creates `path` with `frames` as its content and flushes it to stable storage.
fn write_synced(path: &Path, frames: &[Bytes]) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|frame| IoSlice::new(frame)).collect();
    write_all_vectored(&mut file, &mut slices, |_| Ok(false))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::StreamExt;

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        let items: Vec<io::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Box::pin(futures_util::stream::iter(items))
    }

    fn failing_body() -> ByteStream {
        let items: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"partial")),
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            )),
        ];
        Box::pin(futures_util::stream::iter(items))
    }

    async fn collect(mut s: ByteStream) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn upload_append_commit_and_read_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.create_upload("u1").await.unwrap();
        assert_eq!(
            store
                .append_upload("u1", 0, body(&[b"hello ", b"wor"]), None)
                .await
                .unwrap(),
            9
        );
        assert_eq!(
            store
                .append_upload("u1", 9, body(&[b"ld"]), Some(2))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            collect(store.read_upload("u1").await.unwrap()).await,
            b"hello world"
        );
        let digest = Digest::sha256_of(b"hello world");
        store.commit_upload("u1", &digest, 11).await.unwrap();
        assert_eq!(store.blob_size(&digest).await.unwrap(), Some(11));
        assert!(matches!(
            store.read_upload("u1").await,
            Err(StoreError::NotFound)
        ));
        let part = store
            .read_blob(&digest, Some(ByteRange { start: 6, end: 10 }))
            .await
            .unwrap();
        assert_eq!(collect(part).await, b"world");
    }

    #[tokio::test]
    async fn failed_appends_leave_the_upload_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        store.create_upload("u2").await.unwrap();
        store
            .append_upload("u2", 0, body(&[b"abc"]), None)
            .await
            .unwrap();
        assert!(matches!(
            store.append_upload("u2", 3, failing_body(), None).await,
            Err(StoreError::Source(_))
        ));
        assert!(matches!(
            store
                .append_upload("u2", 3, body(&[b"defgh"]), Some(2))
                .await,
            Err(StoreError::LengthMismatch { .. })
        ));
        assert!(matches!(
            store.append_upload("u2", 3, body(&[b"d"]), Some(2)).await,
            Err(StoreError::LengthMismatch { .. })
        ));
        assert_eq!(
            collect(store.read_upload("u2").await.unwrap()).await,
            b"abc"
        );
    }

    #[tokio::test]
    async fn recovery_makes_upload_files_agree_with_their_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        for (id, bytes) in [
            ("acked", &b"abc"[..]),
            ("torn", b"abcdef"),
            ("orphan", b"xyz"),
            ("short", b"a"),
        ] {
            store.create_upload(id).await.unwrap();
            store
                .append_upload(id, 0, body(&[bytes]), None)
                .await
                .unwrap();
        }
        store.create_upload("fresh").await.unwrap();
        let sessions: HashMap<String, u64> = [
            ("acked", 3),
            ("torn", 3),
            ("short", 2),
            ("gone", 5),
            ("fresh", 0),
        ]
        .into_iter()
        .map(|(id, size)| (id.to_owned(), size))
        .collect();
        let mut report = store.recover_uploads(&sessions).unwrap();
        report.lost.sort();
        assert_eq!(
            report,
            UploadRecovery {
                trimmed: 1,
                removed: 1,
                lost: vec!["gone".to_owned(), "short".to_owned()],
            }
        );
        assert_eq!(
            collect(store.read_upload("acked").await.unwrap()).await,
            b"abc"
        );
        assert_eq!(
            collect(store.read_upload("torn").await.unwrap()).await,
            b"abc"
        );
        assert!(matches!(
            store.read_upload("orphan").await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn missing_things_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let digest = Digest::sha256_of(b"nothing");
        assert_eq!(store.blob_size(&digest).await.unwrap(), None);
        assert!(matches!(
            store.read_blob(&digest, None).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.read_upload("../etc").await,
            Err(StoreError::NotFound)
        ));
        store.delete_upload("absent").await.unwrap();
        store.delete_blob(&digest).await.unwrap();
    }
}
