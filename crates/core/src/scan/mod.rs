//! Vulnerability scanning and SBOMs: the scan of one image (inventory of its layers,
//! matching against the imported OSV data, the stored result, its summary and event, the
//! SBOM referrer), the jobs that scan after every push and after every import, and the
//! import of OSV data itself.

mod layers;
mod sbom;

use crate::clock::Clock;
use crate::events::{
    data_of, EventKind, EventRecord, ManifestPushedData, NewEvent, ScanCompletedData,
};
use crate::jobs::{JobError, JobFeed, JobHandler, JobOutcome};
use crate::ports::{
    BlobStore, ClaimedJob, MetaError, MetaStore, NewJob, ScanRecord, VulnDbStatus,
    VulnerabilitySummary,
};
use crate::registry::Registry;
use berth_oci::manifest::{DOCKER_MANIFEST, OCI_MANIFEST};
use berth_oci::{Digest, ManifestKind, ParsedManifest, RepoName};
use berth_scan::inventory::Limits;
use berth_scan::matching::{match_inventory, SeverityCounts};
use berth_scan::osv;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Scans one image manifest.
pub const SCAN_JOB: &str = "scan.image";
/// Enqueues a scan of every image (after an import).
pub const RESCAN_JOB: &str = "scan.rescan";
/// The event cursor the scan feed reads from.
pub const SCANNER_CURSOR: &str = "scanner";

/// Events read per hand-on.
const BATCH: u32 = 200;
/// Advisories written per transaction during an import.
const IMPORT_BATCH: usize = 1_000;

/// Image configuration media types: what is scanned. Artifacts (signatures, SBOMs, Helm
/// charts) have other configs and hold no file systems.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Why a scan did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("manifest {0} is not in the repository")]
    NotFound(String),
    #[error("{0} is not an image (an index or an artifact); scan the images it holds")]
    NotAnImage(String),
    /// A pull-through cache's manifest whose layers were never fetched: scanning it would
    /// report "none found" about files nobody read.
    #[error("the layers {0} are not stored yet (an image cached from an upstream but not pulled whole); pull it, then scan")]
    LayersMissing(String),
    #[error("{0}")]
    Store(#[from] MetaError),
    #[error("{0}")]
    Io(String),
}

/// What a scan job's payload names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanJobPayload {
    pub repository: String,
    pub digest: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The scan job of one image (unique per repository and digest).
pub fn scan_job(payload: &ScanJobPayload, now_ms: i64) -> NewJob {
    NewJob {
        kind: SCAN_JOB.to_owned(),
        payload: serde_json::to_string(payload).unwrap_or_default(),
        due_at_ms: now_ms,
        max_attempts: 5,
        unique_key: Some(format!("scan:{}@{}", payload.repository, payload.digest)),
    }
}

/// The scanner of one node.
#[derive(Clone)]
pub struct Scanner {
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    registry: Registry,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// One scan at a time per node: a scan is CPU and memory bound, and several at once
    /// would only share the cores with pushes and pulls.
    running: Arc<Semaphore>,
    /// Whether scans push an SBOM referrer.
    attach_sbom: bool,
}

impl Scanner {
    pub fn new(
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        registry: Registry,
        clock: Arc<dyn Clock>,
    ) -> Scanner {
        Scanner {
            meta,
            blobs,
            registry,
            clock,
            limits: Limits::default(),
            running: Arc::new(Semaphore::new(1)),
            attach_sbom: true,
        }
    }

    /// The same scanner with other bounds on reading layers.
    pub fn with_limits(self, limits: Limits) -> Scanner {
        Scanner { limits, ..self }
    }

    /// The same scanner, pushing SBOM referrers or not.
    pub fn with_sbom(self, attach_sbom: bool) -> Scanner {
        Scanner {
            attach_sbom,
            ..self
        }
    }

    /// Scans one image now and stores the result (with its summary and `scan.completed`).
    pub async fn scan(
        &self,
        repo: &RepoName,
        digest: &Digest,
        tags: &[String],
    ) -> Result<ScanRecord, ScanError> {
        let _slot = self
            .running
            .acquire()
            .await
            .map_err(|e| ScanError::Io(e.to_string()))?;
        let record = self
            .meta
            .manifest_by_digest(repo, digest)
            .await?
            .ok_or_else(|| ScanError::NotFound(digest.to_string()))?;
        let parsed = ParsedManifest::parse(Some(&record.media_type), &record.body)
            .map_err(|e| ScanError::NotAnImage(format!("{digest} ({e})")))?;
        // cosign's tag-scheme signatures and SBOMs carry an image config; their layers
        // give them away.
        let is_image = parsed.kind == ManifestKind::Image
            && parsed.subject.is_none()
            && !berth_oci::signature::is_supply_chain_artifact(&parsed, None)
            && parsed
                .config
                .as_ref()
                .is_some_and(|c| IMAGE_CONFIGS.contains(&c.media_type.as_str()));
        if !is_image {
            return Err(ScanError::NotAnImage(digest.to_string()));
        }
        // The packages of SBOMs clients attached count too: an image built from scratch or
        // distroless shows no package database in its layers, and its SBOM says what is in it.
        let (listed, sbom_warnings) =
            sbom::client_packages(&self.meta, &self.blobs, repo, digest).await?;
        let mut missing = Vec::new();
        for layer in &parsed.layers {
            if layers::is_filesystem_layer(&layer.media_type)
                && self
                    .blobs
                    .blob_size(&layer.digest)
                    .await
                    .map_err(|e| ScanError::Io(e.to_string()))?
                    .is_none()
            {
                missing.push(layer.digest.to_string());
            }
        }
        if !missing.is_empty() && listed.is_empty() {
            return Err(ScanError::LayersMissing(missing.join(", ")));
        }
        let layer_inventory =
            layers::inventory(self.blobs.clone(), &parsed.layers, self.limits).await;
        let mut inventory = layer_inventory.clone();
        for packages in listed {
            inventory.add_listed(packages);
        }
        inventory.warnings.extend(sbom_warnings);
        let status = self.meta.vulndb_status().await?;
        let mut findings = Vec::new();
        if status.is_some() {
            // Lookups are few and indexed (one per package); gathered first so matching
            // itself stays synchronous.
            let mut wanted = BTreeMap::new();
            for package in &inventory.packages {
                if let Some(key) = berth_scan::matching::lookup_key(package, inventory.os.as_ref())
                {
                    wanted
                        .entry((key.ecosystem, key.name))
                        .or_insert_with(Vec::new);
                }
            }
            for ((ecosystem, name), advisories) in wanted.iter_mut() {
                *advisories = self.meta.advisories_for(*ecosystem, name).await?;
            }
            findings = match_inventory(&inventory, &mut |ecosystem, name| {
                wanted
                    .get(&(ecosystem, name.to_owned()))
                    .cloned()
                    .unwrap_or_default()
            });
        }
        let counts = SeverityCounts::of(&findings);
        let now = self.clock.now_ms() / 1000;
        let os = inventory.os.as_ref().map(|os| {
            os.pretty_name.clone().unwrap_or_else(|| {
                format!("{} {}", os.id, os.version_id.clone().unwrap_or_default())
            })
        });
        let mut warnings = inventory.warnings.clone();
        // Berth's own SBOM says what Berth read from the layers, so that a client's SBOM
        // arriving later does not make it push a second one.
        let sbom_digest = if self.attach_sbom && missing.is_empty() {
            match sbom::attach(
                &self.registry,
                repo,
                digest,
                &record.media_type,
                record.body.len() as u64,
                &layer_inventory,
                now,
            )
            .await
            {
                Ok(digest) => Some(digest.to_string()),
                Err(error) => {
                    warnings.push(format!("the SBOM could not be attached: {error}"));
                    None
                }
            }
        } else {
            None
        };
        let scan = ScanRecord {
            digest: digest.to_string(),
            repository: repo.to_string(),
            scanned_at: now,
            db_generation: status.as_ref().map(|s| s.generation),
            os,
            packages: inventory.packages.len() as u64,
            counts,
            findings,
            warnings,
            sbom_digest,
        };
        let data = ScanCompletedData {
            digest: scan.digest.clone(),
            tags: tags.to_vec(),
            packages: scan.packages,
            critical: counts.critical,
            high: counts.high,
            medium: counts.medium,
            low: counts.low,
            unknown: counts.unknown,
            matched: status.is_some(),
        };
        let event = NewEvent::about(
            EventKind::ScanCompleted,
            &scan.repository,
            None,
            data_of(&data),
        );
        self.meta.store_scan(&scan, Some(&event)).await?;
        Ok(scan)
    }

    /// The stored result of an image's latest scan.
    pub async fn result(&self, digest: &Digest) -> Result<Option<ScanRecord>, MetaError> {
        self.meta.scan_result(&digest.to_string()).await
    }

    /// The summaries of those of `digests` that were scanned.
    pub async fn summaries(
        &self,
        digests: &[String],
    ) -> Result<std::collections::HashMap<String, VulnerabilitySummary>, MetaError> {
        self.meta.vulnerability_summaries(digests).await
    }

    /// Asks for every image to be scanned again (the runner does it, one at a time).
    pub async fn rescan_all(&self) -> Result<bool, MetaError> {
        let now = self.clock.now_ms();
        self.meta
            .enqueue_job(&NewJob {
                kind: RESCAN_JOB.to_owned(),
                payload: "{}".to_owned(),
                due_at_ms: now,
                max_attempts: 10,
                unique_key: Some(RESCAN_JOB.to_owned()),
            })
            .await
    }
}

/// Imports OSV data from `path` (an `all.zip`, a `.json` file, or a directory of either)
/// as the new vulnerability database, replacing the old one atomically, and asks for every
/// image to be rescanned. Malformed entries are skipped and counted; a path that cannot be
/// read leaves the old database in place.
pub async fn import_vulndb(
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
    path: &Path,
) -> Result<VulnDbStatus, ScanError> {
    let generation = meta.begin_vulndb_import().await?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<osv::Advisory>>(2);
    let source = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let mut by_ecosystem: BTreeMap<String, u64> = BTreeMap::new();
        let mut newest: Option<String> = None;
        let stats = osv::read_path(&source, &mut |advisory| {
            let mut ecosystems: Vec<&str> = advisory
                .affected
                .iter()
                .map(|a| a.ecosystem.as_str())
                .collect();
            ecosystems.sort_unstable();
            ecosystems.dedup();
            for ecosystem in ecosystems {
                *by_ecosystem.entry(ecosystem.to_owned()).or_default() += 1;
            }
            if newest
                .as_deref()
                .is_none_or(|n| advisory.modified.as_str() > n)
            {
                newest = Some(advisory.modified.clone());
            }
            batch.push(advisory);
            if batch.len() >= IMPORT_BATCH {
                sender
                    .blocking_send(std::mem::take(&mut batch))
                    .map_err(|_| osv::ReadError::Sink("the import stopped".to_owned()))?;
            }
            Ok(())
        });
        if !batch.is_empty() {
            let _ = sender.blocking_send(batch);
        }
        stats.map(|stats| (stats, by_ecosystem, newest))
    });
    let mut write_error = None;
    while let Some(batch) = receiver.recv().await {
        if write_error.is_none() {
            if let Err(error) = meta.add_advisories(generation, &batch).await {
                write_error = Some(error);
                // Dropping the receiver stops the reader at its next batch.
                break;
            }
        }
    }
    drop(receiver);
    let read = reader.await.map_err(|e| ScanError::Io(e.to_string()))?;
    if let Some(error) = write_error {
        return Err(error.into());
    }
    let (stats, by_ecosystem, newest) = read.map_err(|e| ScanError::Io(e.to_string()))?;
    let status = VulnDbStatus {
        generation,
        imported_at: clock.now_ms() / 1000,
        source: path.display().to_string(),
        advisories: stats.advisories,
        skipped: stats.skipped,
        ignored: stats.ignored,
        by_ecosystem,
        newest_modified: newest,
    };
    meta.commit_vulndb_import(&status).await?;
    Ok(status)
}

/// Runs scan jobs.
pub struct ScanImage(pub Scanner);

#[async_trait::async_trait]
impl JobHandler for ScanImage {
    async fn run(&self, job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let payload: ScanJobPayload = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::Permanent(format!("bad scan payload: {e}")))?;
        let (Ok(repo), Ok(digest)) = (
            payload.repository.parse::<RepoName>(),
            payload.digest.parse::<Digest>(),
        ) else {
            return Err(JobError::Permanent(
                "bad scan payload: repository or digest".to_owned(),
            ));
        };
        match self.0.scan(&repo, &digest, &payload.tags).await {
            Ok(_) => Ok(JobOutcome::Done),
            // Deleted since, or an artifact: nothing to scan, which is not a failure. Layers
            // not stored yet leave the image unscanned (never reported clean) until the next
            // import's rescan or an SBOM a client attaches.
            Err(
                ScanError::NotFound(_) | ScanError::NotAnImage(_) | ScanError::LayersMissing(_),
            ) => Ok(JobOutcome::Done),
            Err(error) => Err(JobError::Retry(error.to_string())),
        }
    }
}

/// Enqueues a scan job for every image (after an import).
pub struct RescanAll(pub Scanner);

#[async_trait::async_trait]
impl JobHandler for RescanAll {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let meta = &self.0.meta;
        let mut after: Option<(String, String)> = None;
        loop {
            let page = meta
                .image_manifests(after.as_ref().map(|(r, d)| (r.as_str(), d.as_str())), 500)
                .await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            let now = self.0.clock.now_ms();
            for (repository, digest) in page {
                meta.enqueue_job(&scan_job(
                    &ScanJobPayload {
                        repository,
                        digest,
                        tags: Vec::new(),
                    },
                    now,
                ))
                .await?;
            }
            after = Some(last);
        }
        Ok(JobOutcome::Done)
    }
}

/// Turns `manifest.pushed` events into scan jobs, after the push committed (its `201` was
/// never waiting for this), once a vulnerability database is imported: a pushed image is
/// scanned; a referrer (a signature, Berth's own SBOM) is not, except an SBOM a client
/// attached, which has its subject scanned again with the packages it lists. A [`JobFeed`]
/// of the runner.
pub struct ScanFeed {
    meta: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
}

impl ScanFeed {
    pub fn new(meta: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> ScanFeed {
        ScanFeed { meta, clock }
    }

    async fn job_for(&self, event: &EventRecord) -> Result<Option<NewJob>, MetaError> {
        if event.kind != EventKind::ManifestPushed {
            return Ok(None);
        }
        let Ok(data) = serde_json::from_value::<ManifestPushedData>(event.data.clone()) else {
            return Ok(None);
        };
        if data.media_type != OCI_MANIFEST && data.media_type != DOCKER_MANIFEST {
            return Ok(None);
        }
        let Some(repository) = event.repository.clone() else {
            return Ok(None);
        };
        let image = |digest: String, tags: Vec<String>| {
            let payload = ScanJobPayload {
                repository: repository.clone(),
                digest,
                tags,
            };
            Some(scan_job(&payload, self.clock.now_ms()))
        };
        // cosign's tag scheme: `sha256-<hex>.sbom` attaches an SBOM, `.sig` and `.att` are
        // signatures and attestations, none of them an image.
        if let Some(subject) = sbom::cosign_sbom_subject(&data.tags) {
            return Ok(image(subject.to_string(), Vec::new()));
        }
        if data
            .tags
            .iter()
            .any(|t| berth_oci::signature::cosign_tag_subject(t).is_some())
        {
            return Ok(None);
        }
        let Some(subject) = data.subject else {
            return Ok(image(data.digest, data.tags));
        };
        // A referrer: read it (referrers are few) to tell a client's SBOM from the rest.
        let (Ok(repo), Ok(digest)) = (
            repository.parse::<RepoName>(),
            data.digest.parse::<Digest>(),
        ) else {
            return Ok(None);
        };
        let Some(record) = self.meta.manifest_by_digest(&repo, &digest).await? else {
            return Ok(None);
        };
        let client_sbom = ParsedManifest::parse(Some(&record.media_type), &record.body)
            .ok()
            .is_some_and(|parsed| sbom::client_sbom_layer(&parsed).is_some());
        Ok(if client_sbom {
            image(subject, Vec::new())
        } else {
            None
        })
    }
}

#[async_trait::async_trait]
impl JobFeed for ScanFeed {
    async fn feed(&self) -> Result<usize, MetaError> {
        let mut made = 0;
        loop {
            let from = self.meta.scan_cursor(SCANNER_CURSOR).await?;
            let events = self.meta.events_after(from, BATCH).await?;
            let Some(last) = events.last() else {
                return Ok(made);
            };
            let to = last.id;
            // Without a vulnerability database a scan would report "none found" for every
            // image, which is not true, and push an SBOM referrer nobody asked for; images
            // pushed meanwhile are scanned by the rescan that follows the first import.
            let scanning = self.meta.vulndb_status().await?.is_some();
            let mut jobs: Vec<NewJob> = Vec::new();
            for event in events.iter().filter(|_| scanning) {
                if let Some(job) = self.job_for(event).await? {
                    if !jobs.iter().any(|j| j.unique_key == job.unique_key) {
                        jobs.push(job);
                    }
                }
            }
            if !self
                .meta
                .hand_on_scans(SCANNER_CURSOR, from, to, &jobs)
                .await?
            {
                // Another node moved the cursor first; it made these jobs.
                return Ok(made);
            }
            made += jobs.len();
            if (events.len() as u32) < BATCH {
                return Ok(made);
            }
        }
    }
}
