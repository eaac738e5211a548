//! Blob uploads: sessions, chunks, completion with digest verification, mounts, expiry.

use super::{store_error, Registry};
use crate::error::{Error, Result};
use crate::ports::{ByteStream, LinkPrecheck, StoreError, UploadSession, WHOLE_BODY_MAX};
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
///
/// Only sessions found in the store get a slot, and a slot goes when its session ends; as a
/// bound against sessions that end elsewhere (another node, a repository deletion), idle
/// slots are dropped once `MAX_SLOTS` are held.
#[derive(Default)]
pub(super) struct UploadLocks {
    sessions: Mutex<HashMap<String, Slot>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<HashState>>>;

/// A session's slot, held: no other request of this node works on the session meanwhile.
type SessionGuard = tokio::sync::OwnedMutexGuard<Option<HashState>>;

/// Slots kept before idle ones are dropped; each holds an id and a hasher (~200 bytes).
const MAX_SLOTS: usize = 10_000;

impl UploadLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot of a session already holding one.
    fn existing(&self, id: &str) -> Option<Slot> {
        self.map().get(id).cloned()
    }

    /// The slot of a session the caller has found in the store, created if needed.
    fn slot(&self, id: &str) -> Slot {
        let mut sessions = self.map();
        if let Some(slot) = sessions.get(id) {
            return slot.clone();
        }
        if sessions.len() >= MAX_SLOTS {
            // A slot nobody holds only caches a hash, which a re-read rebuilds.
            sessions.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        sessions.entry(id.to_owned()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        self.map().remove(id);
    }

    fn len(&self) -> usize {
        self.map().len()
    }
}

/// Whether `id` has the shape of the session ids Berth issues (32 lowercase hex digits, a
/// simple UUID). Anything else names no session and is refused before any lookup.
fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether an append records the session's new size in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Advance,
    /// The caller completes the session right after, which records everything at once.
    LeaveToCompletion,
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
    /// Opens an upload session in `repo` for `owner` (the signed-in account; `None` for
    /// anonymous callers). `UploadLimit` when the owner holds `max_upload_sessions` already.
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        owner: Option<&str>,
    ) -> Result<UploadSession> {
        let now = now_unix();
        let session = UploadSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            repo: repo.clone(),
            size: 0,
            created_at: now,
            updated_at: now,
            owner: owner.map(str::to_owned),
        };
        self.blobs
            .create_upload(&session.id)
            .await
            .map_err(|e| store_error("create upload", e))?;
        let limit = self.options.max_upload_sessions;
        let created = self.meta.create_upload_session(&session, limit).await;
        if !matches!(created, Ok(true)) {
            if let Err(err) = self.blobs.delete_upload(&session.id).await {
                tracing::warn!(upload = %session.id, error = %err, "could not remove upload bytes");
            }
        }
        match created? {
            true => {
                // Its first chunk then finds the slot without a second lookup.
                self.uploads.slot(&session.id);
                Ok(session)
            }
            false => Err(Error::UploadLimit {
                limit: limit.unwrap_or_default(),
            }),
        }
    }

    /// The session `id` of `repo`, or `UploadUnknown`.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadSession> {
        if !is_upload_id(id) {
            return Err(Error::UploadUnknown);
        }
        match self.meta.upload_session(id).await? {
            Some(session) if &session.repo == repo => Ok(session),
            _ => Err(Error::UploadUnknown),
        }
    }

    /// The session `id` of `repo`, locked against concurrent requests on it. Memory is only
    /// spent on ids of sessions that exist: an unknown id is refused before it gets a slot.
    async fn lock_session(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<(UploadSession, SessionGuard)> {
        let (session, _, guard) = self.lock_session_reading(repo, id, None).await?;
        Ok((session, guard))
    }

    /// [`Registry::lock_session`], and when `completing` names the digest the session is
    /// about to become, the same read under the lock brings its [`LinkPrecheck`].
    async fn lock_session_reading(
        &self,
        repo: &RepoName,
        id: &str,
        completing: Option<&Digest>,
    ) -> Result<(UploadSession, LinkPrecheck, SessionGuard)> {
        if !is_upload_id(id) {
            return Err(Error::UploadUnknown);
        }
        let slot = match self.uploads.existing(id) {
            Some(slot) => slot,
            None => {
                self.upload_status(repo, id).await?;
                self.uploads.slot(id)
            }
        };
        let guard = slot.lock_owned().await;
        // Read again under the lock: another request may have moved or ended the session.
        let read = match completing {
            Some(digest) => {
                self.meta
                    .upload_session_to_complete(id, repo, digest)
                    .await?
            }
            None => (self.meta.upload_session(id).await?).map(|s| (s, LinkPrecheck::default())),
        };
        match read {
            Some((session, precheck)) if &session.repo == repo => Ok((session, precheck, guard)),
            // Another repository's session: its slot stays, serializing its own requests.
            Some(_) => Err(Error::UploadUnknown),
            None => {
                // Ended meanwhile (here or on another node): nothing is left to serialize.
                drop(guard);
                self.uploads.forget(id);
                Err(Error::UploadUnknown)
            }
        }
    }

    /// How many sessions this node keeps a lock and hash for (bounded; for tests and metrics).
    pub fn upload_slots(&self) -> usize {
        self.uploads.len()
    }

    /// Appends one chunk to a session, all or nothing.
    pub async fn append_chunk(
        &self,
        repo: &RepoName,
        id: &str,
        framing: ChunkFraming,
        body: ByteStream,
    ) -> Result<UploadSession> {
        let (session, mut hash) = self.lock_session(repo, id).await?;
        self.append_locked(session, &mut hash, framing, body, Record::Advance)
            .await
    }

    async fn append_locked(
        &self,
        mut session: UploadSession,
        hash: &mut Option<HashState>,
        framing: ChunkFraming,
        body: ByteStream,
        record: Record,
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
        let limit = self.options.max_blob_size;
        if let (Some(limit), Some(len)) = (limit, expected_len) {
            let end = session.size.saturating_add(len);
            if end > limit {
                // Refused before a byte is read; the blob could never be completed.
                self.discard_upload(&session.id).await;
                return Err(Error::BlobTooLarge {
                    limit,
                    size: end.to_string(),
                });
            }
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
        let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let body = match limit {
            Some(limit) => cap_stream(hashed, limit.saturating_sub(session.size), &overflowed),
            None => hashed,
        };
        let appended = self
            .blobs
            .append_upload(&session.id, session.size, body, expected_len)
            .await;
        if overflowed.load(std::sync::atomic::Ordering::Relaxed) {
            // The append rolled back; the rest of the session cannot become a blob either.
            self.discard_upload(&session.id).await;
            return Err(Error::BlobTooLarge {
                limit: limit.unwrap_or_default(),
                size: format!("more than {}", limit.unwrap_or_default()),
            });
        }
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
        if record == Record::Advance
            && !self
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
        let (session, precheck, mut hash) =
            self.lock_session_reading(repo, id, Some(digest)).await?;
        if let Some(len) = whole_small_blob(&session, framing) {
            let frames = self.receive_small_blob(&session, len, body).await?;
            let mut hasher = DigestHasher::new(digest.algorithm());
            frames.iter().for_each(|frame| hasher.update(frame));
            self.verify_digest(&session, digest, hasher.finish())
                .await?;
            let size = self
                .store_verified(&session, digest, len, precheck, Staged::Received(frames))
                .await?;
            drop(hash);
            self.uploads.forget(id);
            return Ok(size);
        }
        // The session's size is not recorded for the last chunk: the completion below ends
        // the session, and if it fails first, the store still has the size before this
        // chunk, which is what a retry appends after (bytes past it are not acknowledged, as
        // after a crash mid-append). One write less on the single writer per blob.
        let session = self
            .append_locked(session, &mut hash, framing, body, Record::LeaveToCompletion)
            .await?;
        let state = self
            .hash_state(&session, hash.take(), digest.algorithm())
            .await?;
        self.verify_digest(&session, digest, state.hasher.finish())
            .await?;
        let size = self
            .store_verified(&session, digest, session.size, precheck, Staged::InUpload)
            .await?;
        drop(hash);
        self.uploads.forget(id);
        Ok(size)
    }

    /// Ends the session with `DigestMismatch` unless the bytes hashed to `digest`.
    async fn verify_digest(
        &self,
        session: &UploadSession,
        digest: &Digest,
        actual: Digest,
    ) -> Result<()> {
        if &actual == digest {
            return Ok(());
        }
        self.discard_upload(&session.id).await;
        Err(Error::DigestMismatch {
            expected: digest.clone(),
            actual,
        })
    }

    /// Receives the whole body of a small blob (`len` bytes, announced) into memory; a body
    /// that is cut short, runs long or breaks off leaves the session as it was.
    async fn receive_small_blob(
        &self,
        session: &UploadSession,
        len: u64,
        body: ByteStream,
    ) -> Result<Vec<bytes::Bytes>> {
        if let Some(limit) = self.options.max_blob_size.filter(|limit| len > *limit) {
            // Refused before a byte is read; the blob could never be completed.
            self.discard_upload(&session.id).await;
            return Err(Error::BlobTooLarge {
                limit,
                size: len.to_string(),
            });
        }
        crate::ports::receive_exactly(body, len)
            .await
            .map_err(|e| store_error("receive blob", e))
    }

    /// Stores the verified bytes of `session` as blob `digest` and ends the session, unless
    /// the namespace's quota cannot hold them. Returns the blob's size.
    async fn store_verified(
        &self,
        session: &UploadSession,
        digest: &Digest,
        size: u64,
        precheck: LinkPrecheck,
        staged: Staged,
    ) -> Result<u64> {
        // Refused before the bytes become a blob when the quota is known to be exceeded.
        if let Some((used, quota)) = precheck.over_quota(size) {
            self.discard_upload(&session.id).await;
            return Err(Error::QuotaExceeded { used, quota });
        }
        let stored = match staged {
            Staged::InUpload => self.blobs.commit_upload(&session.id, digest, size).await,
            Staged::Received(frames) => {
                self.blobs.put_small_blob(&session.id, digest, frames).await
            }
        };
        stored.map_err(|e| store_error("commit upload", e))?;
        let linked = self
            .meta
            .complete_upload_session(
                &session.id,
                digest,
                size,
                now_unix(),
                self.blobs.as_ref(),
                Some(&precheck),
            )
            .await;
        if let Err(err) = linked {
            self.discard_upload(&session.id).await;
            if matches!(err, crate::ports::MetaError::QuotaExceeded { .. }) {
                // A concurrent push took the room: the bytes are the collector's to free.
                if let Err(err) = self.meta.abandon_blob(digest, size).await {
                    tracing::warn!(%digest, error = %err, "could not hand refused bytes to GC");
                }
            }
            return Err(err.into());
        }
        Ok(size)
    }

    /// Pushes a whole blob in one request (`POST ...?digest=`).
    pub async fn upload_monolithic(
        &self,
        repo: &RepoName,
        owner: Option<&str>,
        digest: &Digest,
        length: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        if let (Some(limit), Some(len)) = (self.options.max_blob_size, length) {
            if len > limit {
                return Err(Error::BlobTooLarge {
                    limit,
                    size: len.to_string(),
                });
            }
        }
        if let Some(len) = length {
            // Refused before a byte is stored when the length says the quota cannot hold it.
            if let Some((used, quota)) = self.meta.quota_check(repo, digest, len).await? {
                return Err(Error::QuotaExceeded { used, quota });
            }
        }
        let session = self.start_upload(repo, owner).await?;
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
        let (session, _guard) = self.lock_session(repo, id).await?;
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
        Ok(self.meta.mount_blob(repo, from, digest, now_unix()).await?)
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

/// Where a completed upload's verified bytes wait to become a blob.
enum Staged {
    /// In the session's scratch space in the blob store.
    InUpload,
    /// Received whole, in memory (a small blob pushed in one request).
    Received(Vec<bytes::Bytes>),
}

/// The announced length of `framing`'s body when it is a whole blob of at most
/// [`WHOLE_BODY_MAX`] bytes completing `session`, which holds nothing yet. Such a blob
/// (the common `POST` then `PUT ?digest=` with the body) is received into memory, verified
/// and stored in one step: no scratch file, and the fewest trips to the blocking pool.
fn whole_small_blob(session: &UploadSession, framing: ChunkFraming) -> Option<u64> {
    let len = framing.length.filter(|len| *len <= WHOLE_BODY_MAX)?;
    let whole = match framing.range {
        Some(range) => range.start == 0 && range.len() == len,
        None => true,
    };
    (session.size == 0 && whole).then_some(len)
}

/// Passes `stream` through until more than `room` bytes have gone by, then fails it (and
/// sets `overflowed`), so the blob store rolls the append back.
fn cap_stream(
    stream: ByteStream,
    room: u64,
    overflowed: &Arc<std::sync::atomic::AtomicBool>,
) -> ByteStream {
    let overflowed = overflowed.clone();
    let mut seen = 0u64;
    Box::pin(stream.map(move |chunk| {
        let bytes = chunk?;
        seen = seen.saturating_add(bytes.len() as u64);
        if seen > room {
            overflowed.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(std::io::Error::other("the blob exceeds max_blob_size"));
        }
        Ok(bytes)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_have_the_issued_shape() {
        assert!(is_upload_id(&uuid::Uuid::new_v4().simple().to_string()));
        for bad in [
            "",
            "abc",
            &"a".repeat(33),
            &"A".repeat(32),
            &"g".repeat(32),
            &"é".repeat(16),
        ] {
            assert!(!is_upload_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn idle_slots_are_dropped_past_the_bound_and_held_ones_kept() {
        let locks = UploadLocks::default();
        let held = locks.slot("held");
        for n in 1..MAX_SLOTS {
            locks.slot(&format!("idle-{n}"));
        }
        assert_eq!(locks.len(), MAX_SLOTS);
        locks.slot("one-more");
        assert_eq!(locks.len(), 2, "only the held slot and the new one stay");
        assert!(
            Arc::ptr_eq(&held, &locks.slot("held")),
            "a held slot is never replaced"
        );
    }
}
