//! The scanning port: the offline vulnerability database and each image's latest scan.
//!
//! Contract for every backend:
//! - An import is all or nothing for readers: `begin_vulndb_import` opens a new
//!   generation, `add_advisories` fills it (any number of calls, each its own short
//!   transaction), and only `commit_vulndb_import` makes it the one `advisories_for`
//!   reads, in one transaction that also removes older generations' rows (or leaves
//!   them to be removed in batches). An import never committed is invisible, and the
//!   next `begin_vulndb_import` drops its rows.
//! - `store_scan` replaces the digest's result, its `vulnerability_summaries` row and
//!   records the `scan.completed` event in one transaction; storing the same scan twice
//!   leaves one result (a scan job may run twice).
//! - `hand_on_scans` moves the named event cursor from `from` to `to` and enqueues the
//!   jobs in one transaction; false (nothing stored) when the cursor was not at `from`.

use super::jobs::NewJob;
use super::meta::MetaError;
use crate::events::NewEvent;
use berth_scan::matching::{Finding, SeverityCounts};
use berth_scan::osv::Advisory;
use berth_scan::Ecosystem;
use serde::{Deserialize, Serialize};

type Result<T> = std::result::Result<T, MetaError>;

/// What is loaded, for `berth vulndb status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnDbStatus {
    pub generation: i64,
    /// Unix seconds.
    pub imported_at: i64,
    /// The path imported from.
    pub source: String,
    pub advisories: u64,
    /// Malformed entries skipped at import.
    pub skipped: u64,
    /// Entries withdrawn or only about ecosystems the scanner does not match.
    pub ignored: u64,
    /// Advisories per ecosystem (OSV's names).
    pub by_ecosystem: std::collections::BTreeMap<String, u64>,
    /// The newest `modified` time among the advisories: how fresh the data is.
    pub newest_modified: Option<String>,
}

/// The latest scan of one image manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    pub digest: String,
    pub repository: String,
    /// Unix seconds.
    pub scanned_at: i64,
    /// The database generation matched against; `None` when no database was loaded.
    pub db_generation: Option<i64>,
    /// `PRETTY_NAME` or `ID VERSION_ID` of the image's OS, when found.
    pub os: Option<String>,
    pub packages: u64,
    pub counts: SeverityCounts,
    pub findings: Vec<Finding>,
    pub warnings: Vec<String>,
    /// The SBOM referrer pushed for the image, if any.
    pub sbom_digest: Option<String>,
}

/// The counts shown beside a tag, and what "block severity" pull policies read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VulnerabilitySummary {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub unknown: u64,
    /// Unix seconds.
    pub scanned_at: i64,
}

impl VulnerabilitySummary {
    pub fn of(counts: SeverityCounts, scanned_at: i64) -> Self {
        VulnerabilitySummary {
            critical: counts.critical,
            high: counts.high,
            medium: counts.medium,
            low: counts.low,
            unknown: counts.unknown,
            scanned_at,
        }
    }
}

#[async_trait::async_trait]
pub trait ScanStore: Send + Sync {
    /// Opens a new, invisible generation (dropping any import left unfinished).
    async fn begin_vulndb_import(&self) -> Result<i64>;
    /// Adds advisories to an open generation (an id already there is replaced).
    async fn add_advisories(&self, generation: i64, advisories: &[Advisory]) -> Result<()>;
    /// Makes the generation current, with its status, and drops the older ones.
    async fn commit_vulndb_import(&self, status: &VulnDbStatus) -> Result<()>;
    /// What is loaded, if anything.
    async fn vulndb_status(&self) -> Result<Option<VulnDbStatus>>;
    /// The current generation's advisories that name `package` in `ecosystem`.
    async fn advisories_for(&self, ecosystem: Ecosystem, package: &str) -> Result<Vec<Advisory>>;

    /// See the module contract.
    async fn store_scan(&self, scan: &ScanRecord, event: Option<&NewEvent>) -> Result<()>;
    async fn scan_result(&self, digest: &str) -> Result<Option<ScanRecord>>;
    /// The summaries of those of `digests` that were scanned.
    async fn vulnerability_summaries(
        &self,
        digests: &[String],
    ) -> Result<std::collections::HashMap<String, VulnerabilitySummary>>;
    /// Every image manifest linked into a repository, as (repository, digest), after
    /// `after` in (repository, digest) order, at most `limit`: what a rescan goes through.
    async fn image_manifests(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>>;
    /// Where the named consumer stands in the event log.
    async fn scan_cursor(&self, name: &str) -> Result<i64>;
    /// See the module contract.
    async fn hand_on_scans(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        jobs: &[NewJob],
    ) -> Result<bool>;
}
