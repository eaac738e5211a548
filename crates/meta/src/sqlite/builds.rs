//! Build sources, rules and builds on SQLite (see the port's contract).

use super::events::record_event;
use super::jobs::enqueue_in;
use super::{backend, wall_ms, SqliteMeta};
use berth_core::builds::{
    BuildRecord, BuildRule, BuildStatus, CredentialKind, NewBuild, RefKind, RuleSpec, StoredSource,
};
use berth_core::events::NewEvent;
use berth_core::ports::{BuildStore, MetaError, NewJob, NewToken, TokenRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// Revokes the tokens made for build `id` that are still live; whether there were any.
async fn revoke_build_tokens(
    tx: &mut super::WriteTx,
    id: i64,
    now: i64,
) -> Result<bool, MetaError> {
    let done = sqlx::query(
        "UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL \
         AND id IN (SELECT token_id FROM build_tokens WHERE build_id = ?)",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(done.rows_affected() > 0)
}

fn json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn list(row: &SqliteRow, column: &str) -> Result<Vec<String>, MetaError> {
    let text: String = row.get(column);
    serde_json::from_str(&text)
        .map_err(|e| MetaError::Backend(format!("stored {column} is not a JSON list: {e}")))
}

fn ref_kind(text: &str) -> Result<RefKind, MetaError> {
    RefKind::parse(text).map_err(|_| MetaError::Backend(format!("stored ref kind {text:?}")))
}

fn source_from(row: &SqliteRow) -> Result<StoredSource, MetaError> {
    let kind: String = row.get("credential_kind");
    Ok(StoredSource {
        repository: row.get("repository"),
        git_url: row.get("git_url"),
        credential_kind: CredentialKind::parse(&kind)
            .ok_or_else(|| MetaError::Backend(format!("stored credential kind {kind:?}")))?,
        sealed_credential: row.get("sealed_credential"),
        public_key: row.get("public_key"),
        sealed_hook_secret: row.get("sealed_hook_secret"),
        created_by: row.get("created_by"),
        updated_at: row.get("updated_at"),
        poll_seconds: row.get("poll_seconds"),
        polled_refs: row.get("polled_refs"),
        polled_at: row.get("polled_at"),
    })
}

fn rule_from(row: &SqliteRow) -> Result<BuildRule, MetaError> {
    Ok(BuildRule {
        id: row.get("id"),
        spec: RuleSpec {
            kind: ref_kind(row.get("ref_kind"))?,
            source: row.get("source"),
            tag: row.get("tag_template"),
            dockerfile: row.get("dockerfile"),
            context: row.get("context"),
            build_args: list(row, "build_args")?,
            autobuild: row.get::<i64, _>("autobuild") != 0,
            platforms: list(row, "platforms")?,
        },
    })
}

fn build_from(row: &SqliteRow) -> Result<BuildRecord, MetaError> {
    let status: String = row.get("status");
    let started_at: Option<i64> = row.get("started_at");
    let finished_at: Option<i64> = row.get("finished_at");
    Ok(BuildRecord {
        id: row.get("id"),
        repository: row.get("repository"),
        status: BuildStatus::parse(&status)
            .ok_or_else(|| MetaError::Backend(format!("stored build status {status:?}")))?,
        rule_id: row.get("rule_id"),
        ref_kind: ref_kind(row.get("ref_kind"))?,
        ref_name: row.get("ref_name"),
        commit: row.get("commit_id"),
        tags: list(row, "tags")?,
        dockerfile: row.get("dockerfile"),
        context: row.get("context"),
        build_args: list(row, "build_args")?,
        platforms: list(row, "platforms")?,
        trigger: row.get("trigger"),
        digest: row.get("digest"),
        reason: row.get("reason"),
        created_at: row.get("created_at"),
        started_at,
        finished_at,
        duration: started_at.zip(finished_at).map(|(s, f)| f - s),
        cancel_requested: row.get::<i64, _>("cancel_requested") != 0,
        log: row.get("log"),
    })
}

const BUILD_COLUMNS: &str =
    "id, repository, status, rule_id, ref_kind, ref_name, commit_id, tags, \
     dockerfile, context, build_args, trigger, digest, reason, log, cancel_requested, created_at, \
     started_at, finished_at, platforms";

#[async_trait::async_trait]
impl BuildStore for SqliteMeta {
    async fn put_build_source(&self, source: &StoredSource) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO build_sources (repository, git_url, credential_kind, sealed_credential, \
             public_key, sealed_hook_secret, created_by, updated_at, poll_seconds) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT(repository) DO UPDATE SET git_url = excluded.git_url, \
             credential_kind = excluded.credential_kind, sealed_credential = excluded.sealed_credential, \
             public_key = excluded.public_key, sealed_hook_secret = excluded.sealed_hook_secret, \
             created_by = excluded.created_by, updated_at = excluded.updated_at, \
             poll_seconds = excluded.poll_seconds, polled_at = NULL, polled_refs = NULL",
        )
        .bind(&source.repository)
        .bind(&source.git_url)
        .bind(source.credential_kind.as_str())
        .bind(&source.sealed_credential)
        .bind(&source.public_key)
        .bind(&source.sealed_hook_secret)
        .bind(source.created_by)
        .bind(source.updated_at)
        .bind(source.poll_seconds)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn build_source(&self, repository: &str) -> Result<Option<StoredSource>, MetaError> {
        let row = sqlx::query("SELECT * FROM build_sources WHERE repository = ?")
            .bind(repository)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        row.as_ref().map(source_from).transpose()
    }

    async fn sources_to_poll(&self, now: i64) -> Result<Vec<StoredSource>, MetaError> {
        sqlx::query(
            "SELECT * FROM build_sources WHERE poll_seconds IS NOT NULL \
             AND (polled_at IS NULL OR polled_at + poll_seconds <= ?) ORDER BY repository",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(source_from)
        .collect()
    }

    async fn record_poll(
        &self,
        repository: &str,
        now: i64,
        refs: Option<&str>,
    ) -> Result<(), MetaError> {
        sqlx::query(
            "UPDATE build_sources SET polled_at = ?, polled_refs = coalesce(?, polled_refs) \
             WHERE repository = ?",
        )
        .bind(now)
        .bind(refs)
        .bind(repository)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn delete_build_source(&self, repository: &str) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query("DELETE FROM build_rules WHERE repository = ?")
            .bind(repository)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let done = sqlx::query("DELETE FROM build_sources WHERE repository = ?")
            .bind(repository)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_build_rule(
        &self,
        repository: &str,
        rule: &RuleSpec,
        max: usize,
    ) -> Result<Option<BuildRule>, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM build_rules WHERE repository = ?")
                .bind(repository)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        if count as usize >= max {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO build_rules (repository, ref_kind, source, tag_template, dockerfile, \
             context, build_args, autobuild, platforms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(repository)
        .bind(rule.kind.as_str())
        .bind(&rule.source)
        .bind(&rule.tag)
        .bind(&rule.dockerfile)
        .bind(&rule.context)
        .bind(json(&rule.build_args))
        .bind(i64::from(rule.autobuild))
        .bind(json(&rule.platforms))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(BuildRule {
            id,
            spec: rule.clone(),
        }))
    }

    async fn build_rules(&self, repository: &str) -> Result<Vec<BuildRule>, MetaError> {
        sqlx::query("SELECT * FROM build_rules WHERE repository = ? ORDER BY id")
            .bind(repository)
            .fetch_all(&self.read)
            .await
            .map_err(backend)?
            .iter()
            .map(rule_from)
            .collect()
    }

    async fn delete_build_rule(&self, repository: &str, id: i64) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM build_rules WHERE repository = ? AND id = ?")
            .bind(repository)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn queue_build(&self, build: &NewBuild, job: &NewJob) -> Result<BuildRecord, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let (status, finished_at) = match &build.reason {
            Some(_) => (BuildStatus::Failed, Some(build.created_at)),
            None => (BuildStatus::Queued, None),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO builds (repository, status, rule_id, ref_kind, ref_name, commit_id, tags, \
             dockerfile, context, build_args, trigger, reason, created_at, started_at, finished_at, platforms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&build.repository)
        .bind(status.as_str())
        .bind(build.rule_id)
        .bind(build.ref_kind.as_str())
        .bind(&build.ref_name)
        .bind(&build.commit)
        .bind(json(&build.tags))
        .bind(&build.dockerfile)
        .bind(&build.context)
        .bind(json(&build.build_args))
        .bind(&build.trigger)
        .bind(&build.reason)
        .bind(build.created_at)
        .bind(finished_at)
        .bind(finished_at)
        .bind(json(&build.platforms))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if build.reason.is_none() {
            let job = NewJob {
                payload: serde_json::json!({ "build_id": id }).to_string(),
                unique_key: Some(format!("build:{id}")),
                ..job.clone()
            };
            enqueue_in(&mut tx, &job, wall_ms()).await?;
        }
        let row = sqlx::query(&format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        build_from(&row)
    }

    async fn build(&self, id: i64) -> Result<Option<BuildRecord>, MetaError> {
        sqlx::query(&format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?
            .as_ref()
            .map(build_from)
            .transpose()
    }

    async fn builds_of(
        &self,
        repository: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<BuildRecord>, MetaError> {
        // The list leaves the logs out: they are read one build at a time.
        let columns = BUILD_COLUMNS.replace(" log,", " '' AS log,");
        sqlx::query(&format!(
            "SELECT {columns} FROM builds WHERE repository = ? AND id < ? ORDER BY id DESC LIMIT ?"
        ))
        .bind(repository)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?
        .iter()
        .map(build_from)
        .collect()
    }

    async fn last_finished_build(
        &self,
        repository: &str,
    ) -> Result<Option<BuildRecord>, MetaError> {
        let columns = BUILD_COLUMNS.replace(" log,", " '' AS log,");
        sqlx::query(&format!(
            "SELECT {columns} FROM builds WHERE repository = ? \
             AND status IN ('succeeded', 'failed', 'cancelled') ORDER BY id DESC LIMIT 1"
        ))
        .bind(repository)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?
        .as_ref()
        .map(build_from)
        .transpose()
    }

    async fn start_build(&self, id: i64, now: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE builds SET status = 'running', started_at = ? WHERE id = ? AND status = 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_build_token(
        &self,
        build_id: i64,
        token: &NewToken,
    ) -> Result<TokenRecord, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let record = super::tokens::insert_token(&mut *tx, token).await?;
        sqlx::query("INSERT INTO build_tokens (build_id, token_id) VALUES (?, ?)")
            .bind(build_id)
            .bind(record.id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(record)
    }

    async fn note_build_commit(&self, id: i64, commit: &str) -> Result<(), MetaError> {
        sqlx::query("UPDATE builds SET commit_id = ? WHERE id = ?")
            .bind(commit)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn write_build_log(&self, id: i64, log: &str) -> Result<(), MetaError> {
        sqlx::query("UPDATE builds SET log = ? WHERE id = ? AND status = 'running'")
            .bind(log)
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn finish_build(
        &self,
        id: i64,
        status: BuildStatus,
        digest: Option<&str>,
        reason: Option<&str>,
        log: &str,
        now: i64,
        event: &NewEvent,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let done = sqlx::query(
            "UPDATE builds SET status = ?, digest = ?, reason = ?, log = ?, finished_at = ?, \
             started_at = coalesce(started_at, ?) WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(status.as_str())
        .bind(digest)
        .bind(reason)
        .bind(log)
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let revoked = revoke_build_tokens(&mut tx, id, now).await?;
        record_event(&mut tx, event.clone(), now).await?;
        tx.commit().await.map_err(backend)?;
        if revoked {
            self.credentials.bump();
        }
        Ok(true)
    }

    async fn cancel_build(&self, id: i64, _now: i64) -> Result<Option<BuildStatus>, MetaError> {
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE builds SET cancel_requested = 1 WHERE id = ? RETURNING status",
        )
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(backend)?;
        Ok(status.as_deref().and_then(BuildStatus::parse))
    }

    async fn build_cancel_requested(&self, id: i64) -> Result<bool, MetaError> {
        let flag: Option<i64> =
            sqlx::query_scalar("SELECT cancel_requested FROM builds WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.read)
                .await
                .map_err(backend)?;
        Ok(flag.unwrap_or(0) != 0)
    }

    async fn running_builds(&self) -> Result<Vec<i64>, MetaError> {
        sqlx::query_scalar("SELECT id FROM builds WHERE status = 'running' ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(backend)
    }

    async fn fail_interrupted_builds(
        &self,
        builds: &[(i64, NewEvent)],
        reason: &str,
        now: i64,
    ) -> Result<Vec<i64>, MetaError> {
        let mut failed = Vec::new();
        let mut revoked_any = false;
        for (id, event) in builds {
            let mut tx = super::begin_write(&self.write).await?;
            let done: Option<i64> = sqlx::query_scalar(
                "UPDATE builds SET status = 'failed', reason = ?, finished_at = ?, \
                 log = log || '[berth] ' || ? || char(10) WHERE id = ? AND status = 'running' \
                 RETURNING id",
            )
            .bind(reason)
            .bind(now)
            .bind(reason)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if done.is_some() {
                revoked_any |= revoke_build_tokens(&mut tx, *id, now).await?;
                record_event(&mut tx, event.clone(), now).await?;
            }
            tx.commit().await.map_err(backend)?;
            failed.extend(done);
        }
        if revoked_any {
            self.credentials.bump();
        }
        Ok(failed)
    }
}
