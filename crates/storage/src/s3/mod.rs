//! The S3-compatible store: blobs as objects under `blobs/`, each upload a chain of segment
//! objects under `uploads/<id>/` (in the bucket, so any node continues it) that becomes
//! one blob by a server-side multipart copy.
//!
//! - An append writes its bytes as new segments (streamed, multipart when large), so it is
//!   all or nothing: on failure the new segments are removed and the old ones are intact.
//! - A last segment shorter than S3's minimum part (more, far into huge blobs: see
//!   `layout::full_segment`) is merged with the next append's bytes, so every segment but
//!   the last can become a part and a blob of 5 TiB needs under 10,000 of them.
//! - Segments are ordinary objects: a node that lacks a session's hash reads them once.
//! - The session's marker object is written by its first append, not when it opens: a small
//!   blob pushed whole (`put_small_blob`) goes straight under its name, and its session
//!   costs the store one listing (see "What a small push asks of the store" in
//!   docs/PERFORMANCE.md).
//! - Commit copies the acknowledged chain into the blob's key inside the store
//!   (UploadPartCopy; CopyObject for one segment); the blob appears when the multipart
//!   upload completes, after the caller verified the digest.

mod copy;
mod layout;

pub use layout::{full_segment, segment_cut, MAX_PARTS, MIN_PART};

use berth_core::ports::{BlobStore, ByteStream, CollectionLock, StoreError};
use berth_oci::{ByteRange, Digest};
use copy::PartCopier;
use futures_util::{StreamExt, TryStreamExt};
use layout::{Keys, Segment, UploadObjects};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::buffered::BufWriter;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How a bucket is reached.
#[derive(Clone)]
pub struct S3Settings {
    /// `http(s)://host:port` of an S3-compatible service; `None`: AWS S3 in `region`.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Keys are put under this folder of the bucket (empty: its root).
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `endpoint/bucket/key` rather than `bucket.endpoint/key`.
    pub path_style: bool,
    /// Blob GETs answer with a presigned URL of the object instead of its bytes.
    pub redirect: bool,
    /// Extra trusted roots for an HTTPS endpoint (a PEM bundle; `AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"******")
            .field("path_style", &self.path_style)
            .field("redirect", &self.redirect)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}

/// Lifetime of a presigned blob URL: the client must start its download within it.
const REDIRECT_TTL: Duration = Duration::from_secs(15 * 60);
/// Size of the parts a large segment is streamed in, and how many go at once: the memory
/// one append holds is about `WRITE_BUFFER * (WRITE_CONCURRENCY + 1)`.
const WRITE_BUFFER: usize = 8 << 20;
const WRITE_CONCURRENCY: usize = 2;
/// Part copies of one commit sent at once.
const COPY_CONCURRENCY: usize = 8;
/// A blob GET streamed through the node is read as ranged GETs of `READ_PART` bytes,
/// `READS_AHEAD` in flight: one GET is served by one of the store's cores (Garage checks
/// every block it sends), so a single stream is bound by that core while the next range's
/// GET keeps another busy. The memory one pull holds is about
/// `READ_PART * (READS_AHEAD + 1)`, whatever the blob's size.
const READ_PART: u64 = 4 << 20;
const READS_AHEAD: usize = 2;
/// How long the startup check may take before the bucket counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Blob bytes in an S3-compatible bucket.
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    keys: Keys,
    copier: Arc<PartCopier>,
    redirect: bool,
    /// The collection lock: on S3 it is held within this process (see `lock_collection`).
    collection: Arc<tokio::sync::Mutex<()>>,
    description: String,
}

impl fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("bucket", &self.description)
            .field("redirect", &self.redirect)
            .finish()
    }
}

fn store_error(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        other => StoreError::Io(io::Error::other(other.to_string())),
    }
}

fn other_error(message: impl Into<String>) -> StoreError {
    StoreError::Io(io::Error::other(message.into()))
}

/// Session ids are ours (hex), but never let one name a key outside its folder.
fn checked_id(id: &str) -> Result<&str, StoreError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(StoreError::NotFound);
    }
    Ok(id)
}

/// The bytes of object `key`, or of its `range`, requested when the stream is first polled.
fn object_stream(
    store: Arc<AmazonS3>,
    key: Path,
    range: Option<std::ops::Range<u64>>,
) -> ByteStream {
    let stream = futures_util::stream::once(async move {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        store
            .get_opts(&key, options)
            .await
            .map(|result| result.into_stream().map_err(io::Error::other))
            .map_err(io::Error::other)
    })
    .try_flatten();
    Box::pin(stream)
}

/// Whether a prefix is made of characters that need no escaping in a URL or a copy source.
fn valid_prefix(prefix: &str) -> bool {
    prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && !prefix.split('/').any(|part| part == "." || part == "..")
}

impl S3BlobStore {
    /// Connects to the bucket and proves it readable and writable (an object written,
    /// read back and removed), so a wrong endpoint, bucket or key fails here with one line.
    pub async fn open(settings: &S3Settings) -> Result<S3BlobStore, String> {
        let store = Self::connect(settings)?;
        store.probe().await.map_err(|e| {
            format!(
                "S3 bucket {} is not usable: {}",
                store.description,
                first_line(&e)
            )
        })?;
        Ok(store)
    }

    /// Builds the client without touching the network.
    pub fn connect(settings: &S3Settings) -> Result<S3BlobStore, String> {
        if settings.bucket.is_empty() {
            return Err("[storage] bucket is required for kind = \"s3\"".into());
        }
        if !valid_prefix(&settings.prefix) {
            return Err(format!(
                "[storage] prefix {:?} may only hold letters, digits and - _ . /",
                settings.prefix
            ));
        }
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", settings.region));
        let endpoint_url = url::Url::parse(&endpoint)
            .map_err(|e| format!("[storage] endpoint {endpoint:?} is not a URL: {e}"))?;
        if !matches!(endpoint_url.scheme(), "http" | "https") || endpoint_url.host().is_none() {
            return Err(format!(
                "[storage] endpoint {endpoint:?} must be an http:// or https:// URL"
            ));
        }
        let mut options = ClientOptions::new()
            .with_allow_http(endpoint_url.scheme() == "http")
            // Blobs stream for as long as they take; a dead peer is caught by the connect
            // timeout and by the connection's own errors.
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5));
        let mut copier_client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15 * 60));
        if let Some(bundle) = &settings.ca_bundle {
            let pem = std::fs::read(bundle)
                .map_err(|e| format!("cannot read CA bundle {}: {e}", bundle.display()))?;
            let certificates = object_store::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("CA bundle {} is not usable: {e}", bundle.display()))?;
            for certificate in certificates {
                options = options.with_root_certificate(certificate);
            }
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("CA bundle {} is not usable: {e}", bundle.display()))?
            {
                copier_client = copier_client.add_root_certificate(certificate);
            }
        }
        let base = endpoint.trim_end_matches('/');
        let bucket_url = if settings.path_style {
            format!("{base}/{}/", settings.bucket)
        } else {
            let mut url = endpoint_url.clone();
            let host = format!(
                "{}.{}",
                settings.bucket,
                endpoint_url.host_str().unwrap_or("")
            );
            url.set_host(Some(&host))
                .map_err(|e| format!("[storage] bucket {:?}: {e}", settings.bucket))?;
            url.set_path("/");
            url.to_string()
        };
        let bucket_url = url::Url::parse(&bucket_url)
            .map_err(|e| format!("[storage] bucket URL {bucket_url:?}: {e}"))?;
        let mut builder = AmazonS3Builder::new();
        if settings.endpoint.is_some() {
            // object_store takes a virtual-hosted endpoint with the bucket in it.
            builder = builder.with_endpoint(if settings.path_style {
                endpoint.trim_end_matches('/')
            } else {
                bucket_url.as_str().trim_end_matches('/')
            });
        }
        let store = builder
            .with_region(&settings.region)
            .with_bucket_name(&settings.bucket)
            .with_access_key_id(&settings.access_key_id)
            .with_secret_access_key(&settings.secret_access_key)
            .with_virtual_hosted_style_request(!settings.path_style)
            // The payload's integrity is checked by the digest verification; signing it
            // would hash every byte a second time.
            .with_unsigned_payload(true)
            // Few retries: a store that is down fails the request (and startup) quickly,
            // and an upload is left to resume rather than held open.
            .with_retry(object_store::RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
                ..Default::default()
            })
            .with_client_options(options)
            .build()
            .map_err(|e| format!("[storage] is not usable: {e}"))?;
        let copier = Arc::new(PartCopier::new(
            copier_client
                .build()
                .map_err(|e| format!("[storage] HTTP client: {e}"))?,
            bucket_url,
            settings.bucket.clone(),
            AwsCredential {
                key_id: settings.access_key_id.clone(),
                secret_key: settings.secret_access_key.clone(),
                token: None,
            },
            settings.region.clone(),
        ));
        Ok(S3BlobStore {
            store: Arc::new(store),
            keys: Keys::new(&settings.prefix),
            copier,
            redirect: settings.redirect,
            collection: Arc::new(tokio::sync::Mutex::new(())),
            description: format!("{:?} at {endpoint}", settings.bucket),
        })
    }

    async fn probe(&self) -> Result<(), String> {
        let check = async {
            let key = Path::from(self.keys.probe());
            self.store
                .put(&key, PutPayload::from_static(b"berth"))
                .await
                .map_err(|e| e.to_string())?;
            let read = self.store.get(&key).await.map_err(|e| e.to_string())?;
            let bytes = read.bytes().await.map_err(|e| e.to_string())?;
            self.store.delete(&key).await.map_err(|e| e.to_string())?;
            if bytes.as_ref() != b"berth" {
                return Err("an object read back differs from what was written".to_owned());
            }
            Ok(())
        };
        match tokio::time::timeout(PROBE_TIMEOUT, check).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {} seconds",
                PROBE_TIMEOUT.as_secs()
            )),
        }
    }

    /// The upload's objects, `NotFound` when its session marker is missing: the session is
    /// gone, or it has not appended yet (and so holds no bytes).
    async fn upload_objects(&self, id: &str) -> Result<UploadObjects, StoreError> {
        let objects = self.list_upload(id).await?;
        if !objects.marker {
            return Err(StoreError::NotFound);
        }
        Ok(objects)
    }

    /// The objects in the upload's folder, whatever they are (none for a session that has
    /// not appended yet, or one that is gone).
    async fn list_upload(&self, id: &str) -> Result<UploadObjects, StoreError> {
        let dir = self.keys.upload_dir(checked_id(id)?);
        let prefix = Path::from(dir.as_str());
        let listing: Vec<(String, u64)> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| (meta.location.to_string(), meta.size))
            .try_collect()
            .await
            .map_err(store_error)?;
        Ok(UploadObjects::from_listing(&dir, listing))
    }

    /// The marker of a session's first append; written before any of its segments, so a
    /// segment never exists without it (removal takes the marker last).
    async fn mark_upload(&self, id: &str) -> Result<(), StoreError> {
        let marker = Path::from(self.keys.upload_marker(checked_id(id)?));
        self.store
            .put(&marker, PutPayload::new())
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn delete_keys(&self, keys: Vec<String>) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let paths = futures_util::stream::iter(keys.into_iter().map(|k| Ok(Path::from(k)))).boxed();
        self.store
            .delete_stream(paths)
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                other => Err(store_error(other)),
            })
    }

    fn read_object(&self, key: String, range: Option<std::ops::Range<u64>>) -> ByteStream {
        object_stream(self.store.clone(), Path::from(key), range)
    }

    /// The bytes of `first` (a GET already answered), then of `rest` in ranged GETs of
    /// `READ_PART`, `READS_AHEAD` of them fetched at once; each range is held as the
    /// frames it arrived in (no copy) until its turn.
    fn read_ahead(
        &self,
        key: Path,
        first: object_store::GetResult,
        rest: std::ops::Range<u64>,
    ) -> ByteStream {
        type Part = futures_util::future::BoxFuture<'static, io::Result<Vec<bytes::Bytes>>>;
        fn frames(result: object_store::GetResult) -> Part {
            Box::pin(result.into_stream().map_err(io::Error::other).try_collect())
        }
        let store = self.store.clone();
        let later = (rest.start..rest.end)
            .step_by(READ_PART as usize)
            .map(move |part_start| {
                let part = part_start..(part_start + READ_PART).min(rest.end);
                Box::pin(object_stream(store.clone(), key.clone(), Some(part)).try_collect())
                    as Part
            });
        let parts = futures_util::stream::iter(std::iter::once(frames(first)).chain(later))
            .buffered(READS_AHEAD);
        Box::pin(
            parts
                .map_ok(|frames| futures_util::stream::iter(frames.into_iter().map(Ok)))
                .try_flatten(),
        )
    }

    /// The bytes of a chain of segments, one after another.
    fn read_chain(&self, chain: Vec<Segment>) -> ByteStream {
        let reads: Vec<ByteStream> = chain
            .into_iter()
            .map(|segment| self.read_object(segment.key, None))
            .collect();
        Box::pin(futures_util::stream::iter(reads).flatten())
    }

    /// Streams `data` after the chain `chain` (acknowledged up to `offset`) into new
    /// segments; returns their keys and the bytes received, or an error after which the
    /// caller removes whatever `written` holds.
    async fn write_segments(
        &self,
        id: &str,
        chain: &[Segment],
        offset: u64,
        mut data: ByteStream,
        expected_len: Option<u64>,
        written: &mut Vec<String>,
    ) -> Result<(u64, Option<String>), StoreError> {
        let nonce = &uuid::Uuid::new_v4().simple().to_string()[..12];
        // A short last segment is merged into the first new one (S3's minimum part).
        let merge = chain
            .last()
            .filter(|tail| tail.len < full_segment(tail.start))
            .cloned();
        let mut received = 0u64;
        let mut writer: Option<(BufWriter, u64, u64)> = None; // (writer, start, length)
        let mut merged_tail = None;
        let result = async {
            while let Some(chunk) = data.next().await {
                let mut chunk = chunk.map_err(StoreError::Source)?;
                received += chunk.len() as u64;
                if let Some(expected) = expected_len.filter(|e| received > *e) {
                    return Err(StoreError::LengthMismatch {
                        expected,
                        actual: received,
                    });
                }
                while !chunk.is_empty() {
                    let (current, start, length) = match &mut writer {
                        Some(w) => w,
                        None => {
                            let (start, w, length) = match &merge {
                                Some(tail) if merged_tail.is_none() => {
                                    let mut w = self.segment_writer(id, tail.start, nonce);
                                    let mut bytes = self.read_object(tail.key.clone(), None);
                                    while let Some(b) = bytes.next().await {
                                        let b = b.map_err(StoreError::Io)?;
                                        w.put(b).await.map_err(store_error)?;
                                    }
                                    merged_tail = Some(tail.key.clone());
                                    (tail.start, w, tail.len)
                                }
                                _ => {
                                    let start = offset + received - chunk.len() as u64;
                                    (start, self.segment_writer(id, start, nonce), 0)
                                }
                            };
                            writer.insert((w, start, length))
                        }
                    };
                    let room = segment_cut(*start) - *length;
                    let take = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                    current
                        .put(chunk.split_to(take))
                        .await
                        .map_err(store_error)?;
                    *length += take as u64;
                    if *length == segment_cut(*start) {
                        let (mut done, start, _) = writer.take().ok_or(StoreError::NotFound)?;
                        written.push(self.keys.segment(id, start, nonce));
                        done.shutdown().await.map_err(StoreError::Io)?;
                    }
                }
            }
            if let Some(expected) = expected_len.filter(|e| received != *e) {
                return Err(StoreError::LengthMismatch {
                    expected,
                    actual: received,
                });
            }
            if let Some((mut last, start, _)) = writer.take() {
                written.push(self.keys.segment(id, start, nonce));
                last.shutdown().await.map_err(StoreError::Io)?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            if let Some((mut unfinished, _, _)) = writer.take() {
                if let Err(err) = unfinished.abort().await {
                    tracing::warn!(upload = id, error = %err, "could not abort a segment upload");
                }
            }
            return Err(error);
        }
        Ok((received, merged_tail))
    }

    fn segment_writer(&self, id: &str, start: u64, nonce: &str) -> BufWriter {
        let store: Arc<dyn ObjectStore> = self.store.clone();
        BufWriter::with_capacity(
            store,
            Path::from(self.keys.segment(id, start, nonce)),
            WRITE_BUFFER,
        )
        .with_max_concurrency(WRITE_CONCURRENCY)
    }

    /// Copies `chain` into the blob at `key` inside the store, atomically.
    async fn assemble(&self, key: &str, chain: &[Segment]) -> Result<(), StoreError> {
        let target = Path::from(key);
        match chain {
            [] => self
                .store
                .put(&target, PutPayload::new())
                .await
                .map(|_| ())
                .map_err(store_error),
            [only] => self
                .store
                .copy(&Path::from(only.key.as_str()), &target)
                .await
                .map_err(store_error),
            parts => {
                let upload = self
                    .store
                    .create_multipart(&target)
                    .await
                    .map_err(store_error)?;
                // Owned futures: nothing borrowed crosses the stream (and the await points).
                let copies: Vec<_> = parts
                    .iter()
                    .enumerate()
                    .map(|(i, segment)| {
                        let copier = self.copier.clone();
                        let store = self.store.clone();
                        let (key, upload, source) =
                            (key.to_owned(), upload.clone(), segment.key.clone());
                        let small = segment.len < MIN_PART;
                        async move {
                            if small {
                                // Only the last can be: some stores (Garage) refuse to copy
                                // a source under 5 MiB, so its bytes (fewer) are sent.
                                let bytes = store
                                    .get(&Path::from(source.as_str()))
                                    .await
                                    .map_err(|e| e.to_string())?
                                    .bytes()
                                    .await
                                    .map_err(|e| e.to_string())?;
                                return store
                                    .put_part(
                                        &Path::from(key.as_str()),
                                        &upload,
                                        i,
                                        PutPayload::from_bytes(bytes),
                                    )
                                    .await
                                    .map_err(|e| e.to_string());
                            }
                            copier
                                .copy_part(&key, &upload, i + 1, &source)
                                .await
                                .map(|etag| PartId { content_id: etag })
                        }
                    })
                    .collect();
                let copied: Result<Vec<PartId>, String> = futures_util::stream::iter(copies)
                    .buffered(COPY_CONCURRENCY)
                    .try_collect()
                    .await;
                let completed = match copied {
                    Ok(parts) => self
                        .store
                        .complete_multipart(&target, &upload, parts)
                        .await
                        .map(|_| ())
                        .map_err(store_error),
                    Err(message) => Err(other_error(message)),
                };
                if completed.is_err() {
                    if let Err(err) = self.store.abort_multipart(&target, &upload).await {
                        tracing::warn!(blob = key, error = %err, "could not abort a blob's multipart copy");
                    }
                }
                completed
            }
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        match self.store.head(&Path::from(self.keys.blob(digest))).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn read_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<ByteStream, StoreError> {
        let key = Path::from(self.keys.blob(digest));
        let start = range.map_or(0, |r| r.start);
        let requested_end = range.map(|r| r.end.saturating_add(1));
        // An empty object has no byte to range over (S3 answers 416): one plain GET.
        let first_range = (*digest != Digest::of(digest.algorithm(), b"")).then(|| {
            start..requested_end.map_or(start + READ_PART, |end| end.min(start + READ_PART))
        });
        let options = GetOptions {
            range: first_range
                .clone()
                .or_else(|| range.map(|r| r.start..r.end.saturating_add(1)))
                .map(GetRange::Bounded),
            ..Default::default()
        };
        // The first request is made here, so a missing blob is `NotFound` rather than a
        // broken body.
        let first = self
            .store
            .get_opts(&key, options)
            .await
            .map_err(store_error)?;
        let end = requested_end.unwrap_or(first.meta.size);
        if first_range.is_none_or(|first_range| first_range.end >= end) {
            return Ok(Box::pin(first.into_stream().map_err(io::Error::other)));
        }
        Ok(self.read_ahead(key, first, start + READ_PART..end))
    }

    async fn blob_location(&self, digest: &Digest) -> Result<Option<String>, StoreError> {
        if !self.redirect {
            return Ok(None);
        }
        let url = self
            .store
            .signed_url(
                http::Method::GET,
                &Path::from(self.keys.blob(digest)),
                REDIRECT_TTL,
            )
            .await
            .map_err(store_error)?;
        Ok(Some(url.to_string()))
    }

    async fn delete_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        match self.store.delete(&Path::from(self.keys.blob(digest))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn delete_blobs(&self, digests: &[Digest]) -> Result<(), StoreError> {
        // DeleteObjects, up to 1,000 keys a request.
        self.delete_keys(digests.iter().map(|d| self.keys.blob(d)).collect())
            .await
    }

    /// Held within this process only: S3 has no lock that a dead holder frees. Collectors
    /// of several processes are kept apart by the server's data-directory lock (SQLite) or
    /// the collector's cluster lock (a PostgreSQL advisory lock, `ClusterLocks`); `berth
    /// gc` refuses to run on S3 storage.
    async fn lock_collection(&self) -> Result<Option<CollectionLock>, StoreError> {
        Ok(self
            .collection
            .clone()
            .try_lock_owned()
            .ok()
            .map(|guard| Box::new(guard) as CollectionLock))
    }

    /// Deferred to the first append (`mark_upload`), as the port allows: most small blobs
    /// are pushed whole and never append.
    async fn create_upload(&self, id: &str) -> Result<(), StoreError> {
        checked_id(id).map(|_| ())
    }

    async fn append_upload(
        &self,
        id: &str,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Result<u64, StoreError> {
        let objects = self.list_upload(id).await?;
        if !objects.marker {
            // The session's first append marks it; later ones find a session that is gone.
            if offset > 0 {
                return Err(StoreError::NotFound);
            }
            self.mark_upload(id).await?;
        }
        let chain = objects
            .chain_to(offset)
            .ok_or_else(|| other_error(format!("upload {id} holds no chain of {offset} bytes")))?;
        // Leftovers of appends that failed or were never acknowledged go first, so that
        // only this append's segments can extend the chain.
        let stale: Vec<String> = objects
            .segments
            .iter()
            .filter(|s| !chain.contains(s))
            .map(|s| s.key.clone())
            .chain(objects.other.iter().cloned())
            .collect();
        self.delete_keys(stale).await?;
        let mut written = Vec::new();
        match self
            .write_segments(id, &chain, offset, data, expected_len, &mut written)
            .await
        {
            Ok((received, merged_tail)) => {
                if let Some(tail) = merged_tail {
                    // Superseded by the merged segment; a leftover is removed next time.
                    if let Err(err) = self.delete_keys(vec![tail]).await {
                        tracing::debug!(upload = id, error = %err, "could not remove a merged segment");
                    }
                }
                Ok(received)
            }
            Err(error) => {
                if let Err(err) = self.delete_keys(written).await {
                    tracing::warn!(upload = id, error = %err, "could not remove a failed append's segments");
                }
                Err(error)
            }
        }
    }

    async fn read_upload(&self, id: &str) -> Result<ByteStream, StoreError> {
        let objects = self.upload_objects(id).await?;
        Ok(self.read_chain(objects.longest_chain()))
    }

    async fn commit_upload(&self, id: &str, digest: &Digest, size: u64) -> Result<(), StoreError> {
        let key = self.keys.blob(digest);
        if self.blob_size(digest).await? != Some(size) {
            // An empty blob may come from a session that never appended (and so has no marker).
            let objects = match size {
                0 => self.list_upload(id).await?,
                _ => self.upload_objects(id).await?,
            };
            let chain = objects.chain_to(size).ok_or_else(|| {
                other_error(format!("upload {id} holds no chain of {size} bytes"))
            })?;
            self.assemble(&key, &chain).await?;
        }
        if let Err(err) = self.delete_upload(id).await {
            // The blob is in place; the upload's objects are garbage the expiry removes.
            tracing::warn!(upload = id, error = %err, "could not remove a committed upload");
        }
        Ok(())
    }

    /// Straight under the blob's name in one PUT (which appears whole): the caller verified
    /// the bytes, and a session that never appended holds nothing to copy. Writing an
    /// existing blob again stores the same bytes, so no HEAD is spent to skip it. The
    /// session's folder is then listed once, and is normally empty.
    async fn put_small_blob(
        &self,
        id: &str,
        digest: &Digest,
        frames: Vec<bytes::Bytes>,
    ) -> Result<(), StoreError> {
        checked_id(id)?;
        let payload: PutPayload = frames.into_iter().collect();
        self.store
            .put(&Path::from(self.keys.blob(digest)), payload)
            .await
            .map_err(store_error)?;
        if let Err(err) = self.delete_upload(id).await {
            // The blob is in place; a marker or segments left are the expiry's to remove.
            tracing::warn!(upload = id, error = %err, "could not remove a small blob's session");
        }
        Ok(())
    }

    async fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        let dir = Path::from(self.keys.upload_dir(checked_id(id)?).as_str());
        let keys: Vec<String> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(store_error)?;
        // The marker goes last: while it is there, the session is still findable.
        let marker = self.keys.upload_marker(id);
        let (markers, segments): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|k| *k == marker);
        self.delete_keys(segments).await?;
        self.delete_keys(markers).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_that_would_need_escaping_are_refused() {
        for good in ["", "registry", "a/b-c_d.e/"] {
            assert!(valid_prefix(good), "{good}");
        }
        for bad in ["a b", "a?b", "../x", "a/./b", "é"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:3900".into()),
            region: "garage".into(),
            bucket: "registry".into(),
            prefix: String::new(),
            access_key_id: "GK1".into(),
            secret_access_key: "very-secret".into(),
            path_style: true,
            redirect: true,
            ca_bundle: None,
        };
        assert!(!format!("{settings:?}").contains("very-secret"));
        let store = S3BlobStore::connect(&settings).unwrap();
        assert!(!format!("{store:?}").contains("very-secret"));
    }

    #[test]
    fn misconfiguration_is_explained_before_any_request() {
        let mut settings = S3Settings {
            endpoint: Some("ftp://example".into()),
            region: "garage".into(),
            bucket: "registry".into(),
            prefix: String::new(),
            access_key_id: "GK1".into(),
            secret_access_key: "s".into(),
            path_style: true,
            redirect: false,
            ca_bundle: None,
        };
        let err = S3BlobStore::connect(&settings).unwrap_err();
        assert!(err.contains("must be an http:// or https:// URL"), "{err}");
        settings.endpoint = Some("http://127.0.0.1:1".into());
        settings.bucket = String::new();
        let err = S3BlobStore::connect(&settings).unwrap_err();
        assert!(err.contains("bucket is required"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_the_startup_check_in_one_line() {
        let settings = S3Settings {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: "garage".into(),
            bucket: "registry".into(),
            prefix: String::new(),
            access_key_id: "GK1".into(),
            secret_access_key: "s".into(),
            path_style: true,
            redirect: false,
            ca_bundle: None,
        };
        let err = S3BlobStore::open(&settings).await.unwrap_err();
        assert!(
            err.starts_with("S3 bucket \"registry\" at http://127.0.0.1:1 is not usable"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}
