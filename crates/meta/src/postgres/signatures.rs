//! Supply-chain trust on PostgreSQL: trusted keys, pull policies, signature states and the
//! signature feed's hand-on, with the contract of `core/src/ports/signatures.rs`. Changes
//! that record events run under the event-order lock, which also orders two nodes' checks
//! of one image's state.

use super::events::{hand_on_jobs, record_event};
use super::{backend, PostgresMeta};
use berth_core::events::NewEvent;
use berth_core::lifecycle::Target;
use berth_core::ports::{MetaError, NewJob, SignatureStore, StoredPullPolicy, TrustedKeyRecord};
use berth_core::signatures::{ImageSignature, PullPolicy, Severity, SignatureState};
use berth_oci::{Digest, RepoName};
use sqlx::postgres::PgRow;
use sqlx::Row;

fn target_of(row: &PgRow) -> Result<Target, MetaError> {
    let scope: String = row.get("scope");
    let name: String = row.get("target");
    Target::from_stored(&scope, &name)
        .ok_or_else(|| MetaError::Backend(format!("stored target {scope}:{name} is not valid")))
}

fn key_from_row(row: &PgRow) -> Result<TrustedKeyRecord, MetaError> {
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

fn policy_from_row(row: &PgRow) -> Result<StoredPullPolicy, MetaError> {
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

fn signature_from_row(row: &PgRow) -> ImageSignature {
    ImageSignature::from_stored(row.get("state"), row.get("keys"), row.get("reasons"))
}

fn now_secs() -> i64 {
    super::jobs::wall_ms() / 1000
}

#[async_trait::async_trait]
impl SignatureStore for PostgresMeta {
    async fn add_trusted_key(
        &self,
        key: &TrustedKeyRecord,
        event: NewEvent,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
        let inserted = sqlx::query(
            "INSERT INTO trusted_keys (scope, target, name, algorithm, public_key, fingerprint, \
             added_by, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
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
        let rows = sqlx::query(
            "SELECT * FROM trusted_keys WHERE scope = $1 AND target = $2 ORDER BY name",
        )
        .bind(target.scope())
        .bind(target.name())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn trusted_keys_for(&self, repo: &RepoName) -> Result<Vec<TrustedKeyRecord>, MetaError> {
        let namespace = repo.namespace().unwrap_or(repo.as_str());
        let rows = sqlx::query(
            "SELECT * FROM trusted_keys \
             WHERE (scope = 'repository' AND target = $1) \
                OR (scope = 'namespace' AND target = $2) \
             ORDER BY scope DESC, name",
        )
        .bind(repo.as_str())
        .bind(namespace)
        .fetch_all(&self.pool)
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
        let mut tx = self.begin_recording().await?;
        let removed =
            sqlx::query("DELETE FROM trusted_keys WHERE scope = $1 AND target = $2 AND name = $3")
                .bind(target.scope())
                .bind(target.name())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if removed.rows_affected() == 0 {
            return Ok(false);
        }
        record_event(&mut tx, event, now_secs()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn pull_policies(&self) -> Result<Vec<StoredPullPolicy>, MetaError> {
        let rows = sqlx::query("SELECT * FROM pull_policies ORDER BY scope, target")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn set_pull_policy(
        &self,
        policy: &StoredPullPolicy,
        event: NewEvent,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
        sqlx::query(
            "INSERT INTO pull_policies (scope, target, require_signature, block_severity, \
             allow_unscanned, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (scope, target) DO UPDATE SET \
             require_signature = EXCLUDED.require_signature, \
             block_severity = EXCLUDED.block_severity, \
             allow_unscanned = EXCLUDED.allow_unscanned, \
             updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at",
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
        let mut tx = self.begin_recording().await?;
        let cleared = sqlx::query("DELETE FROM pull_policies WHERE scope = $1 AND target = $2")
            .bind(target.scope())
            .bind(target.name())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if cleared.rows_affected() == 0 {
            return Ok(false);
        }
        record_event(&mut tx, event, now_secs()).await?;
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
        let mut tx = self.begin_recording().await?;
        let before = sqlx::query(
            "SELECT state, keys, reasons FROM signature_states WHERE repository = $1 AND digest = $2",
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
            sqlx::query("DELETE FROM signature_states WHERE repository = $1 AND digest = $2")
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        } else {
            sqlx::query(
                "INSERT INTO signature_states (repository, digest, state, keys, reasons, \
                 checked_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (repository, digest) \
                 DO UPDATE SET state = EXCLUDED.state, keys = EXCLUDED.keys, \
                 reasons = EXCLUDED.reasons, checked_at = EXCLUDED.checked_at",
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
        let digests: Vec<String> = digests.iter().map(Digest::to_string).collect();
        let rows = sqlx::query(
            "SELECT digest, state, keys, reasons FROM signature_states \
             WHERE repository = $1 AND digest = ANY($2)",
        )
        .bind(repo.as_str())
        .bind(&digests)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let digest: String = row.get("digest");
                Some((digest.parse().ok()?, signature_from_row(row)))
            })
            .collect())
    }

    async fn verified_in(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signature_states s \
             WHERE s.repository = $1 AND s.state = 'verified' AND (s.digest = $2 OR s.digest IN ( \
                 SELECT c.manifest FROM manifest_children c \
                 JOIN repository_manifests rm ON rm.digest = c.manifest \
                 JOIN repositories r ON r.id = rm.repository_id \
                 WHERE c.child = $2 AND r.name = $1)))",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn signed_images(&self, target: &Target) -> Result<Vec<(RepoName, Digest)>, MetaError> {
        let rows = match target {
            Target::Repository(repo) => {
                sqlx::query("SELECT repository, digest FROM signature_states WHERE repository = $1")
                    .bind(repo.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            Target::Namespace(ns) => {
                // Names are `ns/...`; the range keeps the primary key's order usable.
                sqlx::query(
                    "SELECT repository, digest FROM signature_states \
                     WHERE repository >= $1 AND repository < $2",
                )
                .bind(format!("{ns}/"))
                .bind(format!("{ns}0"))
                .fetch_all(&self.pool)
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
