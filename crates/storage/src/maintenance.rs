//! What `berth fsck`, `backup` and `restore` do with the filesystem store's files: check a
//! blob against its record, list every stored file, quarantine a corrupt blob, and export
//! or import blobs (a backup's hard links or copies, a restore's verified copies).
//!
//! Committed blobs are never written in place: they appear by renaming a finished upload
//! and go only by being unlinked. So a hard link to one is a stable copy of its bytes, and
//! a file read while a server runs is never half-written.

use crate::filesystem::{blob_path_under, FsBlobStore};
use berth_oci::{Digest, DigestHasher};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes read at a time when hashing or copying: memory stays constant whatever the size.
const BUFFER: usize = 1 << 20;

/// A blob's file compared with its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobHealth {
    Sound,
    Missing,
    WrongSize { actual: u64 },
    WrongDigest { actual: Digest },
}

/// A file found in the store's directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    pub path: PathBuf,
    pub kind: StoredKind,
    pub size: u64,
    /// The latest of its modification and status-change times, in Unix seconds: a rename
    /// counts, so a blob committed a moment ago from an old upload file looks young.
    pub changed_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredKind {
    /// `blobs/<algorithm>/<2 hex>/<hex>`.
    Blob(Digest),
    /// `uploads/<session id>`.
    Upload(String),
    /// Anything else under `blobs/`: no name Berth writes.
    Unexpected,
}

/// How a blob reached a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported {
    Linked,
    Copied,
}

impl FsBlobStore {
    /// Compares the blob's file with its recorded size and digest, hashing it in constant
    /// memory (only when the size is right).
    pub fn check_blob(&self, digest: &Digest, size: u64) -> io::Result<BlobHealth> {
        let path = blob_path_under(self.root(), digest);
        let actual_size = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobHealth::Missing),
            Err(e) => return Err(e),
        };
        if actual_size != size {
            return Ok(BlobHealth::WrongSize {
                actual: actual_size,
            });
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobHealth::Missing),
            Err(e) => return Err(e),
        };
        let (len, actual) = hash_and_copy(file, digest, None)?;
        Ok(if len != size {
            BlobHealth::WrongSize { actual: len }
        } else if &actual != digest {
            BlobHealth::WrongDigest { actual }
        } else {
            BlobHealth::Sound
        })
    }

    /// Every file under `blobs/` and `uploads/`. Directories are not listed.
    pub fn stored_files(&self) -> io::Result<Vec<StoredFile>> {
        let mut files = Vec::new();
        let blobs = self.root().join("blobs");
        for algorithm in fs::read_dir(&blobs)? {
            let algorithm = algorithm?;
            if !algorithm.file_type()?.is_dir() {
                files.push(stored(algorithm.path(), StoredKind::Unexpected)?);
                continue;
            }
            let algorithm_name = algorithm.file_name().to_string_lossy().into_owned();
            for prefix in fs::read_dir(algorithm.path())? {
                let prefix = prefix?;
                if !prefix.file_type()?.is_dir() {
                    files.push(stored(prefix.path(), StoredKind::Unexpected)?);
                    continue;
                }
                let prefix_name = prefix.file_name().to_string_lossy().into_owned();
                for entry in fs::read_dir(prefix.path())? {
                    let entry = entry?;
                    if entry.file_type()?.is_dir() {
                        continue;
                    }
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let kind = match format!("{algorithm_name}:{name}").parse::<Digest>() {
                        Ok(digest) if name.starts_with(&prefix_name) && prefix_name.len() == 2 => {
                            StoredKind::Blob(digest)
                        }
                        _ => StoredKind::Unexpected,
                    };
                    files.push(stored(entry.path(), kind)?);
                }
            }
        }
        for entry in fs::read_dir(self.root().join("uploads"))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            files.push(stored(entry.path(), StoredKind::Upload(id))?);
        }
        Ok(files)
    }

    /// Removes a file [`FsBlobStore::stored_files`] listed (one already gone is fine).
    pub fn remove_stored_file(&self, file: &StoredFile) -> io::Result<()> {
        match fs::remove_file(&file.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves a blob's file out of `blobs/` into `quarantine/` under the store's root, so it
    /// is no longer served but its bytes are kept for a person to look at. Returns where.
    pub fn quarantine_blob(&self, digest: &Digest) -> io::Result<PathBuf> {
        let dir = self.root().join("quarantine");
        fs::create_dir_all(&dir)?;
        let base = format!("{}-{}", digest.algorithm().as_str(), digest.hex());
        let mut target = dir.join(&base);
        let mut n = 1;
        while target.exists() {
            n += 1;
            target = dir.join(format!("{base}.{n}"));
        }
        fs::rename(blob_path_under(self.root(), digest), &target)?;
        File::open(&dir)?.sync_all()?;
        Ok(target)
    }

    /// Puts the blob under `target_root` at the same relative path: a hard link when
    /// `link` is asked for and the filesystem allows it, else a copy (fsynced). The file
    /// must have its recorded size. Errors name the digest.
    pub fn export_blob(
        &self,
        digest: &Digest,
        size: u64,
        target_root: &Path,
        link: bool,
    ) -> io::Result<Exported> {
        let source = blob_path_under(self.root(), digest);
        let target = blob_path_under(target_root, digest);
        let actual = match fs::metadata(&source) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                    "blob {digest} is in the database but its file is missing (run `berth fsck`)"
                ),
                ))
            }
            Err(e) => return Err(e),
        };
        if actual != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {digest} has {actual} bytes where the database says {size} (run `berth fsck`)"),
            ));
        }
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir)?;
        }
        if link && fs::hard_link(&source, &target).is_ok() {
            return Ok(Exported::Linked);
        }
        fs::copy(&source, &target)?;
        File::open(&target)?.sync_all()?;
        Ok(Exported::Copied)
    }

    /// Copies blob `digest` from the same layout under `source_root` (a backup) into the
    /// store, hashing as it copies: the blob appears (by rename, fsynced) only when the
    /// bytes have the size and digest given.
    pub fn import_blob(&self, source_root: &Path, digest: &Digest, size: u64) -> io::Result<()> {
        let source = blob_path_under(source_root, digest);
        let target = blob_path_under(self.root(), digest);
        if target.exists() {
            return Ok(());
        }
        let input = File::open(&source)
            .map_err(|e| io::Error::new(e.kind(), format!("blob {digest} cannot be read: {e}")))?;
        let scratch = self
            .root()
            .join("uploads")
            .join(format!("import-{}", &digest.hex()[..32]));
        let mut output = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&scratch)?;
        let copied = hash_and_copy(input, digest, Some(&mut output));
        let outcome = copied.and_then(|(len, actual)| {
            if len != size {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {digest} is corrupt: {len} bytes where the database says {size}"),
                ))
            } else if &actual != digest {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {digest} is corrupt: its bytes hash to {actual}"),
                ))
            } else {
                output.sync_all()
            }
        });
        if let Err(err) = outcome {
            let _ = fs::remove_file(&scratch);
            return Err(err);
        }
        drop(output);
        let dir = target.parent().ok_or(io::ErrorKind::NotFound)?;
        fs::create_dir_all(dir)?;
        fs::rename(&scratch, &target)?;
        File::open(dir)?.sync_all()
    }
}

/// Reads `input` to its end, hashing with `digest`'s algorithm and writing to `output` if
/// given. Returns the length read and the digest of what was read.
fn hash_and_copy(
    mut input: File,
    digest: &Digest,
    mut output: Option<&mut File>,
) -> io::Result<(u64, Digest)> {
    let mut hasher = DigestHasher::new(digest.algorithm());
    let mut buffer = vec![0u8; BUFFER];
    let mut len = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        if let Some(out) = output.as_deref_mut() {
            out.write_all(&buffer[..n])?;
        }
        len += n as u64;
    }
    Ok((len, hasher.finish()))
}

fn stored(path: PathBuf, kind: StoredKind) -> io::Result<StoredFile> {
    let meta = fs::symlink_metadata(&path)?;
    Ok(StoredFile {
        size: meta.len(),
        changed_unix: changed_unix(&meta),
        path,
        kind,
    })
}

fn changed_unix(meta: &fs::Metadata) -> i64 {
    let unix = |time: io::Result<SystemTime>| {
        time.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64)
    };
    let modified = unix(meta.modified());
    #[cfg(unix)]
    {
        modified.max(std::os::unix::fs::MetadataExt::ctime(meta))
    }
    #[cfg(not(unix))]
    {
        modified
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::ports::BlobStore as _;
    use bytes::Bytes;

    async fn store_with(dir: &Path, content: &'static [u8]) -> (FsBlobStore, Digest) {
        let store = FsBlobStore::open(dir).unwrap();
        let digest = Digest::sha256_of(content);
        store.create_upload("u").await.unwrap();
        let body: berth_core::ports::ByteStream = Box::pin(futures_util::stream::iter(vec![Ok(
            Bytes::from_static(content),
        )]));
        store.append_upload("u", 0, body, None).await.unwrap();
        store
            .commit_upload("u", &digest, content.len() as u64)
            .await
            .unwrap();
        (store, digest)
    }

    #[tokio::test]
    async fn a_blob_is_sound_missing_short_or_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (store, digest) = store_with(dir.path(), b"layer bytes").await;
        assert_eq!(store.check_blob(&digest, 11).unwrap(), BlobHealth::Sound);
        assert_eq!(
            store.check_blob(&digest, 12).unwrap(),
            BlobHealth::WrongSize { actual: 11 }
        );
        let path = blob_path_under(dir.path(), &digest);
        fs::write(&path, b"LAYER BYTES").unwrap();
        assert_eq!(
            store.check_blob(&digest, 11).unwrap(),
            BlobHealth::WrongDigest {
                actual: Digest::sha256_of(b"LAYER BYTES")
            }
        );
        let moved = store.quarantine_blob(&digest).unwrap();
        assert_eq!(fs::read(moved).unwrap(), b"LAYER BYTES");
        assert_eq!(store.check_blob(&digest, 11).unwrap(), BlobHealth::Missing);
    }

    #[tokio::test]
    async fn stored_files_name_blobs_uploads_and_strays() {
        let dir = tempfile::tempdir().unwrap();
        let (store, digest) = store_with(dir.path(), b"content").await;
        store.create_upload("open-session").await.unwrap();
        let nothing: berth_core::ports::ByteStream = Box::pin(futures_util::stream::iter(Vec::<
            std::io::Result<Bytes>,
        >::new(
        )));
        store
            .append_upload("open-session", 0, nothing, None)
            .await
            .unwrap();
        fs::write(dir.path().join("blobs/sha256/stray"), b"?").unwrap();
        fs::create_dir_all(dir.path().join("blobs/sha256/zz")).unwrap();
        fs::write(dir.path().join("blobs/sha256/zz/not-a-digest"), b"?").unwrap();
        let mut kinds: Vec<StoredKind> = store
            .stored_files()
            .unwrap()
            .into_iter()
            .map(|f| f.kind)
            .collect();
        kinds.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(
            kinds,
            vec![
                StoredKind::Blob(digest),
                StoredKind::Unexpected,
                StoredKind::Unexpected,
                StoredKind::Upload("open-session".into()),
            ]
        );
    }

    #[tokio::test]
    async fn export_links_or_copies_and_import_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (store, digest) = store_with(dir.path(), b"exported").await;
        let backup = tempfile::tempdir().unwrap();
        assert_eq!(
            store.export_blob(&digest, 8, backup.path(), true).unwrap(),
            Exported::Linked
        );
        let copy = tempfile::tempdir().unwrap();
        assert_eq!(
            store.export_blob(&digest, 8, copy.path(), false).unwrap(),
            Exported::Copied
        );
        let err = store
            .export_blob(&digest, 9, copy.path(), false)
            .unwrap_err();
        assert!(err.to_string().contains("has 8 bytes"), "{err}");

        let restored = tempfile::tempdir().unwrap();
        let target = FsBlobStore::open(restored.path()).unwrap();
        target.import_blob(copy.path(), &digest, 8).unwrap();
        assert_eq!(target.check_blob(&digest, 8).unwrap(), BlobHealth::Sound);

        // The backup's file for `other` holds the wrong bytes.
        let other = Digest::sha256_of(b"something else");
        let planted = blob_path_under(copy.path(), &other);
        fs::create_dir_all(planted.parent().unwrap()).unwrap();
        fs::copy(blob_path_under(copy.path(), &digest), &planted).unwrap();
        let err = target.import_blob(copy.path(), &other, 8).unwrap_err();
        assert!(err.to_string().contains("hash to"), "{err}");
        let err = target.import_blob(copy.path(), &other, 3).unwrap_err();
        assert!(err.to_string().contains("8 bytes"), "{err}");
        assert_eq!(target.check_blob(&other, 8).unwrap(), BlobHealth::Missing);
        assert_eq!(
            fs::read_dir(restored.path().join("uploads"))
                .unwrap()
                .count(),
            0,
            "a refused import leaves no scratch file"
        );
    }
}
