//! Blobs through a mirror: served from the cache, or fetched once however many clients ask,
//! streamed to the first client while being stored, and verified (digest and length) before
//! they become visible. A failed or corrupt fetch leaves nothing behind.

use super::{scratch_id, upstream_failure, MirrorTarget, Mirrors};
use crate::error::{Error, Result};
use crate::ports::{ByteStream, MetaError};
use crate::registry::BlobContent;
use berth_oci::{Digest, DigestHasher, RangeRequest};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How a shared fetch ended: `Err` says why nothing was cached.
type Outcome = Option<std::result::Result<(), String>>;

/// Blob fetches under way, by digest: the followers wait for the leader's outcome.
#[derive(Default)]
pub(crate) struct BlobFlights {
    running: Mutex<HashMap<Digest, watch::Receiver<Outcome>>>,
}

/// How long the first client may stall before the fetch goes on without it (the others
/// are waiting for the blob to be stored).
const CLIENT_STALL: Duration = Duration::from_secs(30);

/// Frames in flight towards the first client and towards storage. An upstream frame is up
/// to ~400 KiB (the HTTP client's read buffer): a few each way keep the pipeline full,
/// while more only held memory (8 each way, with storage's queue behind them, made ~24 MiB
/// per cold pull) that the allocator handed back and faulted in again as it swung.
const FRAMES_AHEAD: usize = 3;

/// The fetch this caller leads; dropped unfinished (the caller went away before the
/// download started), it tells the followers so they do not wait forever.
struct Lead {
    mirrors: Mirrors,
    digest: Digest,
    sender: Option<watch::Sender<Outcome>>,
}

impl Lead {
    fn finish(mut self, outcome: std::result::Result<(), String>) {
        self.settle(outcome);
    }

    fn settle(&mut self, outcome: std::result::Result<(), String>) {
        if let Some(sender) = self.sender.take() {
            let mut running = self
                .mirrors
                .inner
                .blob_flights
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            running.remove(&self.digest);
            let _ = sender.send(Some(outcome));
        }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.settle(Err("the fetch was abandoned".to_owned()));
    }
}

enum Flight {
    Lead(Lead),
    Follow(watch::Receiver<Outcome>),
}

/// A blob served through a mirror.
pub type MirrorBlob = BlobContent;

impl Mirrors {
    /// A blob of a mirrored repository (`with_body`: GET, else HEAD).
    pub async fn blob(
        &self,
        target: &MirrorTarget,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<MirrorBlob> {
        let counters = self.counters(target);
        if let Some(found) = self.cached_blob(target, digest, range, with_body).await? {
            counters.hit();
            if with_body {
                counters.saved(found.range.map_or(found.size, |r| r.len()));
            }
            return Ok(found);
        }
        if !with_body {
            // A HEAD tells the size; the bytes come with the first GET.
            let head = self
                .timed(
                    target,
                    self.upstream(target).head_blob(&target.remote, digest),
                )
                .await;
            return match head {
                Ok(Some(size)) => Ok(BlobContent {
                    size,
                    range: None,
                    body: None,
                }),
                Ok(None) => Err(Error::BlobUnknown(digest.clone())),
                Err(err) => Err(upstream_failure(&err, "asking the upstream for the blob")),
            };
        }
        let waiting = match self.join_flight(digest) {
            Flight::Lead(lead) => {
                let streaming = self.start_fetch(target, digest, lead).await?;
                match (streaming, range) {
                    // The first client gets the bytes as they arrive.
                    (Some((size, body)), None) => {
                        counters.miss();
                        return Ok(BlobContent {
                            size,
                            range: None,
                            body: Some(body),
                        });
                    }
                    // A range, or no announced length: served once stored.
                    _ => self.join_flight(digest),
                }
            }
            follow => follow,
        };
        if let Flight::Follow(mut outcome) = waiting {
            let settled = outcome
                .wait_for(Option::is_some)
                .await
                .map(|o| o.clone())
                .ok()
                .flatten();
            if let Some(Err(why)) = settled {
                return Err(Error::Upstream(format!(
                    "fetching the blob from the upstream: {why}"
                )));
            }
        }
        match self.cached_blob(target, digest, range, true).await? {
            Some(found) => {
                counters.miss();
                Ok(found)
            }
            None => Err(Error::Upstream(
                "the blob could not be fetched from the upstream".to_owned(),
            )),
        }
    }

    /// The blob from the cache: linked to this repository, or stored for another one (then
    /// linked here). `None`: not cached.
    async fn cached_blob(
        &self,
        target: &MirrorTarget,
        digest: &Digest,
        range: Option<RangeRequest>,
        with_body: bool,
    ) -> Result<Option<BlobContent>> {
        let registry = &self.inner.registry;
        match registry
            .read_blob(&target.local, digest, range, with_body)
            .await
        {
            Ok(found) => return Ok(Some(found)),
            Err(Error::BlobUnknown(_)) => {}
            Err(err) => return Err(err),
        }
        let stored = self
            .inner
            .blobs
            .blob_size(digest)
            .await
            .map_err(|e| Error::internal("blob size", e))?;
        let Some(size) = stored else { return Ok(None) };
        let now = self.inner.clock.now_unix();
        match self
            .inner
            .meta
            .link_blob(&target.local, digest, size, now)
            .await
        {
            Ok(()) => {}
            // Being collected: fetch it again.
            Err(MetaError::BlobCollected(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        }
        match registry
            .read_blob(&target.local, digest, range, with_body)
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(Error::BlobUnknown(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn join_flight(&self, digest: &Digest) -> Flight {
        let mut running = self
            .inner
            .blob_flights
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(outcome) = running.get(digest) {
            return Flight::Follow(outcome.clone());
        }
        let (sender, receiver) = watch::channel(None);
        running.insert(digest.clone(), receiver);
        Flight::Lead(Lead {
            mirrors: self.clone(),
            digest: digest.clone(),
            sender: Some(sender),
        })
    }

    /// Starts the download and the task that stores it; returns the stream for the first
    /// client when the upstream announced the length.
    async fn start_fetch(
        &self,
        target: &MirrorTarget,
        digest: &Digest,
        lead: Lead,
    ) -> Result<Option<(u64, ByteStream)>> {
        let got = self
            .timed(
                target,
                self.upstream(target).get_blob(&target.remote, digest),
            )
            .await;
        let blob = match got {
            Ok(Some(blob)) => blob,
            Ok(None) => {
                lead.finish(Err("the upstream does not have it".to_owned()));
                return Err(Error::BlobUnknown(digest.clone()));
            }
            Err(err) => {
                lead.finish(Err(err.to_string()));
                return Err(upstream_failure(
                    &err,
                    "fetching the blob from the upstream",
                ));
            }
        };
        if let (Some(limit), Some(size)) = (self.inner.max_blob_size, blob.size) {
            if size > limit {
                lead.finish(Err("larger than max_blob_size".to_owned()));
                return Err(Error::BlobTooLarge {
                    limit,
                    size: size.to_string(),
                });
            }
        }
        let id = scratch_id();
        if let Err(err) = self.inner.blobs.create_upload(&id).await {
            lead.finish(Err("cannot store it".to_owned()));
            return Err(Error::internal("mirror scratch space", err));
        }
        let (client_tx, client_rx) = mpsc::channel::<io::Result<Bytes>>(FRAMES_AHEAD);
        let client: Option<ByteStream> = blob.size.map(|_| {
            Box::pin(futures_util::stream::unfold(
                client_rx,
                |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
            )) as ByteStream
        });
        let task = Pump {
            mirrors: self.clone(),
            target: target.clone(),
            digest: digest.clone(),
            id,
            size: blob.size,
        };
        tokio::spawn(task.run(blob.body, client_tx, lead));
        Ok(blob.size.zip(client))
    }
}

/// One blob download: hashed, written to scratch space and copied to the first client,
/// then committed only if digest and length are right.
struct Pump {
    mirrors: Mirrors,
    target: MirrorTarget,
    digest: Digest,
    id: String,
    size: Option<u64>,
}

/// Why a download was not kept.
enum PumpFailure {
    /// The upstream's data is wrong: counted as corrupt.
    Corrupt(String),
    Other(String),
}

impl Pump {
    async fn run(self, body: ByteStream, client: mpsc::Sender<io::Result<Bytes>>, lead: Lead) {
        let inner = &self.mirrors.inner;
        let counters = self.mirrors.counters(&self.target);
        let (store_tx, store_rx) = mpsc::channel::<io::Result<Bytes>>(FRAMES_AHEAD);
        let to_store: ByteStream = Box::pin(futures_util::stream::unfold(
            store_rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        ));
        // Kept in the page cache: the clients after this one pull it from there.
        let append = inner
            .blobs
            .append_upload_hot(&self.id, 0, to_store, self.size);
        let read = self.read(body, store_tx, client.clone());
        let (appended, read) = tokio::join!(append, read);
        let outcome = match (appended, read) {
            (_, Err(failure)) => Err(failure),
            (Err(err), Ok(_)) => Err(PumpFailure::Other(format!("storing it: {err}"))),
            (Ok(_), Ok((actual, total, held))) => {
                self.commit(actual, total).await.map(|()| (total, held))
            }
        };
        match outcome {
            Ok((total, held)) => {
                counters.fetched(total);
                if let Some(last) = held {
                    let _ = tokio::time::timeout(CLIENT_STALL, client.send(Ok(last))).await;
                }
                lead.finish(Ok(()));
            }
            Err(failure) => {
                let why = match failure {
                    PumpFailure::Corrupt(why) => {
                        counters.corrupt();
                        why
                    }
                    PumpFailure::Other(why) => why,
                };
                tracing::warn!(repo = %self.target.local, digest = %self.digest, reason = %why, "an upstream blob was not cached");
                if let Err(err) = inner.blobs.delete_upload(&self.id).await {
                    tracing::warn!(error = %err, "cannot remove a failed download's bytes");
                }
                let _ = client.try_send(Err(io::Error::other(why.clone())));
                lead.finish(Err(why));
            }
        }
    }

    /// Reads the upstream body, feeding storage and (one frame behind, so the last frame
    /// waits for the verdict) the first client. Returns the digest, the length and the
    /// frame held back.
    async fn read(
        &self,
        mut body: ByteStream,
        store: mpsc::Sender<io::Result<Bytes>>,
        client: mpsc::Sender<io::Result<Bytes>>,
    ) -> std::result::Result<(Digest, u64, Option<Bytes>), PumpFailure> {
        let mut hasher = DigestHasher::new(self.digest.algorithm());
        let mut total = 0u64;
        let mut held: Option<Bytes> = None;
        let mut client = Some(client);
        let limit = self.size.or(self.mirrors.inner.max_blob_size);
        while let Some(frame) = body.next().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(err) => {
                    let _ = store
                        .send(Err(io::Error::other("upstream interrupted")))
                        .await;
                    return Err(PumpFailure::Corrupt(format!(
                        "the upstream's body broke off after {total} bytes: {err}"
                    )));
                }
            };
            total += frame.len() as u64;
            if limit.is_some_and(|limit| total > limit) {
                let _ = store.send(Err(io::Error::other("too long"))).await;
                return Err(PumpFailure::Corrupt(format!(
                    "the upstream sent more than the {} bytes announced",
                    limit.unwrap_or_default()
                )));
            }
            hasher.update(&frame);
            if store.send(Ok(frame.clone())).await.is_err() {
                return Err(PumpFailure::Other("storage stopped taking it".to_owned()));
            }
            if let Some(earlier) = held.replace(frame) {
                if let Some(to) = &client {
                    let sent = tokio::time::timeout(CLIENT_STALL, to.send(Ok(earlier))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        // Gone or stalled: the download goes on for the others.
                        client = None;
                    }
                }
            }
        }
        if let Some(size) = self.size.filter(|size| *size != total) {
            return Err(PumpFailure::Corrupt(format!(
                "the upstream sent {total} of the {size} bytes announced"
            )));
        }
        Ok((hasher.finish(), total, held))
    }

    async fn commit(&self, actual: Digest, total: u64) -> std::result::Result<(), PumpFailure> {
        let inner = &self.mirrors.inner;
        if actual != self.digest {
            return Err(PumpFailure::Corrupt(format!(
                "the upstream's blob has digest {actual}, not {}",
                self.digest
            )));
        }
        inner
            .blobs
            .commit_upload(&self.id, &self.digest, total)
            .await
            .map_err(|e| PumpFailure::Other(format!("committing it: {e}")))?;
        inner
            .meta
            .link_blob(
                &self.target.local,
                &self.digest,
                total,
                inner.clock.now_unix(),
            )
            .await
            .map_err(|e| PumpFailure::Other(format!("linking it: {e}")))
    }
}
