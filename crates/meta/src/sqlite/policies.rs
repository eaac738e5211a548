//! The lifecycle policies on SQLite: immutable tag rules (applied inside every transaction
//! that moves or deletes a tag), retention policies, snapshots, guarded retention deletes
//! and the run history.

use super::events::record_event;
use super::WriteTx;
use super::{backend, SqliteMeta};
use berth_core::events::{data_of, EventKind, ManifestDeletedData, NewEvent, TagDeletedData};
use berth_core::lifecycle::retention::{ManifestFacts, RepoSnapshot, TagFacts};
pub(super) use berth_core::lifecycle::stored::refuse_if_immutable;
use berth_core::lifecycle::stored::{
    add_to_run_lists, assemble_snapshot, decode_run_list, encode_run_list, join_patterns,
    run_event, split_patterns, UnreferencedBytes,
};
use berth_core::lifecycle::{protecting, ImmutableRule, RetentionPolicy, Target};
use berth_core::ports::{
    LifecycleStore, MetaError, RetentionApplied, RetentionApply, RetentionRunRecord, StoredPolicy,
    INTERRUPTED_RUN,
};
use berth_oci::RepoName;
use sqlx::{Row, SqliteConnection};

/// A stored pattern list column.
fn patterns(row: &sqlx::sqlite::SqliteRow, column: &str) -> Vec<String> {
    split_patterns(row.get::<&str, _>(column))
}

fn rule_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ImmutableRule, MetaError> {
    let scope: String = row.get("scope");
    let target: String = row.get("target");
    Ok(ImmutableRule {
        target: Target::from_stored(&scope, &target).ok_or_else(|| {
            MetaError::Backend(format!("stored rule target {target:?} is invalid"))
        })?,
        tags: patterns(row, "tags"),
        excludes: patterns(row, "excludes"),
        exempt_cosign: row.get::<i64, _>("exempt_cosign") != 0,
        updated_by: row.get("updated_by"),
        updated_at: row.get("updated_at"),
    })
}

/// The namespace of a stored repository name (a bare name is its own).
fn namespace_of(repo: &str) -> &str {
    repo.split_once('/').map_or(repo, |(ns, _)| ns)
}

/// The immutable rules of `repo`, its own first, read on the caller's connection (inside a
/// write transaction, so no rule can change before the caller's change commits).
pub(super) async fn immutable_rules_on(
    conn: &mut SqliteConnection,
    repo: &str,
) -> Result<Vec<ImmutableRule>, MetaError> {
    let rows = sqlx::query(
        "SELECT * FROM immutable_rules WHERE (scope = 'repository' AND target = ?1) \
         OR (scope = 'namespace' AND target = ?2) ORDER BY scope DESC",
    )
    .bind(repo)
    .bind(namespace_of(repo))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    rows.iter().map(rule_from_row).collect()
}

fn optional_count(row: &sqlx::sqlite::SqliteRow, column: &str) -> Option<u32> {
    row.get::<Option<i64>, _>(column)
        .map(|n| n.clamp(0, u32::MAX.into()) as u32)
}

fn policy_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredPolicy, MetaError> {
    let scope: String = row.get("scope");
    let target: String = row.get("target");
    Ok(StoredPolicy {
        target: Target::from_stored(&scope, &target).ok_or_else(|| {
            MetaError::Backend(format!("stored policy target {target:?} is invalid"))
        })?,
        policy: RetentionPolicy {
            keep_last_pushed: optional_count(row, "keep_last_pushed"),
            keep_last_pulled: optional_count(row, "keep_last_pulled"),
            keep_pushed_days: optional_count(row, "keep_pushed_days"),
            keep_pulled_days: optional_count(row, "keep_pulled_days"),
            tags: patterns(row, "tags"),
            untagged_days: optional_count(row, "untagged_days"),
            schedule: row.get("schedule"),
            allow_empty: row.get::<i64, _>("allow_empty") != 0,
        },
        revision: row.get("revision"),
        next_run_at: row.get("next_run_at"),
        updated_by: row.get("updated_by"),
        updated_at: row.get("updated_at"),
    })
}

fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<RetentionRunRecord, MetaError> {
    let scope: String = row.get("scope");
    let target: String = row.get("target");
    let list = |column: &str| decode_run_list(row.get::<&str, _>(column));
    Ok(RetentionRunRecord {
        id: row.get("id"),
        target: Target::from_stored(&scope, &target).ok_or_else(|| {
            MetaError::Backend(format!("stored run target {target:?} is invalid"))
        })?,
        trigger: row.get("trigger"),
        actor: row.get("actor"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        tags: list("tags"),
        manifests: list("manifests"),
        skipped: super::count_column(row, "skipped"),
        bytes: row.get::<i64, _>("bytes").max(0) as u64,
        error: row.get("error"),
    })
}

/// Adds one repository's deletions to a started run's record, in the transaction that made
/// them: whatever happens next, the history lists what is gone.
async fn add_to_run(
    tx: &mut WriteTx,
    run_id: i64,
    repo: &str,
    applied: &RetentionApplied,
) -> Result<(), MetaError> {
    let row = sqlx::query("SELECT tags, manifests FROM retention_runs WHERE id = ?")
        .bind(run_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?
        .ok_or_else(|| MetaError::Backend(format!("retention run {run_id} vanished")))?;
    let list = |column: &str| decode_run_list(row.get::<&str, _>(column));
    let (mut tags, mut manifests) = (list("tags"), list("manifests"));
    add_to_run_lists(&mut tags, &mut manifests, repo, applied);
    sqlx::query(
        "UPDATE retention_runs SET tags = ?, manifests = ?, skipped = skipped + ? WHERE id = ?",
    )
    .bind(encode_run_list(&tags))
    .bind(encode_run_list(&manifests))
    .bind(i64::from(applied.skipped))
    .bind(run_id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The (target, revision) of the policy in force for `repo`: its own, else its namespace's.
async fn effective_policy_on(
    tx: &mut WriteTx,
    repo: &str,
) -> Result<Option<(String, String, i64)>, MetaError> {
    let row = sqlx::query(
        "SELECT scope, target, revision FROM retention_policies \
         WHERE (scope = 'repository' AND target = ?1) OR (scope = 'namespace' AND target = ?2) \
         ORDER BY scope DESC LIMIT 1",
    )
    .bind(repo)
    .bind(namespace_of(repo))
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(row.map(|r| (r.get("scope"), r.get("target"), r.get("revision"))))
}

async fn exists(
    tx: &mut WriteTx,
    sql: &'static str,
    repo_id: i64,
    digest: &str,
) -> Result<bool, MetaError> {
    let found: Option<i64> = sqlx::query_scalar(sql)
        .bind(repo_id)
        .bind(digest)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(found.is_some())
}

#[async_trait::async_trait]
impl LifecycleStore for SqliteMeta {
    async fn immutable_rules_for(&self, repo: &RepoName) -> Result<Vec<ImmutableRule>, MetaError> {
        let mut conn = self.read.acquire().await.map_err(backend)?;
        immutable_rules_on(&mut conn, repo.as_str()).await
    }

    async fn immutable_rule(&self, target: &Target) -> Result<Option<ImmutableRule>, MetaError> {
        let row = sqlx::query("SELECT * FROM immutable_rules WHERE scope = ? AND target = ?")
            .bind(target.scope())
            .bind(target.name())
            .fetch_optional(&self.write)
            .await
            .map_err(backend)?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn set_immutable_rule(&self, rule: &ImmutableRule) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO immutable_rules \
             (scope, target, tags, excludes, exempt_cosign, updated_by, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(scope, target) DO UPDATE SET \
             tags = excluded.tags, excludes = excluded.excludes, \
             exempt_cosign = excluded.exempt_cosign, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
        )
        .bind(rule.target.scope())
        .bind(rule.target.name())
        .bind(join_patterns(&rule.tags))
        .bind(join_patterns(&rule.excludes))
        .bind(rule.exempt_cosign)
        .bind(&rule.updated_by)
        .bind(rule.updated_at)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn clear_immutable_rule(&self, target: &Target) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM immutable_rules WHERE scope = ? AND target = ?")
            .bind(target.scope())
            .bind(target.name())
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn retention_policy(&self, target: &Target) -> Result<Option<StoredPolicy>, MetaError> {
        let row = sqlx::query("SELECT * FROM retention_policies WHERE scope = ? AND target = ?")
            .bind(target.scope())
            .bind(target.name())
            .fetch_optional(&self.write)
            .await
            .map_err(backend)?;
        row.as_ref().map(policy_from_row).transpose()
    }

    async fn set_retention_policy(
        &self,
        target: &Target,
        policy: &RetentionPolicy,
        next_run_at: Option<i64>,
        by: &str,
        now: i64,
    ) -> Result<StoredPolicy, MetaError> {
        let row = sqlx::query(
            "INSERT INTO retention_policies \
             (scope, target, keep_last_pushed, keep_last_pulled, keep_pushed_days, \
              keep_pulled_days, tags, untagged_days, schedule, allow_empty, revision, \
              next_run_at, updated_by, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, ?11, ?12, ?13) \
             ON CONFLICT(scope, target) DO UPDATE SET \
             keep_last_pushed = excluded.keep_last_pushed, \
             keep_last_pulled = excluded.keep_last_pulled, \
             keep_pushed_days = excluded.keep_pushed_days, \
             keep_pulled_days = excluded.keep_pulled_days, tags = excluded.tags, \
             untagged_days = excluded.untagged_days, schedule = excluded.schedule, \
             allow_empty = excluded.allow_empty, revision = revision + 1, \
             next_run_at = excluded.next_run_at, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(target.scope())
        .bind(target.name())
        .bind(policy.keep_last_pushed.map(i64::from))
        .bind(policy.keep_last_pulled.map(i64::from))
        .bind(policy.keep_pushed_days.map(i64::from))
        .bind(policy.keep_pulled_days.map(i64::from))
        .bind(join_patterns(&policy.tags))
        .bind(policy.untagged_days.map(i64::from))
        .bind(&policy.schedule)
        .bind(policy.allow_empty)
        .bind(next_run_at)
        .bind(by)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        policy_from_row(&row)
    }

    async fn clear_retention_policy(&self, target: &Target) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM retention_policies WHERE scope = ? AND target = ?")
            .bind(target.scope())
            .bind(target.name())
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_retention_policies(&self, now: i64) -> Result<Vec<StoredPolicy>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM retention_policies WHERE next_run_at IS NOT NULL AND next_run_at <= ? \
             ORDER BY next_run_at LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.write)
        .await
        .map_err(backend)?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn set_retention_next_run(
        &self,
        target: &Target,
        revision: i64,
        next_run_at: Option<i64>,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE retention_policies SET next_run_at = ? \
             WHERE scope = ? AND target = ? AND revision = ?",
        )
        .bind(next_run_at)
        .bind(target.scope())
        .bind(target.name())
        .bind(revision)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn repositories_of_namespace(&self, namespace: &str) -> Result<Vec<RepoName>, MetaError> {
        let prefix = format!("{namespace}/");
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM repositories WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name",
        )
        .bind(&prefix)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        names
            .iter()
            .map(|n| {
                n.parse()
                    .map_err(|e| MetaError::Backend(format!("stored repository name: {e}")))
            })
            .collect()
    }

    async fn retention_snapshot(&self, repo: &RepoName) -> Result<Option<RepoSnapshot>, MetaError> {
        // One read transaction: tags, manifests and children seen at one moment.
        let mut tx = self.read.begin().await.map_err(backend)?;
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok(None);
        };
        let tags = sqlx::query(
            "SELECT name, digest, pushed_at, last_pulled_at FROM tags WHERE repository_id = ?",
        )
        .bind(repo_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| TagFacts {
            name: row.get("name"),
            digest: row.get("digest"),
            pushed_at: row.get("pushed_at"),
            last_pulled_at: row.get("last_pulled_at"),
        })
        .collect();
        let children = sqlx::query(
            "SELECT c.manifest, c.child FROM manifest_children c \
             JOIN repository_manifests rm ON rm.digest = c.manifest WHERE rm.repository_id = ?",
        )
        .bind(repo_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| (row.get("manifest"), row.get("child")))
        .collect::<Vec<_>>();
        let manifests = sqlx::query(
            "SELECT rm.digest, rm.pushed_at, rm.last_pulled_at, m.subject \
             FROM repository_manifests rm \
             JOIN manifests m ON m.digest = rm.digest WHERE rm.repository_id = ?",
        )
        .bind(repo_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|row| ManifestFacts {
            digest: row.get("digest"),
            pushed_at: row.get("pushed_at"),
            last_pulled_at: row.get("last_pulled_at"),
            subject: row.get("subject"),
            children: Vec::new(),
        })
        .collect();
        tx.commit().await.map_err(backend)?;
        Ok(Some(assemble_snapshot(tags, manifests, children)))
    }

    async fn unreferenced_bytes(&self, gone: &[(RepoName, Vec<String>)]) -> Result<u64, MetaError> {
        let mut tx = self.read.begin().await.map_err(backend)?;
        let mut gone_pairs = Vec::new();
        for (repo, digests) in gone {
            let repo_id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
                    .bind(repo.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
            if let Some(id) = repo_id {
                gone_pairs.extend(digests.iter().map(|d| (id, d.clone())));
            }
        }
        let mut bytes = UnreferencedBytes::new(gone_pairs);
        if bytes.is_empty() {
            return Ok(0);
        }
        let manifests_json = serde_json::to_string(&bytes.gone_manifests()).unwrap_or_default();
        for row in sqlx::query(
            "SELECT rm.repository_id, rm.digest, m.size FROM repository_manifests rm \
             JOIN manifests m ON m.digest = rm.digest \
             WHERE rm.digest IN (SELECT value FROM json_each(?))",
        )
        .bind(&manifests_json)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        {
            bytes.manifest_link(row.get("repository_id"), row.get("digest"), row.get("size"));
        }
        for row in sqlx::query(
            "WITH candidates AS (SELECT DISTINCT digest FROM manifest_blobs \
                WHERE manifest IN (SELECT value FROM json_each(?1))) \
             SELECT c.digest AS blob, b.size, rm.repository_id, rm.digest AS manifest \
             FROM candidates c JOIN blobs b ON b.digest = c.digest \
             JOIN manifest_blobs mb ON mb.digest = c.digest \
             JOIN repository_manifests rm ON rm.digest = mb.manifest",
        )
        .bind(&manifests_json)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        {
            bytes.blob_use(
                row.get("blob"),
                row.get("size"),
                row.get("repository_id"),
                row.get("manifest"),
            );
        }
        tx.commit().await.map_err(backend)?;
        Ok(bytes.total())
    }

    async fn apply_retention(
        &self,
        apply: &RetentionApply<'_>,
    ) -> Result<RetentionApplied, MetaError> {
        let repo = apply.repo.as_str();
        let mut tx = super::begin_write(&self.write).await?;
        let mut applied = RetentionApplied::default();
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repo)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            applied.skipped = (apply.tags.len() + apply.manifests.len()) as u32;
            return Ok(applied);
        };
        let planned = (
            apply.policy_target.scope().to_owned(),
            apply.policy_target.name().to_owned(),
            apply.policy_revision,
        );
        if effective_policy_on(&mut tx, repo).await? != Some(planned) {
            return Err(MetaError::Conflict(format!(
                "the retention policy for {repo} changed while the run was planned"
            )));
        }
        let rules = immutable_rules_on(&mut tx, repo).await?;
        for tag in apply.tags {
            if protecting(&rules, &tag.name).is_some() {
                applied.skipped += 1;
                continue;
            }
            let deleted = sqlx::query(
                "DELETE FROM tags WHERE repository_id = ? AND name = ? AND digest = ? \
                 AND pushed_at = ?",
            )
            .bind(repo_id)
            .bind(&tag.name)
            .bind(&tag.digest)
            .bind(tag.pushed_at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if deleted.rows_affected() == 0 {
                applied.skipped += 1;
                continue;
            }
            let data = TagDeletedData {
                tag: tag.name.clone(),
                digest: tag.digest.clone(),
            };
            let event = NewEvent::about(EventKind::TagDeleted, repo, apply.actor, data_of(&data));
            record_event(&mut tx, event, apply.now).await?;
            applied.tags.push(tag.name.clone());
        }
        for manifest in apply.manifests {
            let digest = manifest.digest.as_str();
            let pushed_at: Option<i64> = sqlx::query_scalar(
                "SELECT pushed_at FROM repository_manifests WHERE repository_id = ? AND digest = ?",
            )
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let needed = pushed_at != Some(manifest.pushed_at)
                || exists(
                    &mut tx,
                    "SELECT 1 FROM tags WHERE repository_id = ? AND digest = ? LIMIT 1",
                    repo_id,
                    digest,
                )
                .await?
                || exists(
                    &mut tx,
                    "SELECT 1 FROM manifest_children c JOIN repository_manifests rm \
                     ON rm.digest = c.manifest AND rm.repository_id = ?1 \
                     WHERE c.child = ?2 LIMIT 1",
                    repo_id,
                    digest,
                )
                .await?
                || exists(
                    &mut tx,
                    "SELECT 1 FROM manifests m JOIN repository_manifests rm \
                     ON rm.digest = m.digest AND rm.repository_id = ?1 \
                     WHERE m.subject = ?2 LIMIT 1",
                    repo_id,
                    digest,
                )
                .await?;
            if needed {
                applied.skipped += 1;
                continue;
            }
            sqlx::query("DELETE FROM repository_manifests WHERE repository_id = ? AND digest = ?")
                .bind(repo_id)
                .bind(digest)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let data = ManifestDeletedData {
                digest: digest.to_owned(),
                tags: Vec::new(),
            };
            let event = NewEvent::about(
                EventKind::ManifestDeleted,
                repo,
                apply.actor,
                data_of(&data),
            );
            record_event(&mut tx, event, apply.now).await?;
            applied.manifests.push(digest.to_owned());
        }
        if let Some(run_id) = apply.run_id {
            add_to_run(&mut tx, run_id, repo, &applied).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(applied)
    }

    async fn start_retention_run(&self, run: &RetentionRunRecord) -> Result<i64, MetaError> {
        sqlx::query_scalar(
            "INSERT INTO retention_runs (scope, target, trigger, actor, started_at, finished_at, \
             tags, manifests, skipped, bytes, error, finished) \
             VALUES (?, ?, ?, ?, ?, ?, '[]', '[]', 0, 0, ?, 0) RETURNING id",
        )
        .bind(run.target.scope())
        .bind(run.target.name())
        .bind(&run.trigger)
        .bind(&run.actor)
        .bind(run.started_at)
        .bind(run.started_at)
        .bind(INTERRUPTED_RUN)
        .fetch_one(&self.write)
        .await
        .map_err(backend)
    }

    async fn record_retention_run(
        &self,
        run: &RetentionRunRecord,
        event: Option<NewEvent>,
    ) -> Result<i64, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let id: i64 = if run.id != 0 {
            sqlx::query_scalar(
                "UPDATE retention_runs SET finished_at = ?, tags = ?, manifests = ?, skipped = ?, \
                 bytes = ?, error = ?, finished = 1 WHERE id = ? RETURNING id",
            )
            .bind(run.finished_at)
            .bind(encode_run_list(&run.tags))
            .bind(encode_run_list(&run.manifests))
            .bind(i64::from(run.skipped))
            .bind(i64::try_from(run.bytes).unwrap_or(i64::MAX))
            .bind(&run.error)
            .bind(run.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or_else(|| MetaError::Backend(format!("retention run {} vanished", run.id)))?
        } else {
            sqlx::query_scalar(
            "INSERT INTO retention_runs (scope, target, trigger, actor, started_at, finished_at, \
             tags, manifests, skipped, bytes, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(run.target.scope())
        .bind(run.target.name())
        .bind(&run.trigger)
        .bind(&run.actor)
        .bind(run.started_at)
        .bind(run.finished_at)
        .bind(encode_run_list(&run.tags))
        .bind(encode_run_list(&run.manifests))
        .bind(i64::from(run.skipped))
        .bind(i64::try_from(run.bytes).unwrap_or(i64::MAX))
        .bind(&run.error)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?
        };
        if let Some(event) = event {
            record_event(&mut tx, run_event(event, id), run.finished_at).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }

    async fn retention_runs(
        &self,
        target: &Target,
        limit: u32,
    ) -> Result<Vec<RetentionRunRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM retention_runs WHERE scope = ? AND target = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(target.scope())
        .bind(target.name())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(run_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::repositories::ensure_repository;
    use super::*;
    use berth_core::access::PolicyAuthorizer;
    use berth_core::identity::Acting;
    use berth_core::jobs::Wake;
    use berth_core::lifecycle::{plan, Lifecycle};
    use std::sync::Arc;
    use std::time::Instant;

    fn digest(kind: &str, i: usize) -> String {
        use sha2::Digest as _;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(format!("{kind}{i}").as_bytes()))
        )
    }

    /// `count` images in `repo`, tagged `t0`… and pushed a second apart (the last newest),
    /// each with a layer of its own and one shared config, written in one transaction.
    async fn seed(meta: &SqliteMeta, repo: &str, count: usize) {
        let mut tx = crate::sqlite::begin_write(&meta.write).await.unwrap();
        let repo_id = ensure_repository(&mut tx, repo, 0, None).await.unwrap();
        let config = digest("config", 0);
        sqlx::query("INSERT OR IGNORE INTO blobs (digest, size, created_at) VALUES (?, 100, 0)")
            .bind(&config)
            .execute(&mut *tx)
            .await
            .unwrap();
        for i in 0..count {
            let (manifest, layer) = (digest("manifest", i), digest("layer", i));
            let at = 1_000_000 + i as i64;
            sqlx::query("INSERT INTO blobs (digest, size, created_at) VALUES (?, 1000, 0)")
                .bind(&layer)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO manifests (digest, media_type, size, body, created_at, platform_read) \
                 VALUES (?, 'application/vnd.oci.image.manifest.v1+json', 10, x'7b7d', 0, 1)",
            )
            .bind(&manifest)
            .execute(&mut *tx)
            .await
            .unwrap();
            for blob in [&config, &layer] {
                sqlx::query("INSERT INTO manifest_blobs (manifest, digest) VALUES (?, ?)")
                    .bind(&manifest)
                    .bind(blob)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query(
                "INSERT INTO repository_manifests (repository_id, digest, pushed_at) VALUES (?, ?, ?)",
            )
            .bind(repo_id)
            .bind(&manifest)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO tags (repository_id, name, digest, pushed_at) VALUES (?, ?, ?, ?)",
            )
            .bind(repo_id)
            .bind(format!("t{i}"))
            .bind(&manifest)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn open() -> (tempfile::TempDir, Arc<SqliteMeta>) {
        let dir = tempfile::tempdir().unwrap();
        let meta = SqliteMeta::open_with(
            &dir.path().join("berth.db"),
            super::super::Durability::GroupCommit,
        )
        .await
        .unwrap();
        (dir, Arc::new(meta))
    }

    fn keep_last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last_pushed: Some(n),
            ..RetentionPolicy::default()
        }
    }

    #[tokio::test]
    async fn a_run_planned_under_an_older_policy_deletes_nothing_and_changed_items_are_skipped() {
        let (_dir, meta) = open().await;
        let repo: RepoName = "acme/app".parse().unwrap();
        seed(&meta, repo.as_str(), 4).await;
        let target = Target::Repository(repo.clone());
        let first = meta
            .set_retention_policy(&target, &keep_last(1), None, "alice", 0)
            .await
            .unwrap();
        let snapshot = meta.retention_snapshot(&repo).await.unwrap().unwrap();
        let planned = plan(&snapshot, &first.policy, &[], 2_000_000);
        assert_eq!(planned.tags.len(), 3);
        let apply = |revision| RetentionApply {
            repo: &repo,
            policy_target: &target,
            policy_revision: revision,
            tags: &planned.tags,
            manifests: &planned.manifests,
            actor: Some("alice"),
            now: 0,
            run_id: None,
        };

        // Someone edits the policy between the plan and the run: the run stops whole.
        let second = meta
            .set_retention_policy(&target, &keep_last(2), None, "bob", 1)
            .await
            .unwrap();
        assert_eq!(second.revision, first.revision + 1);
        let stale = meta.apply_retention(&apply(first.revision)).await;
        assert!(matches!(stale, Err(MetaError::Conflict(_))), "{stale:?}");
        assert_eq!(
            meta.retention_snapshot(&repo).await.unwrap().unwrap(),
            snapshot
        );

        // t0 is pushed again (to t1's image) after the plan: it and both images stay.
        sqlx::query("UPDATE tags SET digest = ?, pushed_at = 5 WHERE name = 't0'")
            .bind(digest("manifest", 1))
            .execute(&meta.write)
            .await
            .unwrap();
        let applied = meta.apply_retention(&apply(second.revision)).await.unwrap();
        assert_eq!(applied.tags, ["t1", "t2"]);
        assert_eq!(
            applied.manifests,
            [digest("manifest", 0), digest("manifest", 2)]
        );
        assert_eq!(
            applied.skipped, 2,
            "t0 changed, and the image it now names is needed"
        );
        let left = meta.retention_snapshot(&repo).await.unwrap().unwrap();
        let mut names: Vec<&str> = left.tags.iter().map(|t| t.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["t0", "t3"]);
    }

    #[tokio::test]
    async fn retention_deletes_pass_the_immutable_rules_of_the_transaction() {
        let (_dir, meta) = open().await;
        let repo: RepoName = "acme/app".parse().unwrap();
        seed(&meta, repo.as_str(), 2).await;
        let target = Target::Repository(repo.clone());
        let stored = meta
            .set_retention_policy(&target, &keep_last(1), None, "alice", 0)
            .await
            .unwrap();
        let snapshot = meta.retention_snapshot(&repo).await.unwrap().unwrap();
        let planned = plan(&snapshot, &stored.policy, &[], 2_000_000);
        // The rule arrives after the plan was made without it.
        meta.set_immutable_rule(&ImmutableRule {
            target: Target::Namespace("acme".into()),
            tags: vec!["t0".into()],
            excludes: Vec::new(),
            exempt_cosign: true,
            updated_by: "alice".into(),
            updated_at: 0,
        })
        .await
        .unwrap();
        let applied = meta
            .apply_retention(&RetentionApply {
                repo: &repo,
                policy_target: &target,
                policy_revision: stored.revision,
                tags: &planned.tags,
                manifests: &planned.manifests,
                actor: None,
                now: 0,
                run_id: None,
            })
            .await
            .unwrap();
        assert!(
            applied.tags.is_empty() && applied.manifests.is_empty(),
            "{applied:?}"
        );
        assert_eq!(applied.skipped, 2);
    }

    #[tokio::test]
    async fn a_started_run_lists_what_each_repository_lost_until_it_is_finished() {
        let (_dir, meta) = open().await;
        seed(&meta, "acme/one", 3).await;
        let target = Target::Namespace("acme".into());
        let policy = meta
            .set_retention_policy(&target, &keep_last(1), None, "alice", 0)
            .await
            .unwrap();
        let run = RetentionRunRecord {
            id: 0,
            target: target.clone(),
            trigger: "manual".into(),
            actor: Some("alice".into()),
            started_at: 10,
            finished_at: 10,
            tags: Vec::new(),
            manifests: Vec::new(),
            skipped: 0,
            bytes: 0,
            error: None,
        };
        let run_id = meta.start_retention_run(&run).await.unwrap();
        let repo: RepoName = "acme/one".parse().unwrap();
        let snapshot = meta.retention_snapshot(&repo).await.unwrap().unwrap();
        let planned = plan(&snapshot, &policy.policy, &[], 2_000_000);
        meta.apply_retention(&RetentionApply {
            repo: &repo,
            policy_target: &target,
            policy_revision: policy.revision,
            tags: &planned.tags,
            manifests: &planned.manifests,
            actor: Some("alice"),
            now: 11,
            run_id: Some(run_id),
        })
        .await
        .unwrap();
        // As a crash here would leave it: interrupted, listing what acme/one lost.
        let recorded = meta.retention_runs(&target, 10).await.unwrap();
        assert_eq!(recorded.len(), 1);
        let interrupted = &recorded[0];
        assert_eq!(interrupted.id, run_id);
        assert_eq!(interrupted.error.as_deref(), Some(INTERRUPTED_RUN));
        assert_eq!(interrupted.tags, ["acme/one:t0", "acme/one:t1"]);
        assert_eq!(interrupted.manifests.len(), 2);
        // Finished, the same record says so.
        let finished = RetentionRunRecord {
            id: run_id,
            finished_at: 12,
            tags: interrupted.tags.clone(),
            manifests: interrupted.manifests.clone(),
            bytes: 5,
            ..run
        };
        assert_eq!(
            meta.record_retention_run(&finished, None).await.unwrap(),
            run_id
        );
        let recorded = meta.retention_runs(&target, 10).await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].error, None);
        assert_eq!((recorded[0].finished_at, recorded[0].bytes), (12, 5));
    }

    /// The lifecycle service on `meta`, on the system clock, as the server wires it.
    fn lifecycle_of(meta: &Arc<SqliteMeta>) -> Lifecycle {
        let store: Arc<dyn berth_core::ports::MetaStore> = meta.clone();
        Lifecycle::new(
            store.clone(),
            Arc::new(PolicyAuthorizer::new(store)),
            berth_core::clock::system(),
            Wake::default(),
        )
    }

    #[tokio::test]
    async fn a_due_schedule_queues_one_run_that_is_recorded_as_scheduled() {
        use berth_core::jobs::JobHandler as _;
        use berth_core::lifecycle::{RetentionRunJob, RETENTION_RUN_JOB};
        use berth_core::ports::JobQueue as _;
        let (_dir, meta) = open().await;
        let repo: RepoName = "acme/app".parse().unwrap();
        seed(&meta, repo.as_str(), 3).await;
        let lifecycle = lifecycle_of(&meta);
        let target = Target::Repository(repo.clone());
        let policy = RetentionPolicy {
            schedule: Some("daily".into()),
            ..keep_last(1)
        };
        // Due a minute ago.
        let due = berth_core::time::now_unix() - 60;
        meta.set_retention_policy(&target, &policy, Some(due), "alice", 0)
            .await
            .unwrap();
        assert_eq!(lifecycle.queue_due_runs(&*meta).await.unwrap(), 1);
        assert_eq!(
            lifecycle.queue_due_runs(&*meta).await.unwrap(),
            0,
            "moved on to the next midnight: not queued twice"
        );
        let next = meta
            .retention_policy(&target)
            .await
            .unwrap()
            .unwrap()
            .next_run_at;
        assert!(next.unwrap() > berth_core::time::now_unix(), "{next:?}");

        let jobs = meta.claim_jobs(i64::MAX / 2, 60_000, 10).await.unwrap();
        let job = jobs
            .iter()
            .find(|j| j.kind == RETENTION_RUN_JOB)
            .expect("a retention run job");
        let outcome = RetentionRunJob(lifecycle).run(job).await.unwrap();
        assert_eq!(outcome, berth_core::jobs::JobOutcome::Done);
        let runs = meta.retention_runs(&target, 10).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].trigger, "schedule");
        assert_eq!(runs[0].actor.as_deref(), Some("retention"));
        assert_eq!(runs[0].tags, ["acme/app:t0", "acme/app:t1"]);
        assert_eq!(
            meta.retention_snapshot(&repo)
                .await
                .unwrap()
                .unwrap()
                .tags
                .len(),
            1
        );
    }

    /// `cargo test -p berth-meta --release --lib ten_thousand -- --nocapture` for the number
    /// docs/PERFORMANCE.md records; in debug builds it only has to stay far from a bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dry_run_over_ten_thousand_tags_answers_quickly() {
        let (_dir, meta) = open().await;
        let repo: RepoName = "acme/big".parse().unwrap();
        seed(&meta, repo.as_str(), 10_000).await;
        let lifecycle = lifecycle_of(&meta);
        let acting = Acting::cli();
        let target = Target::Repository(repo);
        meta.set_retention_policy(&target, &keep_last(100), None, "cli", 0)
            .await
            .unwrap();
        let mut fastest = std::time::Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let report = lifecycle.run(&acting, &target, true).await.unwrap();
            fastest = fastest.min(started.elapsed());
            assert_eq!(report.tags.len(), 9_900);
            assert_eq!(report.manifests.len(), 9_900);
            assert_eq!(
                report.bytes,
                9_900 * (1000 + 10),
                "layers and manifests; the config is shared"
            );
        }
        println!("retention dry run over 10,000 tags: {fastest:?} (fastest of 3)");
        // Where the time goes, part by part.
        let repo: RepoName = "acme/big".parse().unwrap();
        let started = Instant::now();
        let snapshot = meta.retention_snapshot(&repo).await.unwrap().unwrap();
        let snapshot_took = started.elapsed();
        let started = Instant::now();
        let planned = plan(&snapshot, &keep_last(100), &[], 2_000_000);
        let plan_took = started.elapsed();
        let gone = vec![(
            repo.clone(),
            planned.manifests.iter().map(|m| m.digest.clone()).collect(),
        )];
        let mut bytes_took = std::time::Duration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            meta.unreferenced_bytes(&gone).await.unwrap();
            bytes_took = bytes_took.min(started.elapsed());
        }
        println!(
            "  snapshot {snapshot_took:?}, plan {plan_took:?}, bytes {bytes_took:?} (fastest of 5)"
        );
        let bound = if cfg!(debug_assertions) { 10 } else { 1 };
        assert!(fastest.as_secs() < bound, "{fastest:?}");
    }
}
