//! Blob uploads: sessions, chunks, completion with digest verification, mounts, expiry.

use super::{store_error, Registry};
use crate::error::{Error, Result};
use crate::ports::{ByteStream, StoreError, UploadSession};
use crate::time::now_unix;
use berth_oci::{Algorithm, ByteRange, Digest, DigestHasher, RepoName};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The running hash of an upload, valid for its first `size` bytes.
struct HashState {
    size: u64,
    hasher: DigestHasher,
}

/// Per-session serialization and hash state on this node. Losing it (restart, another node)
/// only costs a re-read of the uploaded bytes.
#[derive(Default)]
pub(super) struct UploadLocks {
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<HashState>>>>>,
}

impl UploadLocks {
    fn slot(&self, id: &str) -> Arc<tokio::sync::Mutex<Option<HashState>>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.entry(id.to_owned()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.remove(id);
    }
}

/// How a chunk is framed by the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkFraming {
    /// `Content-Range` of a PATCH: must start at the current size.
    pub range: Option<ByteRange>,
    /// `Content-Length`, when the client sent one.
    pub length: Option<u64>,
}

impl Registry {
    /// Opens an upload session in `repo`.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadSession> {
        let now = now_unix();
        let session = UploadSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            repo: repo.clone(),
            size: 0,
            created_at: now,
            updated_at: now,
        };
        self.blobs
            .create_upload(&session.id)
            .await
            .map_err(|e| store_error("create upload", e))?;
        self.meta.create_upload_session(&session).await?;
        Ok(session)
    }

    /// The session `id` of `repo`, or `UploadUnknown`.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadSession> {
        match self.meta.upload_session(id).await? {
            Some(session) if &session.repo == repo => Ok(session),
            _ => Err(Error::UploadUnknown),
        }
    }

    /// Appends one chunk to a session, all or nothing.
    pub async fn append_chunk(
        &self,
        repo: &RepoName,
        id: &str,
        framing: ChunkFraming,
        body: ByteStream,
    ) -> Result<UploadSession> {
        let slot = self.uploads.slot(id);
        let mut hash = slot.lock().await;
        let session = self.upload_status(repo, id).await?;
        self.append_locked(session, &mut hash, framing, body).await
    }

    async fn append_locked(
        &self,
        mut session: UploadSession,
        hash: &mut Option<HashState>,
        framing: ChunkFraming,
        body: ByteStream,
    ) -> Result<UploadSession> {
        let mut expected_len = framing.length;
        if let Some(range) = framing.range {
            if range.start != session.size {
                return Err(Error::ChunkRejected(format!(
                    "chunk starts at byte {} but the upload has {} bytes; send chunks in order",
                    range.start, session.size
                )));
            }
            if framing.length.is_some_and(|len| len != range.len()) {
                return Err(Error::ChunkRejected(format!(
                    "Content-Range covers {} bytes but Content-Length is {}",
                    range.len(),
                    framing.length.unwrap_or_default()
                )));
            }
            expected_len = Some(range.len());
        }
        let base = self
            .hash_state(&session, hash.take(), Algorithm::Sha256)
            .await?;
        let tentative = Arc::new(Mutex::new(base.hasher.clone()));
        let sink = tentative.clone();
        let hashed: ByteStream = Box::pin(body.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                sink.lock().unwrap_or_else(|e| e.into_inner()).update(bytes);
            }
        }));
        let appended = self
            .blobs
            .append_upload(&session.id, session.size, hashed, expected_len)
            .await;
        let appended = match appended {
            Ok(n) => n,
            Err(StoreError::LengthMismatch { expected, actual }) if framing.range.is_some() => {
                *hash = Some(base);
                return Err(Error::ChunkRejected(format!(
                    "Content-Range covers {expected} bytes but the body carried {actual}"
                )));
            }
            Err(err) => {
                *hash = Some(base);
                return Err(store_error("append upload", err));
            }
        };
        if appended == 0 {
            *hash = Some(base);
            return Ok(session);
        }
        let new_size = session.size + appended;
        let now = now_unix();
        if !self
            .meta
            .advance_upload_session(&session.id, session.size, new_size, now)
            .await?
        {
            // Someone else moved or ended the session (another node); our bytes are stale.
            return Err(Error::UploadUnknown);
        }
        let hasher = Arc::try_unwrap(tentative)
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_else(|shared| shared.lock().unwrap_or_else(|e| e.into_inner()).clone());
        *hash = Some(HashState {
            size: new_size,
            hasher,
        });
        session.size = new_size;
        session.updated_at = now;
        Ok(session)
    }

    /// The hash of the session's bytes so far: from memory when current, else re-read.
    async fn hash_state(
        &self,
        session: &UploadSession,
        cached: Option<HashState>,
        algorithm: Algorithm,
    ) -> Result<HashState> {
        if let Some(state) = cached {
            if state.size == session.size && state.hasher.algorithm() == algorithm {
                return Ok(state);
            }
        }
        let mut hasher = DigestHasher::new(algorithm);
        if session.size > 0 {
            let mut stream = self
                .blobs
                .read_upload(&session.id)
                .await
                .map_err(|e| store_error("read upload", e))?;
            // Only the acknowledged bytes count: a crash mid-append may leave more.
            let mut read = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| store_error("read upload", StoreError::Io(e)))?;
                let wanted = (session.size - read).min(chunk.len() as u64) as usize;
                hasher.update(&chunk[..wanted]);
                read += wanted as u64;
                if read == session.size {
                    break;
                }
            }
            if read != session.size {
                return Err(Error::internal(
                    "read upload",
                    format!("upload holds {read} bytes, session says {}", session.size),
                ));
            }
        }
        Ok(HashState {
            size: session.size,
            hasher,
        })
    }

    /// Appends the final chunk (possibly empty), verifies `digest` and commits the blob.
    pub async fn complete_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        framing: ChunkFraming,
        body: ByteStream,
    ) -> Result<u64> {
        let slot = self.uploads.slot(id);
        let mut hash = slot.lock().await;
        let session = self.upload_status(repo, id).await?;
        let session = self
            .append_locked(session, &mut hash, framing, body)
            .await?;
        let state = self
            .hash_state(&session, hash.take(), digest.algorithm())
            .await?;
        let actual = state.hasher.finish();
        if &actual != digest {
            self.discard_upload(&session.id).await;
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        self.blobs
            .commit_upload(&session.id, digest)
            .await
            .map_err(|e| store_error("commit upload", e))?;
        self.meta
            .complete_upload_session(&session.id, digest, session.size, now_unix())
            .await?;
        drop(hash);
        self.uploads.forget(id);
        Ok(session.size)
    }

    /// Pushes a whole blob in one request (`POST ...?digest=`).
    pub async fn upload_monolithic(
        &self,
        repo: &RepoName,
        digest: &Digest,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let session = self.start_upload(repo).await?;
        let framing = ChunkFraming {
            range: None,
            length,
        };
        let result = self
            .complete_upload(repo, &session.id, digest, framing, body)
            .await;
        if result.is_err() {
            self.discard_upload(&session.id).await;
        }
        result
    }

    /// Cancels a session and removes its bytes.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let slot = self.uploads.slot(id);
        let _guard = slot.lock().await;
        let session = self.upload_status(repo, id).await?;
        self.discard_upload(&session.id).await;
        Ok(())
    }

    async fn discard_upload(&self, id: &str) {
        if let Err(err) = self.meta.remove_upload_session(id).await {
            tracing::warn!(upload = id, error = %err, "could not remove upload session");
        }
        if let Err(err) = self.blobs.delete_upload(id).await {
            tracing::warn!(upload = id, error = %err, "could not remove upload bytes");
        }
        self.uploads.forget(id);
    }

    /// Links `digest` from `from` into `repo` if `from` holds it; the caller has checked
    /// that the principal may pull from `from`. Returns the size when mounted.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<Option<u64>> {
        let Some(size) = self.meta.linked_blob_size(from, digest).await? else {
            return Ok(None);
        };
        self.meta.link_blob(repo, digest, size, now_unix()).await?;
        Ok(Some(size))
    }

    /// Expires sessions idle for longer than the configured TTL; returns how many.
    pub async fn expire_uploads(&self) -> Result<usize> {
        let before = now_unix() - self.options.upload_ttl.as_secs() as i64;
        // One bounded batch per call; the caller runs this periodically.
        let stale = self.meta.stale_upload_sessions(before, 1000).await?;
        for session in &stale {
            self.discard_upload(&session.id).await;
        }
        Ok(stale.len())
    }
}
