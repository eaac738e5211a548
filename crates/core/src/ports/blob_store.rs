//! The blob store port: content-addressed bytes plus the scratch space of upload sessions.

use berth_oci::{ByteRange, Digest};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::io;
use std::pin::Pin;

/// A stream of bytes flowing in or out of a store; never a whole blob in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// The whole of a small stream (an image configuration, say): `None` as soon as it holds
/// more than `max` bytes, so an oversized one is never gathered.
pub async fn collect_at_most(mut stream: ByteStream, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (bytes.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// The longest body a request may have received whole into memory ([`receive_exactly`]):
/// a small blob completing its upload, a small append. The bound keeps a request's memory
/// fixed.
pub const WHOLE_BODY_MAX: u64 = 256 << 10;

/// The frames of a body announced as `len` bytes (at most [`WHOLE_BODY_MAX`]), received
/// whole.
/// A body that breaks off is `Source`; one that carries fewer or more bytes is
/// `LengthMismatch`, noticed at the first frame past `len`, which is not kept.
pub async fn receive_exactly(mut body: ByteStream, len: u64) -> Result<Vec<Bytes>, StoreError> {
    let mut frames = Vec::new();
    let mut received = 0u64;
    while let Some(frame) = body.next().await {
        let frame = frame.map_err(StoreError::Source)?;
        received += frame.len() as u64;
        if received > len {
            break;
        }
        frames.push(frame);
    }
    if received != len {
        return Err(StoreError::LengthMismatch {
            expected: len,
            actual: received,
        });
    }
    Ok(frames)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The incoming byte stream failed (client disconnected, broken body).
    #[error("source stream failed: {0}")]
    Source(io::Error),
    /// The data written does not have the length the caller promised; nothing was kept.
    #[error("expected {expected} bytes, got {actual}")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("storage failure: {0}")]
    Io(io::Error),
}

/// A held [`BlobStore::lock_collection`]: the hold ends when it is dropped.
pub type CollectionLock = Box<dyn std::any::Any + Send + Sync>;

/// Where blob bytes live. Blobs are immutable and named by digest; uploads are appendable
/// scratch files named by session id that become blobs on commit.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// The size of a stored blob, if present.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError>;

    /// Streams a blob, or the inclusive `range` of it.
    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError>;

    /// A URL from which a client may fetch the blob directly, for a limited time (a presigned
    /// URL of an object store), or `None` when its bytes are only served through Berth (the
    /// default). It does not check that the blob exists.
    async fn blob_location(&self, _digest: &Digest) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    /// Removes a blob's bytes (garbage collection); succeeds when they are already gone.
    async fn delete_blob(&self, digest: &Digest) -> Result<(), StoreError>;

    /// Removes the bytes of several blobs (garbage collection); those already gone are
    /// skipped. A backend may do it in one go; the default deletes one at a time.
    async fn delete_blobs(&self, digests: &[Digest]) -> Result<(), StoreError> {
        for digest in digests {
            self.delete_blob(digest).await?;
        }
        Ok(())
    }

    /// The right to delete blobs: at most one collector holds it at a time, across every
    /// process using this store; `None` when another holds it. It ends when the returned
    /// value is dropped or the holding process dies (a `kill -9` frees it), so a collector
    /// finishing an interrupted run knows the interrupted one can no longer delete anything.
    async fn lock_collection(&self) -> Result<Option<CollectionLock>, StoreError>;

    /// Creates empty scratch space for an upload session (a store may defer it to the
    /// session's first append; until then the session holds no bytes).
    async fn create_upload(&self, id: &str) -> Result<(), StoreError>;

    /// Appends `data` at `offset` (the current upload size). All or nothing: on any error,
    /// or when `expected_len` is given and not met, the upload is left at `offset`.
    /// Returns the number of bytes appended.
    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// As [`BlobStore::append_upload`], for bytes that clients will read again at once: a
    /// mirror's fetch, whose first client is seldom its last. A store with a page cache
    /// keeps them there, where large uploads are written around it, so the next pull is
    /// not a disk read. The default is `append_upload`.
    async fn append_upload_hot(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<u64, StoreError> {
        self.append_upload(id, offset, data, expected_len).await
    }

    /// Streams the bytes uploaded so far (to rebuild a hash after a restart). A store that
    /// defers a session's scratch space to its first append may answer `NotFound` for a
    /// session that holds no bytes yet; callers read only sessions that hold some.
    async fn read_upload(&self, id: &str) -> Result<ByteStream, StoreError>;

    /// Durably makes the upload's first `size` bytes (the acknowledged ones, already
    /// verified against `digest` by the caller) the blob `digest`, and removes the upload.
    /// The blob appears under its name all at once, never partly written. Idempotent when
    /// the blob already exists.
    async fn commit_upload(&self, id: &str, digest: &Digest, size: u64) -> Result<(), StoreError>;

    /// Discards an upload's bytes; succeeds when there is nothing to discard.
    async fn delete_upload(&self, id: &str) -> Result<(), StoreError>;

    /// Durably stores `frames`, a whole small blob already received and verified against
    /// `digest` by the caller, for upload `id`, which holds no bytes yet; then as
    /// [`BlobStore::commit_upload`]. A store may write it straight under its name (the
    /// filesystem does, in one trip to the blocking pool, without a scratch file).
    async fn put_small_blob(
        &self,
        id: &str,
        digest: &Digest,
        frames: Vec<bytes::Bytes>,
    ) -> Result<(), StoreError> {
        let len = frames.iter().map(|frame| frame.len() as u64).sum();
        let body: ByteStream = Box::pin(futures_util::stream::iter(frames.into_iter().map(Ok)));
        let appended = self.append_upload(id, 0, body, Some(len)).await?;
        self.commit_upload(id, digest, appended).await
    }
}
