//! The recurring housekeeping jobs: expiring abandoned uploads, reading the platforms of
//! manifests stored before they were recorded, pruning old events, deliveries and dead jobs,
//! and the audit log past `audit_retention`. Each is idempotent, as every job must be.

use super::{JobError, JobHandler, JobOutcome};
use crate::clock::Clock;
use crate::ports::{ClaimedJob, MetaStore};
use crate::Registry;
use std::sync::Arc;
use std::time::Duration;

pub const EXPIRE_UPLOADS_JOB: &str = "uploads.expire";
pub const BACKFILL_PLATFORMS_JOB: &str = "platforms.backfill";
pub const PRUNE_HISTORY_JOB: &str = "history.prune";
pub const PRUNE_AUDIT_JOB: &str = "audit.prune";

/// How long events, settled deliveries and dead jobs are kept.
pub const HISTORY_KEPT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Removes upload sessions idle longer than `upload_ttl`, with their bytes; every 10 minutes.
pub struct ExpireUploads(pub Registry);

#[async_trait::async_trait]
impl JobHandler for ExpireUploads {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        expire_abandoned_uploads(&self.0)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        Ok(JobOutcome::Again(Duration::from_secs(600)))
    }
}

/// Removes every upload session idle longer than `upload_ttl`, in bounded batches (and a
/// bound on them, in case a session keeps failing to go away). `serve` runs it once before
/// listening, so a restart never offers a session that has expired.
pub async fn expire_abandoned_uploads(registry: &Registry) -> crate::Result<()> {
    for _ in 0..100 {
        match registry.expire_uploads().await? {
            0 => break,
            n => tracing::info!(expired = n, "removed abandoned uploads"),
        }
    }
    Ok(())
}

/// Reads the platform of every manifest stored without one; runs once per start, resuming
/// where a crash left it (the store's index holds only what is left).
pub struct BackfillPlatforms(pub Registry);

#[async_trait::async_trait]
impl JobHandler for BackfillPlatforms {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let report = self
            .0
            .backfill_platforms()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if report.recorded + report.unread > 0 {
            tracing::info!(
                recorded = report.recorded,
                with_platform = report.with_platform,
                unread = report.unread,
                "recorded the platforms of manifests stored without one"
            );
        }
        Ok(JobOutcome::Done)
    }
}

/// Prunes events every consumer has read, settled deliveries and dead jobs older than
/// [`HISTORY_KEPT`]; daily.
pub struct PruneHistory {
    pub store: Arc<dyn MetaStore>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl JobHandler for PruneHistory {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let kept = HISTORY_KEPT.as_secs() as i64;
        let before = self.clock.now_unix() - kept;
        let events = self.store.prune_events(before).await?;
        let deliveries = self.store.prune_deliveries(before).await?;
        let jobs = self.store.prune_dead_jobs(before * 1000).await?;
        if events + deliveries + jobs > 0 {
            tracing::info!(events, deliveries, jobs, "pruned old history");
        }
        Ok(JobOutcome::Again(Duration::from_secs(24 * 3600)))
    }
}

/// Deletes audit records older than `audit_retention`; hourly.
pub struct PruneAudit {
    pub store: Arc<dyn MetaStore>,
    pub clock: Arc<dyn Clock>,
    pub retention: Duration,
}

#[async_trait::async_trait]
impl JobHandler for PruneAudit {
    async fn run(&self, _job: &ClaimedJob) -> Result<JobOutcome, JobError> {
        let kept = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
        let before = self.clock.now_unix().saturating_sub(kept);
        let pruned = self.store.prune_audit(before).await?;
        if pruned > 0 {
            tracing::info!(pruned, "removed audit records past audit_retention");
        }
        Ok(JobOutcome::Again(Duration::from_secs(3600)))
    }
}
