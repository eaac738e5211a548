//! The vulnerability database and scan results on SQLite (see the port's contract): imports
//! as generations made current in one statement, results with their summary and event.

use super::events::{cursor_position, hand_on_jobs, record_event};
use super::{backend, SqliteMeta};
use berth_core::events::NewEvent;
use berth_core::ports::{
    MetaError, NewJob, ScanRecord, ScanStore, VulnDbStatus, VulnerabilitySummary,
};
use berth_scan::osv::Advisory;
use berth_scan::Ecosystem;
use sqlx::Row;
use std::collections::HashMap;

/// Rows removed per transaction when dropping an old generation, so the writer is never
/// held for long.
const DROP_BATCH: i64 = 5_000;

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn corrupt(what: &str, err: serde_json::Error) -> MetaError {
    MetaError::Backend(format!("stored {what} is not readable: {err}"))
}

impl SqliteMeta {
    /// Removes the rows of every generation but `keep`, a batch per transaction.
    async fn drop_generations_except(&self, keep: i64) -> Result<(), MetaError> {
        for table in ["vulndb_packages", "vulndb_advisories"] {
            loop {
                let mut tx = super::begin_write(&self.write).await?;
                // WITHOUT ROWID tables: bounded slices by primary key.
                let removed = match table {
                    "vulndb_packages" => sqlx::query(
                        "DELETE FROM vulndb_packages WHERE (generation, ecosystem, package, advisory_id) IN \
                         (SELECT generation, ecosystem, package, advisory_id FROM vulndb_packages WHERE generation <> ? LIMIT ?)",
                    ),
                    _ => sqlx::query(
                        "DELETE FROM vulndb_advisories WHERE (generation, id) IN \
                         (SELECT generation, id FROM vulndb_advisories WHERE generation <> ? LIMIT ?)",
                    ),
                }
                .bind(keep)
                .bind(DROP_BATCH)
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
                tx.commit().await.map_err(backend)?;
                if removed == 0 {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ScanStore for SqliteMeta {
    async fn begin_vulndb_import(&self) -> Result<i64, MetaError> {
        let current: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM vulndb_state WHERE id = 1")
                .fetch_optional(&self.write)
                .await
                .map_err(backend)?;
        let highest: Option<i64> =
            sqlx::query_scalar("SELECT max(generation) FROM vulndb_advisories")
                .fetch_one(&self.write)
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
        let mut tx = super::begin_write(&self.write).await?;
        for advisory in advisories {
            sqlx::query(
                "INSERT OR REPLACE INTO vulndb_advisories (generation, id, doc) VALUES (?, ?, ?)",
            )
            .bind(generation)
            .bind(&advisory.id)
            .bind(json(advisory))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let mut keys: Vec<(&str, &str)> = advisory
                .affected
                .iter()
                .map(|a| (a.ecosystem.as_str(), a.package.as_str()))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for (ecosystem, package) in keys {
                sqlx::query(
                    "INSERT OR IGNORE INTO vulndb_packages (generation, ecosystem, package, advisory_id) VALUES (?, ?, ?, ?)",
                )
                .bind(generation)
                .bind(ecosystem)
                .bind(package)
                .bind(&advisory.id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn commit_vulndb_import(&self, status: &VulnDbStatus) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO vulndb_state (id, generation, imported_at, source, stats) VALUES (1, ?, ?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET generation = excluded.generation, imported_at = excluded.imported_at, \
             source = excluded.source, stats = excluded.stats",
        )
        .bind(status.generation)
        .bind(status.imported_at)
        .bind(&status.source)
        .bind(json(status))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        self.drop_generations_except(status.generation).await
    }

    async fn vulndb_status(&self) -> Result<Option<VulnDbStatus>, MetaError> {
        let stats: Option<String> =
            sqlx::query_scalar("SELECT stats FROM vulndb_state WHERE id = 1")
                .fetch_optional(&self.read)
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
             JOIN vulndb_packages p ON p.generation = s.generation AND p.ecosystem = ? AND p.package = ? \
             JOIN vulndb_advisories a ON a.generation = p.generation AND a.id = p.advisory_id \
             WHERE s.id = 1",
        )
        .bind(ecosystem.as_str())
        .bind(package)
        .fetch_all(&self.read)
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
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query(
            "INSERT OR REPLACE INTO scan_results (digest, repository, scanned_at, db_generation, os, packages, findings, warnings, sbom_digest) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&scan.digest)
        .bind(&scan.repository)
        .bind(scan.scanned_at)
        .bind(scan.db_generation)
        .bind(&scan.os)
        .bind(scan.packages as i64)
        .bind(json(&scan.findings))
        .bind(json(&scan.warnings))
        .bind(&scan.sbom_digest)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let c = scan.counts;
        sqlx::query(
            "INSERT OR REPLACE INTO vulnerability_summaries (digest, critical, high, medium, low, unknown, scanned_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&scan.digest)
        .bind(c.critical as i64)
        .bind(c.high as i64)
        .bind(c.medium as i64)
        .bind(c.low as i64)
        .bind(c.unknown as i64)
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
             JOIN vulnerability_summaries s ON s.digest = r.digest WHERE r.digest = ?",
        )
        .bind(digest)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let count = |name: &str| row.get::<i64, _>(name).max(0) as u64;
        Ok(Some(ScanRecord {
            digest: row.get("digest"),
            repository: row.get("repository"),
            scanned_at: row.get("scanned_at"),
            db_generation: row.get("db_generation"),
            os: row.get("os"),
            packages: count("packages"),
            counts: berth_scan::matching::SeverityCounts {
                critical: count("critical"),
                high: count("high"),
                medium: count("medium"),
                low: count("low"),
                unknown: count("unknown"),
            },
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
        let mut out = HashMap::new();
        for chunk in digests.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT digest, critical, high, medium, low, unknown, scanned_at FROM vulnerability_summaries WHERE digest IN ({placeholders})"
            );
            let mut query = sqlx::query(&sql);
            for digest in chunk {
                query = query.bind(digest);
            }
            for row in query.fetch_all(&self.read).await.map_err(backend)? {
                let count = |name: &str| row.get::<i64, _>(name).max(0) as u64;
                out.insert(
                    row.get("digest"),
                    VulnerabilitySummary {
                        critical: count("critical"),
                        high: count("high"),
                        medium: count("medium"),
                        low: count("low"),
                        unknown: count("unknown"),
                        scanned_at: row.get("scanned_at"),
                    },
                );
            }
        }
        Ok(out)
    }

    async fn image_manifests(
        &self,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<(String, String)>, MetaError> {
        let (after_repo, after_digest) = after.unwrap_or(("", ""));
        let rows = sqlx::query(
            "SELECT r.name, m.digest FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id \
             JOIN manifests m ON m.digest = rm.digest \
             WHERE m.media_type IN ('application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json') \
               AND m.subject IS NULL AND (r.name, m.digest) > (?, ?) \
             ORDER BY r.name, m.digest LIMIT ?",
        )
        .bind(after_repo)
        .bind(after_digest)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|row| (row.get("name"), row.get("digest")))
            .collect())
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
