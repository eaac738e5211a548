//! The guarded steps every registry write shares on PostgreSQL: creating a repository row
//! (with the catalog counter and its event), linking a blob (doomed blobs, stored bytes,
//! quotas) and reading the immutable-tag rules a tag change must obey.

use super::backend;
use super::events::record_event;
use berth_core::events::{data_of, EventKind, NewEvent, QuotaWarningData, QUOTA_WARNING_PERCENT};
pub(super) use berth_core::lifecycle::stored::refuse_if_immutable;
use berth_core::lifecycle::stored::split_patterns;
use berth_core::lifecycle::{ImmutableRule, Target};
use berth_core::ports::{BlobStore, MetaError, RepositoryRecord, Usage};
use berth_oci::Digest;
use sqlx::{Postgres, Row, Transaction};

/// The namespace a repository name belongs to: its first path component, or the whole
/// name when it has only one.
pub(super) fn namespace_of(name: &str) -> &str {
    name.split_once('/')
        .map_or(name, |(namespace, _)| namespace)
}

/// The id of `repo`, creating the repository (as a push does, by `actor`, with its
/// `repository.created` event and the catalog counter moved) if it does not exist yet.
/// Two nodes creating it at once: the second waits for the first's commit and uses its row.
pub(super) async fn ensure_repository(
    tx: &mut Transaction<'_, Postgres>,
    repo: &str,
    now: i64,
    actor: Option<&str>,
) -> Result<i64, MetaError> {
    let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
        .bind(repo)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    match insert_repository(tx, repo, None, now, actor).await? {
        Some(created) => Ok(created.id),
        // Created by another transaction that committed meanwhile.
        None => sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
            .bind(repo)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend),
    }
}

pub(super) const REPOSITORY_COLUMNS: &str = "id, name, namespace, is_private, created_at";

pub(super) fn repository_from_row(row: &sqlx::postgres::PgRow) -> RepositoryRecord {
    RepositoryRecord {
        id: row.get("id"),
        name: row.get("name"),
        namespace: row.get("namespace"),
        is_private: row.get("is_private"),
        created_at: row.get("created_at"),
    }
}

/// Inserts the repository unless the name exists (then `None`), with the catalog counter
/// moved and its `repository.created` event by `actor`. `private: None` takes the
/// namespace's default, and private when no account owns the namespace.
pub(super) async fn insert_repository(
    tx: &mut Transaction<'_, Postgres>,
    repo: &str,
    private: Option<bool>,
    now: i64,
    actor: Option<&str>,
) -> Result<Option<RepositoryRecord>, MetaError> {
    let row = sqlx::query(&format!(
        "INSERT INTO repositories (name, namespace, is_private, created_at) \
         VALUES ($1, $2, coalesce($3, (SELECT default_private FROM namespaces WHERE name = $2), TRUE), $4) \
         ON CONFLICT (name) DO NOTHING RETURNING {REPOSITORY_COLUMNS}"
    ))
    .bind(repo)
    .bind(namespace_of(repo))
    .bind(private)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'repositories'")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let record = repository_from_row(&row);
    let data = serde_json::json!({ "is_private": record.is_private });
    record_event(
        tx,
        NewEvent::about(EventKind::RepositoryCreated, repo, actor, data),
        now,
    )
    .await?;
    Ok(Some(record))
}

/// Where the bytes of a link come from, for the in-transaction check.
pub(super) enum LinkSource<'a> {
    /// Freshly committed bytes: checked in `bytes`, because a collector may have deleted
    /// them after the upload committed and before this link.
    Committed(&'a dyn BlobStore),
    /// Bytes another repository links (a mount), or the caller vouches for: a blob row that
    /// is not doomed always has its bytes, so the row is the check.
    Vouched,
}

async fn usage(
    tx: &mut Transaction<'_, Postgres>,
    namespace: &str,
    lock: bool,
) -> Result<Usage, MetaError> {
    let sql = if lock {
        "SELECT bytes, quota FROM namespace_usage WHERE namespace = $1 FOR UPDATE"
    } else {
        "SELECT bytes, quota FROM namespace_usage WHERE namespace = $1"
    };
    let row = sqlx::query(sql)
        .bind(namespace)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(row.map_or_else(Usage::default, |row| Usage {
        bytes: row.get::<i64, _>("bytes").max(0) as u64,
        quota: row.get::<Option<i64>, _>("quota").map(|q| q.max(0) as u64),
    }))
}

/// Links `digest` into `repo` in the caller's transaction, the one way every linking path
/// takes: refuses a doomed blob (`BlobCollected`), checks the bytes are there, enforces the
/// namespace's quota (`QuotaExceeded`) and records `quota.warning` when the link crosses
/// 85 % of it. A new link of a blob refreshes `linked_at`.
pub(super) async fn link_checked(
    tx: &mut Transaction<'_, Postgres>,
    repo: &str,
    digest: &Digest,
    size: u64,
    now: i64,
    source: LinkSource<'_>,
) -> Result<(), MetaError> {
    let digest_text = digest.to_string();
    sqlx::query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (digest) DO NOTHING",
    )
    .bind(&digest_text)
    .bind(size as i64)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    // FOR SHARE: a collector marking the blob (an UPDATE of this row) waits for this
    // transaction, and this one waits for a marking in progress, so the check below holds
    // until the commit on every node.
    let doomed: Option<i64> =
        sqlx::query_scalar("SELECT deleting_at FROM blobs WHERE digest = $1 FOR SHARE")
            .bind(&digest_text)
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
    if doomed.is_some() {
        return Err(MetaError::BlobCollected(digest.clone()));
    }
    if let LinkSource::Committed(bytes) = source {
        match bytes.blob_size(digest).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(MetaError::BlobCollected(digest.clone())),
            Err(err) => return Err(MetaError::Backend(format!("checking stored bytes: {err}"))),
        }
    }
    let repo_id = ensure_repository(tx, repo, now, None).await?;
    let namespace = namespace_of(repo);
    // Only a namespace with a quota serializes its links (on its usage row), so two
    // nodes cannot both pass the quota with the last free bytes.
    let mut before = usage(tx, namespace, false).await?;
    if before.quota.is_some() {
        before = usage(tx, namespace, true).await?;
    }
    sqlx::query(
        "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3) \
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = EXCLUDED.linked_at",
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
    let after = usage(tx, namespace, false).await?;
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

/// The advisory lock name under which a namespace's immutable rules are read by tag changes
/// (shared) and must be written by rule changes (exclusive, through `lock_name`), so no rule
/// changes between a tag change's check and its commit on any node.
pub(super) fn rules_lock(namespace: &str) -> String {
    format!("berth:immutable:{namespace}")
}

/// The immutable rules of `repo`, its own first, read in the caller's transaction under a
/// shared lock on the namespace's rules ([`rules_lock`]).
pub(super) async fn immutable_rules_on(
    tx: &mut Transaction<'_, Postgres>,
    repo: &str,
) -> Result<Vec<ImmutableRule>, MetaError> {
    let namespace = namespace_of(repo);
    sqlx::query("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
        .bind(rules_lock(namespace))
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let rows = sqlx::query(
        "SELECT * FROM immutable_rules WHERE (scope = 'repository' AND target = $1) \
         OR (scope = 'namespace' AND target = $2) ORDER BY scope DESC",
    )
    .bind(repo)
    .bind(namespace)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    rows.iter().map(rule_from_row).collect()
}

/// An immutable rule from its row.
pub(super) fn rule_from_row(row: &sqlx::postgres::PgRow) -> Result<ImmutableRule, MetaError> {
    let scope: String = row.get("scope");
    let target: String = row.get("target");
    Ok(ImmutableRule {
        target: Target::from_stored(&scope, &target).ok_or_else(|| {
            MetaError::Backend(format!("stored rule target {target:?} is invalid"))
        })?,
        tags: split_patterns(row.get::<&str, _>("tags")),
        excludes: split_patterns(row.get::<&str, _>("excludes")),
        exempt_cosign: row.get("exempt_cosign"),
        updated_by: row.get("updated_by"),
        updated_at: row.get("updated_at"),
    })
}
