//! Online garbage collection: unreferenced blobs past the grace period, orphan manifests and
//! expired upload sessions, removed in small batches while the registry keeps serving.
//!
//! The protocol (see `docs/ARCHITECTURE.md`, "Garbage collection"):
//! 1. Finish what an interrupted run marked: delete the bytes, then the rows.
//! 2. Delete orphan manifests (no repository holds them, no index lists them).
//! 3. Scan the blob table in windows on a reader; for each window, *mark* the candidates in
//!    one write transaction that re-checks them (no manifest reference, no link newer than
//!    the cutoff) and drops their stale links. From the commit on, no path can link them.
//! 4. Delete the marked bytes, then drop the rows.
//!
//! Only one collector runs at a time across processes (`BlobStore::lock_collection`) and
//! across the nodes sharing a database (`ClusterLocks`), so the one finishing an
//! interrupted run knows nobody else is deleting.

use crate::clock::Clock;
use crate::jobs::{JobError, JobHandler, JobOutcome};
use crate::ports::{
    BlobStore, ClaimedJob, ClusterLocks, CollectionLock, LockHold, MetaStore, ProcessLocks,
    StoreError, COLLECTION_LOCK,
};
use crate::Registry;
use berth_oci::Digest;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most rounds of orphan-manifest deletion per run (an index orphans its children).
const ORPHAN_PASSES: usize = 16;

/// The job kind of the recurring collection.
pub const GC_JOB: &str = "gc.collect";

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// A blob nothing references is kept this long after it was stored or last linked
    /// (`gc_grace`): the time a client has between uploading layers and pushing the manifest.
    pub grace: Duration,
    /// How often the recurring job runs (`gc_interval`).
    pub interval: Duration,
    /// Blob rows read per scan query.
    pub window: u32,
    /// Blobs marked, deleted and dropped per batch: what bounds how long the single writer
    /// is held at once.
    pub batch: u32,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            interval: Duration::from_secs(3600),
            window: 5000,
            batch: 500,
        }
    }
}

/// What one run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Blobs deleted (dry: that would be).
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Orphan manifests deleted (dry: found).
    pub manifests: u64,
    /// Expired upload sessions removed (dry: always 0; they are listed by nobody).
    pub uploads: u64,
    /// Blobs an interrupted run had marked and this run finished (included in `blobs`).
    pub resumed: u64,
    pub dry_run: bool,
    pub duration_ms: u64,
}

/// Totals since the process started, for `/metrics`.
#[derive(Debug, Default)]
pub struct GcMetrics {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    pub blobs: AtomicU64,
    pub bytes: AtomicU64,
    pub manifests: AtomicU64,
    /// Sum of run durations, in milliseconds.
    pub duration_ms: AtomicU64,
    pub last_duration_ms: AtomicU64,
}

/// Why a run could not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("another garbage collection is running on this data directory")]
    Busy,
    #[error("garbage collection failed: {0}")]
    Failed(String),
}

impl From<crate::ports::MetaError> for GcError {
    fn from(err: crate::ports::MetaError) -> GcError {
        GcError::Failed(err.to_string())
    }
}

impl From<StoreError> for GcError {
    fn from(err: StoreError) -> GcError {
        GcError::Failed(format!("blob storage: {err}"))
    }
}

/// The collector; cheap to clone.
#[derive(Clone)]
pub struct Collector {
    store: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    registry: Registry,
    clock: Arc<dyn Clock>,
    options: GcOptions,
    metrics: Arc<GcMetrics>,
    locks: Arc<dyn ClusterLocks>,
}

impl Collector {
    pub fn new(
        store: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        registry: Registry,
        clock: Arc<dyn Clock>,
        options: GcOptions,
    ) -> Collector {
        Collector {
            store,
            blobs,
            registry,
            clock,
            options,
            metrics: Arc::default(),
            locks: Arc::new(ProcessLocks::default()),
        }
    }

    /// Keeps collections to one at a time across the nodes sharing the database (the
    /// default, [`ProcessLocks`], suffices for one process).
    pub fn with_locks(mut self, locks: Arc<dyn ClusterLocks>) -> Collector {
        self.locks = locks;
        self
    }

    /// The right to delete blobs, or `None` while another collector has it: the cluster's
    /// lock (other nodes) and then the store's (other processes on the same directory).
    async fn hold_collection(&self) -> Result<Option<(LockHold, CollectionLock)>, GcError> {
        let Some(cluster) = self.locks.try_hold(COLLECTION_LOCK).await? else {
            return Ok(None);
        };
        Ok(self
            .blobs
            .lock_collection()
            .await?
            .map(|store| (cluster, store)))
    }

    pub fn metrics(&self) -> Arc<GcMetrics> {
        self.metrics.clone()
    }

    pub fn options(&self) -> &GcOptions {
        &self.options
    }

    /// One run: everything collectable now is deleted (dry: counted, nothing changed).
    /// Logs one line.
    pub async fn run(&self, dry_run: bool) -> Result<GcReport, GcError> {
        let started = Instant::now();
        let result = self.run_inner(dry_run).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(mut report) => {
                report.duration_ms = duration_ms;
                if !dry_run {
                    let m = &self.metrics;
                    m.runs.fetch_add(1, Ordering::Relaxed);
                    m.blobs.fetch_add(report.blobs, Ordering::Relaxed);
                    m.bytes.fetch_add(report.bytes, Ordering::Relaxed);
                    m.manifests.fetch_add(report.manifests, Ordering::Relaxed);
                    m.duration_ms.fetch_add(duration_ms, Ordering::Relaxed);
                    m.last_duration_ms.store(duration_ms, Ordering::Relaxed);
                }
                tracing::info!(
                    dry_run,
                    blobs = report.blobs,
                    bytes = report.bytes,
                    manifests = report.manifests,
                    uploads = report.uploads,
                    resumed = report.resumed,
                    duration_ms,
                    "garbage collection"
                );
                Ok(report)
            }
            Err(err) => {
                if !dry_run {
                    self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(dry_run, error = %err, duration_ms, "garbage collection failed");
                Err(err)
            }
        }
    }

    /// Finishes what an interrupted run marked (deletes the bytes, then the rows), now: at
    /// a start, a crashed process's recurring job stays leased for a while, and a marked
    /// blob cannot be linked again until its row is dropped. Returns how many blobs it
    /// finished; 0 when another collector holds the lock (that one finishes them).
    pub async fn finish_interrupted(&self) -> Result<u64, GcError> {
        let Some(_hold) = self.hold_collection().await? else {
            return Ok(0);
        };
        let mut report = GcReport::default();
        self.finish_doomed(&mut report).await?;
        if report.resumed > 0 {
            self.metrics
                .blobs
                .fetch_add(report.blobs, Ordering::Relaxed);
            self.metrics
                .bytes
                .fetch_add(report.bytes, Ordering::Relaxed);
            tracing::info!(
                blobs = report.blobs,
                bytes = report.bytes,
                "garbage collection: finished the blobs an interrupted run had marked"
            );
        }
        Ok(report.resumed)
    }

    async fn finish_doomed(&self, report: &mut GcReport) -> Result<(), GcError> {
        loop {
            let doomed = self.store.doomed_blobs(self.options.batch).await?;
            if doomed.is_empty() {
                return Ok(());
            }
            report.resumed += doomed.len() as u64;
            self.delete_marked(&doomed, report).await?;
        }
    }

    async fn run_inner(&self, dry_run: bool) -> Result<GcReport, GcError> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let cutoff = self.clock.now_unix() - self.options.grace.as_secs() as i64;
        if dry_run {
            return self.dry_run(cutoff, report).await;
        }
        let Some(_hold) = self.hold_collection().await? else {
            return Err(GcError::Busy);
        };
        // 1. What an interrupted run marked is doomed: finish it.
        self.finish_doomed(&mut report).await?;
        // 2. Manifests of deleted repositories (and deleted manifests) nothing lists.
        report.manifests = self.delete_orphan_manifests().await?;
        // 3 and 4. Unreferenced blobs past the grace period, window by window.
        let mut after: Option<String> = None;
        loop {
            let window = self
                .store
                .collectable_blobs(after.as_deref(), self.options.window, cutoff)
                .await?;
            let names: Vec<Digest> = window.candidates.into_iter().map(|(d, _)| d).collect();
            for batch in names.chunks(self.options.batch.max(1) as usize) {
                let marked = self
                    .store
                    .mark_blobs(batch, cutoff, self.clock.now_unix())
                    .await?;
                self.delete_marked(&marked, &mut report).await?;
            }
            match window.last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        report.uploads = self.expire_uploads().await?;
        Ok(report)
    }

    /// Deletes the bytes of marked blobs, then their rows (the order a crash must see).
    async fn delete_marked(
        &self,
        marked: &[(Digest, u64)],
        report: &mut GcReport,
    ) -> Result<(), GcError> {
        let names: Vec<Digest> = marked.iter().map(|(d, _)| d.clone()).collect();
        self.blobs.delete_blobs(&names).await?;
        self.store.drop_doomed_blobs(&names).await?;
        for (_, size) in marked {
            report.blobs += 1;
            report.bytes += size;
        }
        Ok(())
    }

    /// What a real run started now would delete, step by step as it would: the blobs an
    /// interrupted run marked, the orphan manifests and those their deletion orphans in
    /// turn, the blobs only those manifests reference, and the unreferenced blobs.
    async fn dry_run(&self, cutoff: i64, mut report: GcReport) -> Result<GcReport, GcError> {
        let (doomed, doomed_bytes) = self.store.doomed_totals().await?;
        report.resumed = doomed;
        report.blobs += doomed;
        report.bytes += doomed_bytes;
        let orphans = self.orphan_closure().await?;
        report.manifests = orphans.len() as u64;
        for (_, size) in self.store.blobs_only_in(&orphans, cutoff).await? {
            report.blobs += 1;
            report.bytes += size;
        }
        let mut after: Option<String> = None;
        loop {
            let window = self
                .store
                .collectable_blobs(after.as_deref(), self.options.window, cutoff)
                .await?;
            for (_, size) in &window.candidates {
                report.blobs += 1;
                report.bytes += size;
            }
            match window.last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        Ok(report)
    }

    /// The orphan manifests, and the children their deletion would orphan, level by level
    /// (as many levels as a real run goes round).
    async fn orphan_closure(&self) -> Result<Vec<String>, GcError> {
        let mut gone = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .orphan_manifests(after.as_deref(), self.options.batch)
                .await?;
            match page.last() {
                Some(last) => after = Some(last.clone()),
                None => break,
            }
            gone.extend(page);
        }
        for _ in 1..ORPHAN_PASSES {
            let next = self.store.orphaned_children(&gone).await?;
            if next.is_empty() {
                break;
            }
            gone.extend(next);
        }
        Ok(gone)
    }

    async fn delete_orphan_manifests(&self) -> Result<u64, GcError> {
        let mut deleted = 0;
        // Deleting an index can orphan its children: go round until a pass finds nothing
        // (bounded, in case something keeps re-creating them).
        for _ in 0..ORPHAN_PASSES {
            let mut pass = 0;
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .orphan_manifests(after.as_deref(), self.options.batch)
                    .await?;
                let Some(last) = page.last().cloned() else {
                    break;
                };
                pass += self.store.delete_orphan_manifests(&page).await?;
                after = Some(last);
            }
            deleted += pass;
            if pass == 0 {
                break;
            }
        }
        Ok(deleted)
    }

    async fn expire_uploads(&self) -> Result<u64, GcError> {
        let mut expired = 0;
        for _ in 0..100 {
            match self.registry.expire_uploads().await {
                Ok(0) => break,
                Ok(n) => expired += n as u64,
                Err(err) => return Err(GcError::Failed(format!("expiring uploads: {err}"))),
            }
        }
        Ok(expired)
    }
}

/// The recurring collection, every `gc_interval`.
pub struct CollectGarbage(pub Collector);

#[async_trait::async_trait]
impl JobHandler for CollectGarbage {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let interval = self.0.options.interval;
        match self.0.run(false).await {
            Ok(_) => Ok(JobOutcome::Again(interval)),
            // Someone (`berth gc`) is collecting: that run counts as this one.
            Err(GcError::Busy) => Ok(JobOutcome::Again(interval)),
            Err(GcError::Failed(err)) => Err(JobError::Retry(err)),
        }
    }
}
