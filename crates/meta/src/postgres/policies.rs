//! The lifecycle policies on PostgreSQL: immutable tag rules (written under the exclusive
//! form of the lock tag changes read them under), retention policies, snapshots, guarded
//! retention deletes and the run history, with the contract of `core/src/ports/policies.rs`.
//!
//! A retention apply records events, so it runs under the event-order lock like every push
//! and delete: no tag or link can change between its checks and its deletes on any node.

use super::events::record_event;
use super::links::{immutable_rules_on, namespace_of, rule_from_row, rules_lock};
use super::{backend, count_column, lock_name, PostgresMeta};
use berth_core::events::{data_of, EventKind, ManifestDeletedData, NewEvent, TagDeletedData};
use berth_core::lifecycle::retention::{ManifestFacts, RepoSnapshot, TagFacts};
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
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

fn target_of(row: &PgRow, what: &str) -> Result<Target, MetaError> {
    let scope: String = row.get("scope");
    let target: String = row.get("target");
    Target::from_stored(&scope, &target)
        .ok_or_else(|| MetaError::Backend(format!("stored {what} target {target:?} is invalid")))
}

fn optional_count(row: &PgRow, column: &str) -> Option<u32> {
    row.get::<Option<i64>, _>(column)
        .map(|n| n.clamp(0, u32::MAX.into()) as u32)
}

fn policy_from_row(row: &PgRow) -> Result<StoredPolicy, MetaError> {
    Ok(StoredPolicy {
        target: target_of(row, "policy")?,
        policy: RetentionPolicy {
            keep_last_pushed: optional_count(row, "keep_last_pushed"),
            keep_last_pulled: optional_count(row, "keep_last_pulled"),
            keep_pushed_days: optional_count(row, "keep_pushed_days"),
            keep_pulled_days: optional_count(row, "keep_pulled_days"),
            tags: split_patterns(row.get::<&str, _>("tags")),
            untagged_days: optional_count(row, "untagged_days"),
            schedule: row.get("schedule"),
            allow_empty: row.get("allow_empty"),
        },
        revision: row.get("revision"),
        next_run_at: row.get("next_run_at"),
        updated_by: row.get("updated_by"),
        updated_at: row.get("updated_at"),
    })
}

fn run_from_row(row: &PgRow) -> Result<RetentionRunRecord, MetaError> {
    Ok(RetentionRunRecord {
        id: row.get("id"),
        target: target_of(row, "run")?,
        trigger: row.get("trigger"),
        actor: row.get("actor"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        tags: decode_run_list(row.get::<&str, _>("tags")),
        manifests: decode_run_list(row.get::<&str, _>("manifests")),
        skipped: count_column(row, "skipped"),
        bytes: row.get::<i64, _>("bytes").max(0) as u64,
        error: row.get("error"),
    })
}

fn count_param(count: Option<u32>) -> Option<i64> {
    count.map(i64::from)
}

/// Adds one repository's deletions to a started run's record, in the transaction that made
/// them: whatever happens next, the history lists what is gone.
async fn add_to_run(
    tx: &mut Transaction<'_, Postgres>,
    run_id: i64,
    repo: &str,
    applied: &RetentionApplied,
) -> Result<(), MetaError> {
    // Locked: two repositories of one run applied at once on two nodes both add theirs.
    let row = sqlx::query("SELECT tags, manifests FROM retention_runs WHERE id = $1 FOR UPDATE")
        .bind(run_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?
        .ok_or_else(|| MetaError::Backend(format!("retention run {run_id} vanished")))?;
    let mut tags = decode_run_list(row.get::<&str, _>("tags"));
    let mut manifests = decode_run_list(row.get::<&str, _>("manifests"));
    add_to_run_lists(&mut tags, &mut manifests, repo, applied);
    sqlx::query(
        "UPDATE retention_runs SET tags = $1, manifests = $2, skipped = skipped + $3 \
         WHERE id = $4",
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

/// The (scope, target, revision) of the policy in force for `repo`: its own, else its
/// namespace's.
async fn effective_policy_on(
    tx: &mut Transaction<'_, Postgres>,
    repo: &str,
) -> Result<Option<(String, String, i64)>, MetaError> {
    let row = sqlx::query(
        "SELECT scope, target, revision FROM retention_policies \
         WHERE (scope = 'repository' AND target = $1) OR (scope = 'namespace' AND target = $2) \
         ORDER BY scope DESC LIMIT 1 FOR SHARE",
    )
    .bind(repo)
    .bind(namespace_of(repo))
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(row.map(|r| (r.get("scope"), r.get("target"), r.get("revision"))))
}

/// Whether anything left in repository `repo_id` still needs `digest`: a tag, an index that
/// lists it, or an artifact whose subject it is.
async fn still_needed(
    tx: &mut Transaction<'_, Postgres>,
    repo_id: i64,
    digest: &str,
) -> Result<bool, MetaError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tags WHERE repository_id = $1 AND digest = $2) \
         OR EXISTS (SELECT 1 FROM manifest_children c JOIN repository_manifests rm \
                    ON rm.digest = c.manifest AND rm.repository_id = $1 WHERE c.child = $2) \
         OR EXISTS (SELECT 1 FROM manifests m JOIN repository_manifests rm \
                    ON rm.digest = m.digest AND rm.repository_id = $1 WHERE m.subject = $2)",
    )
    .bind(repo_id)
    .bind(digest)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)
}

#[async_trait::async_trait]
impl LifecycleStore for PostgresMeta {
    async fn immutable_rules_for(&self, repo: &RepoName) -> Result<Vec<ImmutableRule>, MetaError> {
        let mut tx = self.begin().await?;
        let rules = immutable_rules_on(&mut tx, repo.as_str()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(rules)
    }

    async fn immutable_rule(&self, target: &Target) -> Result<Option<ImmutableRule>, MetaError> {
        let row = sqlx::query("SELECT * FROM immutable_rules WHERE scope = $1 AND target = $2")
            .bind(target.scope())
            .bind(target.name())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn set_immutable_rule(&self, rule: &ImmutableRule) -> Result<(), MetaError> {
        let mut tx = self.begin().await?;
        // Waits for every tag change of the namespace that read the old rules.
        lock_name(&mut tx, &rules_lock(rule.target.namespace())).await?;
        sqlx::query(
            "INSERT INTO immutable_rules \
             (scope, target, tags, excludes, exempt_cosign, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, target) DO UPDATE SET \
             tags = EXCLUDED.tags, excludes = EXCLUDED.excludes, \
             exempt_cosign = EXCLUDED.exempt_cosign, updated_by = EXCLUDED.updated_by, \
             updated_at = EXCLUDED.updated_at",
        )
        .bind(rule.target.scope())
        .bind(rule.target.name())
        .bind(join_patterns(&rule.tags))
        .bind(join_patterns(&rule.excludes))
        .bind(rule.exempt_cosign)
        .bind(&rule.updated_by)
        .bind(rule.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn clear_immutable_rule(&self, target: &Target) -> Result<bool, MetaError> {
        let mut tx = self.begin().await?;
        lock_name(&mut tx, &rules_lock(target.namespace())).await?;
        let done = sqlx::query("DELETE FROM immutable_rules WHERE scope = $1 AND target = $2")
            .bind(target.scope())
            .bind(target.name())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn retention_policy(&self, target: &Target) -> Result<Option<StoredPolicy>, MetaError> {
        let row = sqlx::query("SELECT * FROM retention_policies WHERE scope = $1 AND target = $2")
            .bind(target.scope())
            .bind(target.name())
            .fetch_optional(&self.pool)
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
        // One statement: the upsert locks the row, so two nodes' edits get two revisions.
        let row = sqlx::query(
            "INSERT INTO retention_policies \
             (scope, target, keep_last_pushed, keep_last_pulled, keep_pushed_days, \
              keep_pulled_days, tags, untagged_days, schedule, allow_empty, revision, \
              next_run_at, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $12, $13) \
             ON CONFLICT (scope, target) DO UPDATE SET \
             keep_last_pushed = EXCLUDED.keep_last_pushed, \
             keep_last_pulled = EXCLUDED.keep_last_pulled, \
             keep_pushed_days = EXCLUDED.keep_pushed_days, \
             keep_pulled_days = EXCLUDED.keep_pulled_days, tags = EXCLUDED.tags, \
             untagged_days = EXCLUDED.untagged_days, schedule = EXCLUDED.schedule, \
             allow_empty = EXCLUDED.allow_empty, \
             revision = retention_policies.revision + 1, \
             next_run_at = EXCLUDED.next_run_at, updated_by = EXCLUDED.updated_by, \
             updated_at = EXCLUDED.updated_at \
             RETURNING *",
        )
        .bind(target.scope())
        .bind(target.name())
        .bind(count_param(policy.keep_last_pushed))
        .bind(count_param(policy.keep_last_pulled))
        .bind(count_param(policy.keep_pushed_days))
        .bind(count_param(policy.keep_pulled_days))
        .bind(join_patterns(&policy.tags))
        .bind(count_param(policy.untagged_days))
        .bind(&policy.schedule)
        .bind(policy.allow_empty)
        .bind(next_run_at)
        .bind(by)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        policy_from_row(&row)
    }

    async fn clear_retention_policy(&self, target: &Target) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM retention_policies WHERE scope = $1 AND target = $2")
            .bind(target.scope())
            .bind(target.name())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_retention_policies(&self, now: i64) -> Result<Vec<StoredPolicy>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM retention_policies WHERE next_run_at IS NOT NULL AND next_run_at <= $1 \
             ORDER BY next_run_at LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.pool)
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
            "UPDATE retention_policies SET next_run_at = $1 \
             WHERE scope = $2 AND target = $3 AND revision = $4",
        )
        .bind(next_run_at)
        .bind(target.scope())
        .bind(target.name())
        .bind(revision)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn repositories_of_namespace(&self, namespace: &str) -> Result<Vec<RepoName>, MetaError> {
        let prefix = format!("{namespace}/");
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM repositories WHERE starts_with(name, $1) ORDER BY name",
        )
        .bind(&prefix)
        .fetch_all(&self.pool)
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
        // One snapshot for the three reads: tags, manifests and children at one moment.
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let repo_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok(None);
        };
        let tags = sqlx::query(
            "SELECT name, digest, pushed_at, last_pulled_at FROM tags WHERE repository_id = $1",
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
             JOIN repository_manifests rm ON rm.digest = c.manifest WHERE rm.repository_id = $1",
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
             JOIN manifests m ON m.digest = rm.digest WHERE rm.repository_id = $1",
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
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let names: Vec<&str> = gone.iter().map(|(repo, _)| repo.as_str()).collect();
        let ids: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, id FROM repositories WHERE name = ANY($1)")
                .bind(&names)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let id_of: std::collections::HashMap<String, i64> = ids.into_iter().collect();
        let mut bytes = UnreferencedBytes::new(gone.iter().flat_map(|(repo, digests)| {
            let id = id_of.get(repo.as_str()).copied();
            digests
                .iter()
                .filter_map(move |d| id.map(|id| (id, d.clone())))
        }));
        if bytes.is_empty() {
            return Ok(0);
        }
        let manifests = bytes.gone_manifests();
        for row in sqlx::query(
            "SELECT rm.repository_id, rm.digest, m.size FROM repository_manifests rm \
             JOIN manifests m ON m.digest = rm.digest WHERE rm.digest = ANY($1)",
        )
        .bind(&manifests)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        {
            bytes.manifest_link(row.get("repository_id"), row.get("digest"), row.get("size"));
        }
        for row in sqlx::query(
            "WITH candidates AS (SELECT DISTINCT digest FROM manifest_blobs \
                WHERE manifest = ANY($1)) \
             SELECT c.digest AS blob, b.size, rm.repository_id, rm.digest AS manifest \
             FROM candidates c JOIN blobs b ON b.digest = c.digest \
             JOIN manifest_blobs mb ON mb.digest = c.digest \
             JOIN repository_manifests rm ON rm.digest = mb.manifest",
        )
        .bind(&manifests)
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
        let mut tx = self.begin_recording().await?;
        let mut applied = RetentionApplied::default();
        let repo_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE")
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
                "DELETE FROM tags WHERE repository_id = $1 AND name = $2 AND digest = $3 \
                 AND pushed_at = $4",
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
                "SELECT pushed_at FROM repository_manifests \
                 WHERE repository_id = $1 AND digest = $2 FOR UPDATE",
            )
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if pushed_at != Some(manifest.pushed_at)
                || still_needed(&mut tx, repo_id, digest).await?
            {
                applied.skipped += 1;
                continue;
            }
            sqlx::query(
                "DELETE FROM repository_manifests WHERE repository_id = $1 AND digest = $2",
            )
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
             VALUES ($1, $2, $3, $4, $5, $5, '[]', '[]', 0, 0, $6, FALSE) RETURNING id",
        )
        .bind(run.target.scope())
        .bind(run.target.name())
        .bind(&run.trigger)
        .bind(&run.actor)
        .bind(run.started_at)
        .bind(INTERRUPTED_RUN)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn record_retention_run(
        &self,
        run: &RetentionRunRecord,
        event: Option<NewEvent>,
    ) -> Result<i64, MetaError> {
        let mut tx = if event.is_some() {
            self.begin_recording().await?
        } else {
            self.begin().await?
        };
        let id: i64 = if run.id != 0 {
            sqlx::query_scalar(
                "UPDATE retention_runs SET finished_at = $1, tags = $2, manifests = $3, \
                 skipped = $4, bytes = $5, error = $6, finished = TRUE WHERE id = $7 \
                 RETURNING id",
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
                "INSERT INTO retention_runs (scope, target, trigger, actor, started_at, \
                 finished_at, tags, manifests, skipped, bytes, error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
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
            "SELECT * FROM retention_runs WHERE scope = $1 AND target = $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(target.scope())
        .bind(target.name())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(run_from_row).collect()
    }
}
