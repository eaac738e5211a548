//! Supply-chain trust on SQLite: trusted keys, pull policies, signature states, the scanner's
//! vulnerability summaries and the signature feed's cursor.

use super::events::{hand_on_jobs, record_event};
use super::{backend, wall_ms, SqliteMeta};
use berth_core::events::NewEvent;
use berth_core::lifecycle::Target;
use berth_core::ports::{MetaError, NewJob, SignatureStore, StoredPullPolicy, TrustedKeyRecord};
use berth_core::signatures::{ImageSignature, PullPolicy, Severity, SignatureState};
use berth_oci::{Digest, RepoName};
use sqlx::Row;

fn target_of(row: &sqlx::sqlite::SqliteRow) -> Result<Target, MetaError> {
    let scope: String = row.get("scope");
    let name: String = row.get("target");
    Target::from_stored(&scope, &name)
        .ok_or_else(|| MetaError::Backend(format!("stored target {scope}:{name} is not valid")))
}

fn key_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<TrustedKeyRecord, MetaError> {
    Ok(TrustedKeyRecord {
        target: target_of(row)?,
        name: row.get("name"),
        algorithm: row.get("algorithm"),
        pem: row.get("public_key"),
        fingerprint: row.get("fingerprint"),
        added_by: row.get("added_by"),
        added_at: row.get("added_at"),
    })
}

fn policy_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredPullPolicy, MetaError> {
    let severity: Option<String> = row.get("block_severity");
    Ok(StoredPullPolicy {
        target: target_of(row)?,
        policy: PullPolicy {
            require_signature: row.get("require_signature"),
            block_severity: severity.as_deref().and_then(|s| Severity::parse(s).ok()),
            allow_unscanned: row.get("allow_unscanned"),
        },
        updated_by: row.get("updated_by"),
        updated_at: row.get("updated_at"),
    })
}

fn signature_from_row(row: &sqlx::sqlite::SqliteRow) -> ImageSignature {
    ImageSignature::from_stored(row.get("state"), row.get("keys"), row.get("reasons"))
}

/// `?, ?, …` for `n` values.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[async_trait::async_trait]
impl SignatureStore for SqliteMeta {
    async fn add_trusted_key(
        &self,
        key: &TrustedKeyRecord,
        event: NewEvent,
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let inserted = sqlx::query(
            "INSERT INTO trusted_keys (scope, target, name, algorithm, public_key, fingerprint, \
             added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(key.target.scope())
        .bind(key.target.name())
        .bind(&key.name)
        .bind(&key.algorithm)
        .bind(&key.pem)
        .bind(&key.fingerprint)
        .bind(&key.added_by)
        .bind(key.added_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 {
            return Err(MetaError::Conflict(format!("key {}", key.name)));
        }
        record_event(&mut tx, event, key.added_at).await?;
        tx.commit().await.map_err(backend)
    }

    async fn trusted_keys(&self, target: &Target) -> Result<Vec<TrustedKeyRecord>, MetaError> {
        let rows =
            sqlx::query("SELECT * FROM trusted_keys WHERE scope = ? AND target = ? ORDER BY name")
                .bind(target.scope())
                .bind(target.name())
                .fetch_all(&self.read)
                .await
                .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn trusted_keys_for(&self, repo: &RepoName) -> Result<Vec<TrustedKeyRecord>, MetaError> {
        let namespace = repo.namespace().unwrap_or(repo.as_str());
        let rows = sqlx::query(
            "SELECT * FROM trusted_keys \
             WHERE (scope = 'repository' AND target = ?) OR (scope = 'namespace' AND target = ?) \
             ORDER BY scope DESC, name",
        )
        .bind(repo.as_str())
        .bind(namespace)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn remove_trusted_key(
        &self,
        target: &Target,
        name: &str,
        event: NewEvent,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let removed =
            sqlx::query("DELETE FROM trusted_keys WHERE scope = ? AND target = ? AND name = ?")
                .bind(target.scope())
                .bind(target.name())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if removed.rows_affected() == 0 {
            return Ok(false);
        }
        record_event(&mut tx, event, wall_ms() / 1000).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn pull_policies(&self) -> Result<Vec<StoredPullPolicy>, MetaError> {
        // The writer's connection: a policy just set through this node is read back at once.
        let rows = sqlx::query("SELECT * FROM pull_policies ORDER BY scope, target")
            .fetch_all(&self.write)
            .await
            .map_err(backend)?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn set_pull_policy(
        &self,
        policy: &StoredPullPolicy,
        event: NewEvent,
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO pull_policies (scope, target, require_signature, block_severity, \
             allow_unscanned, updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT(scope, target) DO UPDATE SET \
             require_signature = excluded.require_signature, \
             block_severity = excluded.block_severity, allow_unscanned = excluded.allow_unscanned, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(policy.target.scope())
        .bind(policy.target.name())
        .bind(policy.policy.require_signature)
        .bind(policy.policy.block_severity.map(Severity::as_str))
        .bind(policy.policy.allow_unscanned)
        .bind(&policy.updated_by)
        .bind(policy.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        record_event(&mut tx, event, policy.updated_at).await?;
        tx.commit().await.map_err(backend)
    }

    async fn clear_pull_policy(&self, target: &Target, event: NewEvent) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let cleared = sqlx::query("DELETE FROM pull_policies WHERE scope = ? AND target = ?")
            .bind(target.scope())
            .bind(target.name())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if cleared.rows_affected() == 0 {
            return Ok(false);
        }
        record_event(&mut tx, event, wall_ms() / 1000).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn record_signature_state(
        &self,
        repo: &RepoName,
        digest: &Digest,
        signature: &ImageSignature,
        now: i64,
        event: NewEvent,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let before = sqlx::query(
            "SELECT state, keys, reasons FROM signature_states WHERE repository = ? AND digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?
        .map(|row| signature_from_row(&row))
        .unwrap_or_else(ImageSignature::unsigned);
        if &before == signature {
            return Ok(false);
        }
        if signature.state == SignatureState::Unsigned {
            sqlx::query("DELETE FROM signature_states WHERE repository = ? AND digest = ?")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        } else {
            sqlx::query(
                "INSERT INTO signature_states (repository, digest, state, keys, reasons, checked_at) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(repository, digest) DO UPDATE SET \
                 state = excluded.state, keys = excluded.keys, reasons = excluded.reasons, \
                 checked_at = excluded.checked_at",
            )
            .bind(repo.as_str())
            .bind(digest.to_string())
            .bind(signature.state.as_str())
            .bind(signature.stored_keys())
            .bind(signature.stored_reasons())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        record_event(&mut tx, event, now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn signature_states(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, ImageSignature)>, MetaError> {
        let mut found = Vec::new();
        for chunk in digests.chunks(500) {
            let sql = format!(
                "SELECT digest, state, keys, reasons FROM signature_states \
                 WHERE repository = ? AND digest IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(repo.as_str());
            for digest in chunk {
                query = query.bind(digest.to_string());
            }
            for row in query.fetch_all(&self.read).await.map_err(backend)? {
                let digest: String = row.get("digest");
                if let Ok(digest) = digest.parse() {
                    found.push((digest, signature_from_row(&row)));
                }
            }
        }
        Ok(found)
    }

    async fn verified_in(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM signature_states s \
             WHERE s.repository = ?1 AND s.state = 'verified' AND (s.digest = ?2 OR s.digest IN ( \
                 SELECT c.manifest FROM manifest_children c \
                 JOIN repository_manifests rm ON rm.digest = c.manifest \
                 JOIN repositories r ON r.id = rm.repository_id \
                 WHERE c.child = ?2 AND r.name = ?1)) \
             LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(found.is_some())
    }

    async fn signed_images(&self, target: &Target) -> Result<Vec<(RepoName, Digest)>, MetaError> {
        let rows = match target {
            Target::Repository(repo) => {
                sqlx::query("SELECT repository, digest FROM signature_states WHERE repository = ?")
                    .bind(repo.as_str())
                    .fetch_all(&self.read)
                    .await
            }
            Target::Namespace(ns) => {
                // Names are `ns/...`; the range keeps the primary key's order usable.
                sqlx::query(
                    "SELECT repository, digest FROM signature_states \
                     WHERE repository >= ? AND repository < ?",
                )
                .bind(format!("{ns}/"))
                .bind(format!("{ns}0"))
                .fetch_all(&self.read)
                .await
            }
        }
        .map_err(backend)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let repo: String = row.get("repository");
                let digest: String = row.get("digest");
                Some((repo.parse().ok()?, digest.parse().ok()?))
            })
            .collect())
    }

    async fn hand_on_signature_events(
        &self,
        cursor: &str,
        from: i64,
        to: i64,
        jobs: &[NewJob],
    ) -> Result<bool, MetaError> {
        hand_on_jobs(self, cursor, from, to, jobs).await
    }
}
