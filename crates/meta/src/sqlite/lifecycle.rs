//! Garbage collection and usage on SQLite: marking and dropping unreferenced blobs, orphan
//! manifests, the guarded link every linking path goes through, quotas and recounts.

use super::events::record_event;
use super::registry::parse_digest;
use super::repositories::{ensure_repository, namespace_of};
use super::WriteTx;
use super::{backend, SqliteMeta};
use berth_core::events::{data_of, EventKind, NewEvent, QuotaWarningData, QUOTA_WARNING_PERCENT};
use berth_core::ports::{
    BlobStore, CandidateWindow, Collection, LinkPrecheck, MetaError, Usage, UsageRepair, UsageStore,
};
use berth_oci::{Digest, RepoName};
use sqlx::Row;

/// A list of strings as one JSON array parameter, read in SQL through `json_each`: one bind
/// for a whole batch instead of a placeholder each.
fn json_list<T: ToString>(items: &[T]) -> String {
    serde_json::Value::from(items.iter().map(T::to_string).collect::<Vec<_>>()).to_string()
}

/// The namespace's stored usage and quota, in the caller's transaction.
async fn usage_tx(tx: &mut WriteTx, namespace: &str) -> Result<Usage, MetaError> {
    let row = sqlx::query("SELECT bytes, quota FROM namespace_usage WHERE namespace = ?")
        .bind(namespace)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(row.map_or_else(Usage::default, |row| usage_from_row(&row)))
}

fn usage_from_row(row: &sqlx::sqlite::SqliteRow) -> Usage {
    Usage {
        // NULL when the namespace has no usage row yet.
        bytes: row.get::<Option<i64>, _>("bytes").unwrap_or(0).max(0) as u64,
        quota: row.get::<Option<i64>, _>("quota").map(|q| q.max(0) as u64),
    }
}

/// The quota part of a [`LinkPrecheck`], from a row with the namespace's `bytes` and
/// `quota` (NULL: none) and whether it `held` the blob.
pub(super) fn quota_precheck(row: &sqlx::sqlite::SqliteRow) -> LinkPrecheck {
    LinkPrecheck {
        quota: row
            .get::<Option<i64>, _>("quota")
            .map(|_| usage_from_row(row)),
        namespace_holds_blob: row.get::<Option<i64>, _>("held").unwrap_or(0) != 0,
        collector_marks: None,
    }
}

/// Where the bytes of a link come from, for the check that they are still there.
pub(super) enum LinkSource<'a> {
    /// Freshly committed bytes: a collector may have deleted them after the upload committed
    /// and before this link. Checked before the transaction (`check_committed`).
    Committed(CommittedBytes<'a>),
    /// Bytes another repository links (a mount), or the caller vouches for: a blob row that
    /// is not doomed always has its bytes, so the row is the check.
    Vouched,
}

/// Freshly committed upload bytes, as seen before the linking transaction.
pub(super) struct CommittedBytes<'a> {
    store: &'a dyn BlobStore,
    /// The collector's mark count read (in the same snapshot) when the blob was not doomed,
    /// before its bytes were then found present; `None`: check them in the transaction.
    present_at_marks: Option<i64>,
}

/// The collector's mark count from a row with `marks` and whether the blob was `doomed`,
/// read in one snapshot: only while the blob was not doomed can bytes found after it be
/// trusted at link time by an unchanged count.
pub(super) fn trusted_marks(row: &sqlx::sqlite::SqliteRow) -> Option<i64> {
    let doomed: Option<i64> = row.get("doomed");
    row.get::<Option<i64>, _>("marks")
        .filter(|_| doomed != Some(1))
}

impl<'a> CommittedBytes<'a> {
    /// Bytes found stored after a read (one snapshot) that saw the blob not doomed and the
    /// collector's mark count at `marks`: as good as `check_committed`'s read and stat.
    pub(super) fn stored_after(store: &'a dyn BlobStore, marks: i64) -> CommittedBytes<'a> {
        CommittedBytes {
            store,
            present_at_marks: Some(marks),
        }
    }
}

/// Looks at freshly committed bytes before the linking transaction, so that the single
/// writer is never held across a stat of the blob store (a network round trip on S3).
///
/// Reads, in one snapshot, the collector's mark count and whether the blob is doomed, then
/// stats the bytes. A collector deletes bytes only after a marking transaction, so if the
/// blob was not doomed in that snapshot and the count is unchanged once the linking
/// transaction holds the writer, no collector can have deleted the bytes since they were
/// found: `link_checked` trusts this check. Otherwise (a collector marked something in
/// between, rarely) it checks the bytes again inside the transaction.
pub(super) async fn check_committed<'a>(
    read: &sqlx::SqlitePool,
    store: &'a dyn BlobStore,
    digest: &Digest,
) -> Result<CommittedBytes<'a>, MetaError> {
    let row = sqlx::query(
        "SELECT (SELECT value FROM counters WHERE name = 'gc_marks') AS marks, \
           (SELECT deleting_at IS NOT NULL FROM blobs WHERE digest = ?) AS doomed",
    )
    .bind(digest.to_string())
    .fetch_one(read)
    .await
    .map_err(backend)?;
    let unchecked = CommittedBytes {
        store,
        present_at_marks: None,
    };
    let Some(marks) = trusted_marks(&row) else {
        return Ok(unchecked);
    };
    match store.blob_size(digest).await {
        Ok(Some(_)) => Ok(CommittedBytes::stored_after(store, marks)),
        Ok(None) => Ok(unchecked),
        Err(err) => Err(MetaError::Backend(format!("checking stored bytes: {err}"))),
    }
}

/// Links `digest` into `repo` in the caller's transaction, the one way every linking path
/// takes: refuses a doomed blob (`BlobCollected`), makes sure the bytes are there, enforces
/// the namespace's quota (`QuotaExceeded`) and records `quota.warning` when the link
/// crosses 85 % of it. A new link of a blob refreshes `linked_at`, which keeps it through
/// the grace period the client needs to push the manifest.
pub(super) async fn link_checked(
    tx: &mut WriteTx,
    repo: &str,
    digest: &Digest,
    size: u64,
    now: i64,
    source: LinkSource<'_>,
) -> Result<(), MetaError> {
    let digest_text = digest.to_string();
    // A write first, so the transaction holds the write lock from here on: no collector (of
    // this process or another) can mark the blob between the checks below and the commit.
    // One statement for the row, its mark and the collector's mark count: every statement
    // is a round trip to the single writer, which every push waits for.
    // The repository's id and its namespace's usage come back with it, for the same reason.
    let namespace = namespace_of(repo);
    let row = sqlx::query(
        "INSERT INTO blobs (digest, size, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (digest) DO UPDATE SET size = blobs.size \
         RETURNING deleting_at, (SELECT value FROM counters WHERE name = 'gc_marks') AS marks, \
           (SELECT id FROM repositories WHERE name = ?4) AS repo_id, \
           (SELECT bytes FROM namespace_usage WHERE namespace = ?5) AS bytes, \
           (SELECT quota FROM namespace_usage WHERE namespace = ?5) AS quota",
    )
    .bind(&digest_text)
    .bind(size as i64)
    .bind(now)
    .bind(repo)
    .bind(namespace)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    let doomed: Option<i64> = row.get("deleting_at");
    let marks: Option<i64> = row.get("marks");
    if doomed.is_some() {
        return Err(MetaError::BlobCollected(digest.clone()));
    }
    if let LinkSource::Committed(committed) = source {
        // Found present before the transaction, and no collector has marked anything since:
        // nothing can have deleted them (see `check_committed`).
        let checked_before =
            committed.present_at_marks.is_some() && committed.present_at_marks == marks;
        if !checked_before {
            // Not doomed now, so no collector is between marking and dropping this blob:
            // its bytes are either there and stay (this link protects them), or gone.
            match committed.store.blob_size(digest).await {
                Ok(Some(_)) => {}
                Ok(None) => return Err(MetaError::BlobCollected(digest.clone())),
                Err(err) => {
                    return Err(MetaError::Backend(format!("checking stored bytes: {err}")))
                }
            }
        }
    }
    let (repo_id, before) = match row.get::<Option<i64>, _>("repo_id") {
        Some(repo_id) => (repo_id, usage_from_row(&row)),
        None => (
            ensure_repository(tx, repo, now, None).await?,
            usage_tx(tx, namespace).await?,
        ),
    };
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?) \
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at",
    )
    .bind(repo_id)
    .bind(&digest_text)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(quota) = before.quota else {
        return Ok(());
    };
    let after = usage_tx(tx, namespace).await?;
    if after.bytes > before.bytes && after.bytes > quota {
        return Err(MetaError::QuotaExceeded {
            used: before.bytes,
            quota,
        });
    }
    let threshold = quota.saturating_mul(QUOTA_WARNING_PERCENT) / 100;
    if before.bytes < threshold && after.bytes >= threshold {
        let data = QuotaWarningData {
            bytes: after.bytes,
            quota,
        };
        let event = NewEvent::about(EventKind::QuotaWarning, repo, None, data_of(&data));
        record_event(tx, event, now).await?;
    }
    Ok(())
}

fn split_candidates(joined: Option<String>) -> Result<Vec<(Digest, u64)>, MetaError> {
    super::registry::split_names(joined)
        .iter()
        .map(|line| {
            let (digest, size) = line
                .split_once(' ')
                .ok_or_else(|| MetaError::Backend(format!("bad candidate row {line:?}")))?;
            Ok((parse_digest(digest)?, size.parse().unwrap_or(0)))
        })
        .collect()
}

#[async_trait::async_trait]
impl Collection for SqliteMeta {
    async fn doomed_blobs(&self, limit: u32) -> Result<Vec<(Digest, u64)>, MetaError> {
        let joined: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(digest || ' ' || size, char(10)) FROM \
             (SELECT digest, size FROM blobs INDEXED BY blobs_doomed \
              WHERE deleting_at IS NOT NULL LIMIT ?)",
        )
        .bind(i64::from(limit))
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        split_candidates(joined)
    }

    async fn collectable_blobs(
        &self,
        after: Option<&str>,
        window: u32,
        cutoff: i64,
    ) -> Result<CandidateWindow, MetaError> {
        let row = sqlx::query(
            "WITH win AS MATERIALIZED (SELECT digest, size, created_at, deleting_at FROM blobs \
               WHERE digest > ?1 ORDER BY digest LIMIT ?2) \
             SELECT (SELECT max(digest) FROM win) AS last, \
               (SELECT group_concat(w.digest || ' ' || w.size, char(10)) FROM win w \
                WHERE w.deleting_at IS NULL AND w.created_at <= ?3 \
                  AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = w.digest) \
                  AND NOT EXISTS (SELECT 1 FROM repository_blobs rb \
                                  WHERE rb.digest = w.digest AND rb.linked_at > ?3)) AS found",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(window))
        .bind(cutoff)
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(CandidateWindow {
            last: row.get("last"),
            candidates: split_candidates(row.get("found"))?,
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
        let mut tx = super::begin_write(&self.write).await?;
        // The re-check and the mark are one statement on the writer: a link or a manifest
        // committed since the scan keeps its blob.
        let rows = sqlx::query(
            "UPDATE blobs SET deleting_at = ?3 \
             WHERE digest IN (SELECT value FROM json_each(?1)) AND deleting_at IS NULL \
               AND created_at <= ?2 \
               AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = blobs.digest) \
               AND NOT EXISTS (SELECT 1 FROM repository_blobs rb \
                               WHERE rb.digest = blobs.digest AND rb.linked_at > ?2) \
             RETURNING digest, size",
        )
        .bind(json_list(digests))
        .bind(cutoff)
        .bind(now)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let marked = rows
            .iter()
            .map(|row| {
                Ok((
                    parse_digest(row.get("digest"))?,
                    row.get::<i64, _>("size").max(0) as u64,
                ))
            })
            .collect::<Result<Vec<_>, MetaError>>()?;
        if !marked.is_empty() {
            // Tells links that checked their bytes before taking the writer to check again.
            sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'gc_marks'")
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            // Their stale links go now, so no manifest push can name them from here on.
            let names: Vec<&Digest> = marked.iter().map(|(d, _)| d).collect();
            sqlx::query(
                "DELETE FROM repository_blobs WHERE digest IN (SELECT value FROM json_each(?))",
            )
            .bind(json_list(&names))
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
        sqlx::query(
            "DELETE FROM blobs WHERE digest IN (SELECT value FROM json_each(?)) \
             AND deleting_at IS NOT NULL",
        )
        .bind(json_list(digests))
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn orphan_manifests(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        let joined: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(digest, char(10)) FROM \
             (SELECT m.digest FROM manifests m WHERE m.digest > ? \
                AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = m.digest) \
                AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.child = m.digest) \
              ORDER BY m.digest LIMIT ?)",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(super::registry::split_names(joined))
    }

    async fn delete_orphan_manifests(&self, digests: &[String]) -> Result<u64, MetaError> {
        if digests.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "DELETE FROM manifests WHERE digest IN (SELECT value FROM json_each(?)) \
             AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = manifests.digest) \
             AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.child = manifests.digest)",
        )
        .bind(json_list(digests))
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn doomed_totals(&self) -> Result<(u64, u64), MetaError> {
        let row = sqlx::query(
            "SELECT count(*) AS blobs, coalesce(sum(size), 0) AS bytes \
             FROM blobs INDEXED BY blobs_doomed WHERE deleting_at IS NOT NULL",
        )
        .fetch_one(&self.read)
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
        let joined: Option<String> = sqlx::query_scalar(
            "WITH gone(digest) AS MATERIALIZED (SELECT value FROM json_each(?1)) \
             SELECT group_concat(child, char(10)) FROM (SELECT DISTINCT c.child FROM \
               manifest_children c JOIN manifests m ON m.digest = c.child \
               WHERE c.manifest IN (SELECT digest FROM gone) \
                 AND c.child NOT IN (SELECT digest FROM gone) \
                 AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.digest = c.child) \
                 AND NOT EXISTS (SELECT 1 FROM manifest_children p WHERE p.child = c.child \
                                 AND p.manifest NOT IN (SELECT digest FROM gone)) \
               ORDER BY c.child)",
        )
        .bind(json_list(gone))
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(super::registry::split_names(joined))
    }

    async fn blobs_only_in(
        &self,
        gone: &[String],
        cutoff: i64,
    ) -> Result<Vec<(Digest, u64)>, MetaError> {
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let joined: Option<String> = sqlx::query_scalar(
            "WITH gone(digest) AS MATERIALIZED (SELECT value FROM json_each(?1)) \
             SELECT group_concat(digest || ' ' || size, char(10)) FROM (\
               SELECT DISTINCT b.digest, b.size FROM manifest_blobs mb \
               JOIN blobs b ON b.digest = mb.digest \
               WHERE mb.manifest IN (SELECT digest FROM gone) \
                 AND b.deleting_at IS NULL AND b.created_at <= ?2 \
                 AND NOT EXISTS (SELECT 1 FROM manifest_blobs o WHERE o.digest = b.digest \
                                 AND o.manifest NOT IN (SELECT digest FROM gone)) \
                 AND NOT EXISTS (SELECT 1 FROM repository_blobs rb \
                                 WHERE rb.digest = b.digest AND rb.linked_at > ?2) \
               ORDER BY b.digest)",
        )
        .bind(json_list(gone))
        .bind(cutoff)
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        split_candidates(joined)
    }

    async fn abandon_blob(&self, digest: &Digest, size: u64) -> Result<(), MetaError> {
        // Created "long ago": the next run takes it unless something links it meanwhile.
        sqlx::query("INSERT OR IGNORE INTO blobs (digest, size, created_at) VALUES (?, ?, 0)")
            .bind(digest.to_string())
            .bind(size as i64)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The recount: every total as the links say it should be.
const RECOUNT: &[&str] = &[
    "DROP TABLE IF EXISTS temp.recount_namespace_blobs",
    "DROP TABLE IF EXISTS temp.recount_repository",
    "DROP TABLE IF EXISTS temp.recount_namespace",
    "CREATE TEMP TABLE recount_namespace_blobs AS \
     SELECT r.namespace AS namespace, rb.digest AS digest, b.size AS size, count(*) AS refs \
     FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
     JOIN blobs b ON b.digest = rb.digest GROUP BY r.namespace, rb.digest",
    "CREATE TEMP TABLE recount_repository AS \
     SELECT r.id AS repository_id, coalesce(sum(b.size), 0) AS bytes FROM repositories r \
     LEFT JOIN repository_blobs rb ON rb.repository_id = r.id \
     LEFT JOIN blobs b ON b.digest = rb.digest GROUP BY r.id",
    "CREATE TEMP TABLE recount_namespace AS \
     SELECT namespace, sum(size) AS bytes FROM recount_namespace_blobs GROUP BY namespace",
];

#[async_trait::async_trait]
impl UsageStore for SqliteMeta {
    async fn namespace_usage(&self, namespace: &str) -> Result<Usage, MetaError> {
        let row = sqlx::query("SELECT bytes, quota FROM namespace_usage WHERE namespace = ?")
            .bind(namespace)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.map_or_else(Usage::default, |row| usage_from_row(&row)))
    }

    async fn repository_usage(&self, repo: &RepoName) -> Result<Option<u64>, MetaError> {
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT coalesce(u.bytes, 0) FROM repositories r \
             LEFT JOIN repository_usage u ON u.repository_id = r.id WHERE r.name = ?",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(bytes.map(|b| b.max(0) as u64))
    }

    async fn set_quota(&self, namespace: &str, quota: Option<u64>) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO namespace_usage (namespace, bytes, quota) VALUES (?, 0, ?) \
             ON CONFLICT (namespace) DO UPDATE SET quota = excluded.quota",
        )
        .bind(namespace)
        .bind(quota.map(|q| q.min(i64::MAX as u64) as i64))
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn set_default_quota(&self, quota: Option<u64>) -> Result<(), MetaError> {
        let quota = quota.map(|q| q.min(i64::MAX as u64) as i64);
        // Skips the write (and the writer) when nothing changes, as on most starts.
        sqlx::query("UPDATE quota_defaults SET quota = ?1 WHERE id = 1 AND quota IS NOT ?1")
            .bind(quota)
            .execute(&self.write)
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
               WHERE nb.namespace = u.namespace AND nb.digest = ?2) AS held \
             FROM namespace_usage u WHERE u.namespace = ?1 AND u.quota IS NOT NULL",
        )
        .bind(namespace_of(repo.as_str()))
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(row.and_then(|row| quota_precheck(&row).over_quota(size)))
    }

    async fn recompute_usage(&self) -> Result<UsageRepair, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
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
        // insert trigger would add sizes, so the totals are set after it).
        for sql in [
            "DELETE FROM namespace_blobs",
            "INSERT INTO namespace_blobs (namespace, digest, size, refs) \
             SELECT namespace, digest, size, refs FROM recount_namespace_blobs",
            "UPDATE namespace_usage SET bytes = coalesce((SELECT bytes FROM recount_namespace c \
               WHERE c.namespace = namespace_usage.namespace), 0)",
            "DELETE FROM repository_usage",
            "INSERT INTO repository_usage (repository_id, bytes) \
             SELECT repository_id, bytes FROM recount_repository",
            "DROP TABLE recount_namespace_blobs",
            "DROP TABLE recount_repository",
            "DROP TABLE recount_namespace",
        ] {
            sqlx::query(sql).execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(UsageRepair {
            corrected: (wrong_repositories + wrong_namespaces).max(0) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{begin_write, Durability};
    use super::*;
    use berth_storage::FsBlobStore;

    /// The bytes of `content` in the store, and an old, unreferenced row for them: what a
    /// collector takes.
    async fn garbage(meta: &SqliteMeta, root: &std::path::Path, content: &[u8]) -> Digest {
        let digest = Digest::sha256_of(content);
        let hex = digest.to_string().trim_start_matches("sha256:").to_owned();
        let dir = root.join("blobs").join("sha256").join(&hex[..2]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&hex), content).unwrap();
        sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, 0)")
            .bind(digest.to_string())
            .bind(content.len() as i64)
            .execute(&meta.write)
            .await
            .unwrap();
        digest
    }

    /// A database and a blob store in a temporary directory (kept alive by the first).
    async fn opened() -> (
        tempfile::TempDir,
        SqliteMeta,
        std::path::PathBuf,
        FsBlobStore,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMeta::open_with(&dir.path().join("berth.db"), Durability::GroupCommit)
            .await
            .unwrap();
        let root = dir.path().join("data");
        let store = FsBlobStore::open(&root).unwrap();
        (dir, meta, root, store)
    }

    /// What a collector does to a blob: marks it (one marking transaction), deletes its
    /// bytes, and drops its row.
    async fn collect(meta: &SqliteMeta, store: &FsBlobStore, digest: &Digest) {
        let marked = meta
            .mark_blobs(std::slice::from_ref(digest), 10, 20)
            .await
            .unwrap();
        assert_eq!(marked.len(), 1);
        store
            .delete_blobs(std::slice::from_ref(digest))
            .await
            .unwrap();
        meta.drop_doomed_blobs(std::slice::from_ref(digest))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_collection_between_the_byte_check_and_the_link_is_caught_in_the_transaction() {
        let (_dir, meta, root, store) = opened().await;

        // Nothing happens in between: the check made before the transaction stands.
        let kept = garbage(&meta, &root, b"kept").await;
        let committed = check_committed(&meta.read, &store, &kept).await.unwrap();
        assert!(committed.present_at_marks.is_some());
        let mut tx = begin_write(&meta.write).await.unwrap();
        link_checked(
            &mut tx,
            "acme/app",
            &kept,
            4,
            30,
            LinkSource::Committed(committed),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();

        // A collector marks, deletes and drops the blob after its bytes were found: the
        // link sees the mark count move, looks again, and refuses.
        let taken = garbage(&meta, &root, b"taken").await;
        let committed = check_committed(&meta.read, &store, &taken).await.unwrap();
        assert!(committed.present_at_marks.is_some());
        collect(&meta, &store, &taken).await;
        let mut tx = begin_write(&meta.write).await.unwrap();
        let refused = link_checked(
            &mut tx,
            "acme/app",
            &taken,
            5,
            30,
            LinkSource::Committed(committed),
        )
        .await;
        assert!(
            matches!(refused, Err(MetaError::BlobCollected(_))),
            "{refused:?}"
        );
    }

    fn session(id: &str) -> berth_core::ports::UploadSession {
        berth_core::ports::UploadSession {
            id: id.into(),
            repo: "acme/app".parse().unwrap(),
            size: 0,
            created_at: 1,
            updated_at: 1,
            owner: None,
        }
    }

    #[tokio::test]
    async fn a_completion_trusts_its_precheck_only_while_no_collector_has_marked() {
        use berth_core::ports::UploadSessions;
        let (dir, meta, root, store) = opened().await;
        // A store without the bytes: a completion that looked there would refuse.
        let elsewhere = FsBlobStore::open(dir.path().join("elsewhere")).unwrap();
        let repo: RepoName = "acme/app".parse().unwrap();

        // Nothing marked since the precheck: the link takes the bytes as stored, no look.
        let kept = garbage(&meta, &root, b"kept").await;
        meta.create_upload_session(&session("s1"), None)
            .await
            .unwrap();
        let (_, precheck) = meta
            .upload_session_to_complete("s1", &repo, &kept)
            .await
            .unwrap()
            .unwrap();
        assert!(precheck.collector_marks.is_some());
        meta.complete_upload_session("s1", &kept, 4, 30, &elsewhere, Some(&precheck))
            .await
            .unwrap();

        // A collector marks, deletes and drops the blob after the precheck: the link sees
        // the mark count move, looks at the store, and refuses.
        let taken = garbage(&meta, &root, b"taken").await;
        meta.create_upload_session(&session("s2"), None)
            .await
            .unwrap();
        let (_, precheck) = meta
            .upload_session_to_complete("s2", &repo, &taken)
            .await
            .unwrap()
            .unwrap();
        collect(&meta, &store, &taken).await;
        let refused = meta
            .complete_upload_session("s2", &taken, 5, 30, &store, Some(&precheck))
            .await;
        assert!(
            matches!(refused, Err(MetaError::BlobCollected(_))),
            "{refused:?}"
        );

        // A blob being collected at the precheck gives no mark count to trust.
        let doomed = garbage(&meta, &root, b"doomed").await;
        meta.mark_blobs(std::slice::from_ref(&doomed), 10, 20)
            .await
            .unwrap();
        meta.create_upload_session(&session("s3"), None)
            .await
            .unwrap();
        let (_, precheck) = meta
            .upload_session_to_complete("s3", &repo, &doomed)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(precheck.collector_marks, None);
    }
}
