//! Garbage collection and usage on PostgreSQL: marking and dropping unreferenced blobs,
//! orphan manifests, quotas and recounts, with the contract of `core/src/ports/lifecycle.rs`.
//!
//! Marking must not race a link or a manifest push on another node. Each marking step
//! first locks the rows it will change (`FOR UPDATE`), waiting for every linker and pusher
//! that holds them (they take `FOR SHARE`, see `links.rs` and `registry.rs`), and only then
//! re-checks references in a new statement, whose fresh snapshot sees what those committed.

use super::links::namespace_of;
use super::{backend, PostgresMeta};
use berth_core::ports::{
    CandidateWindow, Collection, LinkPrecheck, MetaError, Usage, UsageRepair, UsageStore,
};
use berth_oci::{Digest, RepoName};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// The quota part of a [`LinkPrecheck`], from a row with the namespace's `bytes` and
/// `quota` (NULL: none) and whether it `held` the blob.
pub(super) fn quota_precheck(row: &PgRow) -> LinkPrecheck {
    LinkPrecheck {
        quota: row.get::<Option<i64>, _>("quota").map(|quota| Usage {
            bytes: row.get::<Option<i64>, _>("bytes").unwrap_or(0).max(0) as u64,
            quota: Some(quota.max(0) as u64),
        }),
        namespace_holds_blob: row.get::<Option<bool>, _>("held").unwrap_or(false),
        collector_marks: None,
    }
}

fn digest_and_size(row: &PgRow) -> Result<(Digest, u64), MetaError> {
    let digest: String = row.get("digest");
    Ok((
        digest
            .parse()
            .map_err(|e| MetaError::Backend(format!("stored digest {digest:?} is invalid: {e}")))?,
        row.get::<i64, _>("size").max(0) as u64,
    ))
}

fn texts<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(T::to_string).collect()
}

fn quota_column(quota: Option<u64>) -> Option<i64> {
    quota.map(|q| q.min(i64::MAX as u64) as i64)
}

#[async_trait::async_trait]
impl Collection for PostgresMeta {
    async fn doomed_blobs(&self, limit: u32) -> Result<Vec<(Digest, u64)>, MetaError> {
        let rows =
            sqlx::query("SELECT digest, size FROM blobs WHERE deleting_at IS NOT NULL LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.iter().map(digest_and_size).collect()
    }

    async fn collectable_blobs(
        &self,
        after: Option<&str>,
        window: u32,
        cutoff: i64,
    ) -> Result<CandidateWindow, MetaError> {
        let row = sqlx::query(
            "WITH win AS MATERIALIZED (SELECT digest, size, created_at, deleting_at FROM blobs \
               WHERE digest > $1 ORDER BY digest LIMIT $2) \
             SELECT (SELECT max(digest) FROM win) AS last, \
               (SELECT array_agg(w.digest || ' ' || w.size ORDER BY w.digest) FROM win w \
                WHERE w.deleting_at IS NULL AND w.created_at <= $3 \
                  AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = w.digest) \
                  AND NOT EXISTS (SELECT 1 FROM repository_blobs rb \
                                  WHERE rb.digest = w.digest AND rb.linked_at > $3)) AS found",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(window))
        .bind(cutoff)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let found: Option<Vec<String>> = row.get("found");
        let candidates = found
            .unwrap_or_default()
            .iter()
            .map(|line| {
                let (digest, size) = line
                    .split_once(' ')
                    .ok_or_else(|| MetaError::Backend(format!("bad candidate row {line:?}")))?;
                let digest = digest.parse().map_err(|e| {
                    MetaError::Backend(format!("stored digest {digest:?} is invalid: {e}"))
                })?;
                Ok((digest, size.parse().unwrap_or(0)))
            })
            .collect::<Result<_, MetaError>>()?;
        Ok(CandidateWindow {
            last: row.get("last"),
            candidates,
        })
    }

    async fn mark_blobs(
        &self,
        digests: &[Digest],
        cutoff: i64,
        now: i64,
    ) -> Result<Vec<(Digest, u64)>, MetaError> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let digests = texts(digests);
        let mut tx = self.begin().await?;
        // Waits for every linker and pusher holding these rows (in digest order, the same
        // on every node).
        sqlx::query(
            "SELECT 1 FROM blobs WHERE digest = ANY($1) AND deleting_at IS NULL \
             ORDER BY digest FOR UPDATE",
        )
        .bind(&digests)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // A new statement: its snapshot sees the links and manifests they committed.
        let rows = sqlx::query(
            "UPDATE blobs SET deleting_at = $3 \
             WHERE digest = ANY($1) AND deleting_at IS NULL AND created_at <= $2 \
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = blobs.digest) \
               AND NOT EXISTS (SELECT 1 FROM repository_blobs rb \
                               WHERE rb.digest = blobs.digest AND rb.linked_at > $2) \
             RETURNING digest, size",
        )
        .bind(&digests)
        .bind(cutoff)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let marked = rows
            .iter()
            .map(digest_and_size)
            .collect::<Result<Vec<_>, MetaError>>()?;
        if !marked.is_empty() {
            // Their stale links go now, so no manifest push can name them from here on.
            let names: Vec<String> = marked.iter().map(|(d, _)| d.to_string()).collect();
            sqlx::query("DELETE FROM repository_blobs WHERE digest = ANY($1)")
                .bind(&names)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(marked)
    }

    async fn drop_doomed_blobs(&self, digests: &[Digest]) -> Result<(), MetaError> {
        if digests.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM blobs WHERE digest = ANY($1) AND deleting_at IS NOT NULL")
            .bind(texts(digests))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn orphan_manifests(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        sqlx::query_scalar(
            "SELECT m.digest FROM manifests m WHERE m.digest > $1 \
               AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = m.digest) \
               AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.child = m.digest) \
             ORDER BY m.digest LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn delete_orphan_manifests(&self, digests: &[String]) -> Result<u64, MetaError> {
        if digests.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        // Locked first: a push linking one of them (its foreign key takes a share lock on
        // the row) finishes before the re-check below, which then sees its link.
        sqlx::query("SELECT 1 FROM manifests WHERE digest = ANY($1) ORDER BY digest FOR UPDATE")
            .bind(digests)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let done = sqlx::query(
            "DELETE FROM manifests WHERE digest = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = manifests.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.child = manifests.digest)",
        )
        .bind(digests)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn doomed_totals(&self) -> Result<(u64, u64), MetaError> {
        let row = sqlx::query(
            "SELECT count(*) AS blobs, coalesce(sum(size), 0)::BIGINT AS bytes \
             FROM blobs WHERE deleting_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok((
            row.get::<i64, _>("blobs").max(0) as u64,
            row.get::<i64, _>("bytes").max(0) as u64,
        ))
    }

    async fn orphaned_children(&self, gone: &[String]) -> Result<Vec<String>, MetaError> {
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(
            "SELECT DISTINCT c.child FROM manifest_children c \
             JOIN manifests m ON m.digest = c.child \
             WHERE c.manifest = ANY($1) AND NOT (c.child = ANY($1)) \
               AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = c.child) \
               AND NOT EXISTS (SELECT 1 FROM manifest_children p WHERE p.child = c.child \
                               AND NOT (p.manifest = ANY($1))) \
             ORDER BY c.child",
        )
        .bind(gone)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn blobs_only_in(
        &self,
        gone: &[String],
        cutoff: i64,
    ) -> Result<Vec<(Digest, u64)>, MetaError> {
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT DISTINCT b.digest, b.size FROM manifest_blobs mb \
             JOIN blobs b ON b.digest = mb.digest \
             WHERE mb.manifest = ANY($1) AND b.deleting_at IS NULL AND b.created_at <= $2 \
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs o WHERE o.digest = b.digest \
                               AND NOT (o.manifest = ANY($1))) \
               AND NOT EXISTS (SELECT 1 FROM repository_blobs rb \
                               WHERE rb.digest = b.digest AND rb.linked_at > $2) \
             ORDER BY b.digest",
        )
        .bind(gone)
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(digest_and_size).collect()
    }

    async fn abandon_blob(&self, digest: &Digest, size: u64) -> Result<(), MetaError> {
        // Created "long ago": the next run takes it unless something links it meanwhile.
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, 0) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(size as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

/// The recount: every total as the links say it should be, in temporary tables that go
/// with the transaction.
const RECOUNT: &[&str] = &[
    "CREATE TEMP TABLE recount_namespace_blobs ON COMMIT DROP AS \
     SELECT r.namespace AS namespace, rb.digest AS digest, b.size AS size, count(*) AS refs \
     FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
     JOIN blobs b ON b.digest = rb.digest GROUP BY r.namespace, rb.digest, b.size",
    "CREATE TEMP TABLE recount_repository ON COMMIT DROP AS \
     SELECT r.id AS repository_id, coalesce(sum(b.size), 0)::bigint AS bytes FROM repositories r \
     LEFT JOIN repository_blobs rb ON rb.repository_id = r.id \
     LEFT JOIN blobs b ON b.digest = rb.digest GROUP BY r.id",
    "CREATE TEMP TABLE recount_namespace ON COMMIT DROP AS \
     SELECT namespace, sum(size)::bigint AS bytes FROM recount_namespace_blobs GROUP BY namespace",
];

#[async_trait::async_trait]
impl UsageStore for PostgresMeta {
    async fn namespace_usage(&self, namespace: &str) -> Result<Usage, MetaError> {
        let row = sqlx::query("SELECT bytes, quota FROM namespace_usage WHERE namespace = $1")
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map_or_else(Usage::default, |row| Usage {
            bytes: row.get::<i64, _>("bytes").max(0) as u64,
            quota: row.get::<Option<i64>, _>("quota").map(|q| q.max(0) as u64),
        }))
    }

    async fn repository_usage(&self, repo: &RepoName) -> Result<Option<u64>, MetaError> {
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT coalesce(u.bytes, 0) FROM repositories r \
             LEFT JOIN repository_usage u ON u.repository_id = r.id WHERE r.name = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(bytes.map(|b| b.max(0) as u64))
    }

    async fn set_quota(&self, namespace: &str, quota: Option<u64>) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO namespace_usage (namespace, bytes, quota) VALUES ($1, 0, $2) \
             ON CONFLICT (namespace) DO UPDATE SET quota = EXCLUDED.quota",
        )
        .bind(namespace)
        .bind(quota_column(quota))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn set_default_quota(&self, quota: Option<u64>) -> Result<(), MetaError> {
        // Skips the write when nothing changes, as on most starts of most nodes.
        sqlx::query(
            "UPDATE quota_defaults SET quota = $1 WHERE id = 1 AND quota IS DISTINCT FROM $1",
        )
        .bind(quota_column(quota))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn quota_check(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<(u64, u64)>, MetaError> {
        let row = sqlx::query(
            "SELECT u.bytes, u.quota, EXISTS (SELECT 1 FROM namespace_blobs nb \
               WHERE nb.namespace = u.namespace AND nb.digest = $2) AS held \
             FROM namespace_usage u WHERE u.namespace = $1 AND u.quota IS NOT NULL",
        )
        .bind(namespace_of(repo.as_str()))
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.and_then(|row| quota_precheck(&row).over_quota(size)))
    }

    async fn recompute_usage(&self) -> Result<UsageRepair, MetaError> {
        let mut tx = self.begin().await?;
        // Links and unlinks wait for the recount: its totals are exact at its commit.
        sqlx::query("LOCK TABLE repository_blobs IN SHARE MODE")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for sql in RECOUNT {
            sqlx::query(sql).execute(&mut *tx).await.map_err(backend)?;
        }
        let wrong_repositories: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM recount_repository c \
             LEFT JOIN repository_usage u ON u.repository_id = c.repository_id \
             WHERE coalesce(u.bytes, 0) <> c.bytes",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let wrong_namespaces: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT namespace FROM namespace_usage \
               UNION SELECT namespace FROM recount_namespace) n \
             LEFT JOIN namespace_usage u ON u.namespace = n.namespace \
             LEFT JOIN recount_namespace c ON c.namespace = n.namespace \
             WHERE coalesce(u.bytes, 0) <> coalesce(c.bytes, 0)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        // Rebuilt without the triggers' arithmetic: the per-namespace table first (its
        // triggers move the totals), then the totals set outright.
        for sql in [
            "DELETE FROM namespace_blobs",
            "INSERT INTO namespace_blobs (namespace, digest, size, refs) \
             SELECT namespace, digest, size, refs FROM recount_namespace_blobs",
            "UPDATE namespace_usage SET bytes = coalesce((SELECT bytes FROM recount_namespace c \
               WHERE c.namespace = namespace_usage.namespace), 0)",
            "DELETE FROM repository_usage",
            "INSERT INTO repository_usage (repository_id, bytes) \
             SELECT repository_id, bytes FROM recount_repository",
        ] {
            sqlx::query(sql).execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(UsageRepair {
            corrected: (wrong_repositories + wrong_namespaces).max(0) as u64,
        })
    }
}
