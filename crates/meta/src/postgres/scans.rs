//! The vulnerability database and scan results on PostgreSQL, with the contract of
//! `core/src/ports/scans.rs`: imports as generations made current in one statement, results
//! with their summary and event, and the scanner feed's hand-on.

use super::events::{cursor_position, hand_on_jobs, record_event};
use super::{backend, PostgresMeta};
use berth_core::events::NewEvent;
use berth_core::ports::{
    MetaError, NewJob, ScanRecord, ScanStore, VulnDbStatus, VulnerabilitySummary,
};
use berth_scan::matching::SeverityCounts;
use berth_scan::osv::Advisory;
use berth_scan::Ecosystem;
use sqlx::postgres::PgRow;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn corrupt(what: &str, err: serde_json::Error) -> MetaError {
    MetaError::Backend(format!("stored {what} is not readable: {err}"))
}

fn count(row: &PgRow, column: &str) -> u64 {
    row.get::<i64, _>(column).max(0) as u64
}

fn severity_counts(row: &PgRow) -> SeverityCounts {
    SeverityCounts {
        critical: count(row, "critical"),
        high: count(row, "high"),
        medium: count(row, "medium"),
        low: count(row, "low"),
        unknown: count(row, "unknown"),
    }
}

fn stored_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresMeta {
    /// Removes the rows of every generation but `keep`. One statement per table: unlike
    /// SQLite's single writer, a long delete here holds up no other writer, and readers
    /// keep seeing the rows until it commits.
    async fn drop_generations_except(&self, keep: i64) -> Result<(), MetaError> {
        for sql in [
            "DELETE FROM vulndb_packages WHERE generation <> $1",
            "DELETE FROM vulndb_advisories WHERE generation <> $1",
        ] {
            sqlx::query(sql)
                .bind(keep)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ScanStore for PostgresMeta {
    async fn begin_vulndb_import(&self) -> Result<i64, MetaError> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM vulndb_state WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        let highest: Option<i64> =
            sqlx::query_scalar("SELECT max(generation) FROM vulndb_advisories")
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        // Leftovers of an import that never committed go first.
        self.drop_generations_except(current.unwrap_or(-1)).await?;
        Ok(current.max(highest).unwrap_or(0) + 1)
    }

    async fn add_advisories(
        &self,
        generation: i64,
        advisories: &[Advisory],
    ) -> Result<(), MetaError> {
        // The last of a repeated id wins, as one upsert after another would have it (one
        // statement may not update a row twice).
        let docs: BTreeMap<&str, String> = advisories
            .iter()
            .map(|a| (a.id.as_str(), json(a)))
            .collect();
        let packages: BTreeSet<(&str, &str, &str)> = advisories
            .iter()
            .flat_map(|a| {
                a.affected
                    .iter()
                    .map(move |p| (p.ecosystem.as_str(), p.package.as_str(), a.id.as_str()))
            })
            .collect();
        let (ids, bodies): (Vec<&str>, Vec<&str>) =
            docs.iter().map(|(id, doc)| (*id, doc.as_str())).unzip();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO vulndb_advisories (generation, id, doc) \
             SELECT $1, i, d FROM unnest($2::text[], $3::text[]) AS s(i, d) \
             ON CONFLICT (generation, id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(generation)
        .bind(&ids)
        .bind(&bodies)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let mut ecosystems = Vec::with_capacity(packages.len());
        let mut names = Vec::with_capacity(packages.len());
        let mut advisory_ids = Vec::with_capacity(packages.len());
        for (ecosystem, package, id) in &packages {
            ecosystems.push(*ecosystem);
            names.push(*package);
            advisory_ids.push(*id);
        }
        sqlx::query(
            "INSERT INTO vulndb_packages (generation, ecosystem, package, advisory_id) \
             SELECT $1, e, p, a FROM unnest($2::text[], $3::text[], $4::text[]) AS s(e, p, a) \
             ON CONFLICT DO NOTHING",
        )
        .bind(generation)
        .bind(&ecosystems)
        .bind(&names)
        .bind(&advisory_ids)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn commit_vulndb_import(&self, status: &VulnDbStatus) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO vulndb_state (id, generation, imported_at, source, stats) \
             VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET generation = EXCLUDED.generation, \
             imported_at = EXCLUDED.imported_at, source = EXCLUDED.source, \
             stats = EXCLUDED.stats",
        )
        .bind(status.generation)
        .bind(status.imported_at)
        .bind(&status.source)
        .bind(json(status))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.drop_generations_except(status.generation).await
    }

    async fn vulndb_status(&self) -> Result<Option<VulnDbStatus>, MetaError> {
        let stats: Option<String> =
            sqlx::query_scalar("SELECT stats FROM vulndb_state WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        stats
            .map(|s| {
                serde_json::from_str(&s).map_err(|e| corrupt("vulnerability database status", e))
            })
            .transpose()
    }

    async fn advisories_for(
        &self,
        ecosystem: Ecosystem,
        package: &str,
    ) -> Result<Vec<Advisory>, MetaError> {
        let docs: Vec<String> = sqlx::query_scalar(
            "SELECT a.doc FROM vulndb_state s \
             JOIN vulndb_packages p ON p.generation = s.generation \
               AND p.ecosystem = $1 AND p.package = $2 \
             JOIN vulndb_advisories a ON a.generation = p.generation AND a.id = p.advisory_id \
             WHERE s.id = 1",
        )
        .bind(ecosystem.as_str())
        .bind(package)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(|e| corrupt("advisory", e)))
            .collect()
    }

    async fn store_scan(
        &self,
        scan: &ScanRecord,
        event: Option<&NewEvent>,
    ) -> Result<(), MetaError> {
        let mut tx = if event.is_some() {
            self.begin_recording().await?
        } else {
            self.begin().await?
        };
        sqlx::query(
            "INSERT INTO scan_results (digest, repository, scanned_at, db_generation, os, \
             packages, findings, warnings, sbom_digest) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (digest) DO UPDATE SET repository = EXCLUDED.repository, \
             scanned_at = EXCLUDED.scanned_at, db_generation = EXCLUDED.db_generation, \
             os = EXCLUDED.os, packages = EXCLUDED.packages, findings = EXCLUDED.findings, \
             warnings = EXCLUDED.warnings, sbom_digest = EXCLUDED.sbom_digest",
        )
        .bind(&scan.digest)
        .bind(&scan.repository)
        .bind(scan.scanned_at)
        .bind(scan.db_generation)
        .bind(&scan.os)
        .bind(stored_count(scan.packages))
        .bind(json(&scan.findings))
        .bind(json(&scan.warnings))
        .bind(&scan.sbom_digest)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let c = scan.counts;
        sqlx::query(
            "INSERT INTO vulnerability_summaries \
             (digest, critical, high, medium, low, unknown, scanned_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (digest) DO UPDATE SET critical = EXCLUDED.critical, \
             high = EXCLUDED.high, medium = EXCLUDED.medium, low = EXCLUDED.low, \
             unknown = EXCLUDED.unknown, scanned_at = EXCLUDED.scanned_at",
        )
        .bind(&scan.digest)
        .bind(stored_count(c.critical))
        .bind(stored_count(c.high))
        .bind(stored_count(c.medium))
        .bind(stored_count(c.low))
        .bind(stored_count(c.unknown))
        .bind(scan.scanned_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(event) = event {
            record_event(&mut tx, event.clone(), scan.scanned_at).await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn scan_result(&self, digest: &str) -> Result<Option<ScanRecord>, MetaError> {
        let row = sqlx::query(
            "SELECT r.*, s.critical, s.high, s.medium, s.low, s.unknown FROM scan_results r \
             JOIN vulnerability_summaries s ON s.digest = r.digest WHERE r.digest = $1",
        )
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ScanRecord {
            digest: row.get("digest"),
            repository: row.get("repository"),
            scanned_at: row.get("scanned_at"),
            db_generation: row.get("db_generation"),
            os: row.get("os"),
            packages: count(&row, "packages"),
            counts: severity_counts(&row),
            findings: serde_json::from_str(row.get::<&str, _>("findings"))
                .map_err(|e| corrupt("findings", e))?,
            warnings: serde_json::from_str(row.get::<&str, _>("warnings"))
                .map_err(|e| corrupt("warnings", e))?,
            sbom_digest: row.get("sbom_digest"),
        }))
    }

    async fn vulnerability_summaries(
        &self,
        digests: &[String],
    ) -> Result<HashMap<String, VulnerabilitySummary>, MetaError> {
        let rows = sqlx::query(
            "SELECT digest, critical, high, medium, low, unknown, scanned_at \
             FROM vulnerability_summaries WHERE digest = ANY($1)",
        )
        .bind(digests)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get("digest"),
                    VulnerabilitySummary::of(severity_counts(row), row.get("scanned_at")),
                )
            })
            .collect())
    }

    async fn image_manifests(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, MetaError> {
        let (after_repo, after_digest) = after.unwrap_or(("", ""));
        sqlx::query_as(
            "SELECT r.name, m.digest FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id \
             JOIN manifests m ON m.digest = rm.digest \
             WHERE m.media_type IN ('application/vnd.oci.image.manifest.v1+json', \
                                    'application/vnd.docker.distribution.manifest.v2+json') \
               AND m.subject IS NULL AND (r.name, m.digest) > ($1, $2) \
             ORDER BY r.name, m.digest LIMIT $3",
        )
        .bind(after_repo)
        .bind(after_digest)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn scan_cursor(&self, name: &str) -> Result<i64, MetaError> {
        cursor_position(self, name).await
    }

    async fn hand_on_scans(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        jobs: &[NewJob],
    ) -> Result<bool, MetaError> {
        hand_on_jobs(self, cursor, from, to, jobs).await
    }
}
