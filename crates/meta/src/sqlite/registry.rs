//! The registry ports on SQLite: upload sessions, blob links, manifests, tags, repositories.

use super::events::{record_event, record_events};
use super::lifecycle::{
    check_committed, link_checked, quota_precheck, trusted_marks, CommittedBytes, LinkSource,
};
use super::policies::{immutable_rules_on, refuse_if_immutable};
use super::repositories::{ensure_repository, namespace_of};
use super::WriteTx;
use super::{backend, SqliteMeta};
use berth_core::events::{data_of, EventKind, ManifestDeletedData, NewEvent, TagDeletedData};
use berth_core::lifecycle::protecting;
use berth_core::ports::{
    BlobLinks, BlobStore, LinkPrecheck, ManifestPlatform, ManifestRecord, Manifests, MetaError,
    NewManifest, ReferrerRecord, Repositories, Tags, UploadSession, UploadSessions,
};
use berth_core::registry::CatalogCache;
use berth_oci::{Digest, Platform, RepoName};
use sqlx::Row;

pub(super) fn parse_digest(raw: &str) -> Result<Digest, MetaError> {
    raw.parse()
        .map_err(|e| MetaError::Backend(format!("stored digest {raw:?} is invalid: {e}")))
}

fn parse_repo(raw: &str) -> Result<RepoName, MetaError> {
    raw.parse()
        .map_err(|e| MetaError::Backend(format!("stored repository name is invalid: {e}")))
}

/// Splits a newline-joined list (listings, a token's repository patterns). Long listings
/// come back as one aggregated value because every row crossing from SQLite's thread costs
/// more than building the string; names, tags and patterns cannot contain a newline.
pub(super) fn split_names(joined: Option<String>) -> Vec<String> {
    joined
        .map(|all| all.split('\n').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn session_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<UploadSession, MetaError> {
    Ok(UploadSession {
        id: row.get("id"),
        repo: parse_repo(row.get("repository"))?,
        size: row.get::<i64, _>("size") as u64,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        owner: row.get("owner"),
    })
}

#[async_trait::async_trait]
impl UploadSessions for SqliteMeta {
    async fn create_upload_session(
        &self,
        s: &UploadSession,
        max_per_owner: Option<u32>,
    ) -> Result<bool, MetaError> {
        // One statement on the single writer: the count cannot change between check and insert.
        let done = sqlx::query(
            "INSERT INTO upload_sessions (id, repository, size, created_at, updated_at, owner) \
             SELECT ?, ?, ?, ?, ?, ? \
             WHERE ? IS NULL OR ? IS NULL \
                OR (SELECT COUNT(*) FROM upload_sessions WHERE owner = ?) < ?",
        )
        .bind(&s.id)
        .bind(s.repo.as_str())
        .bind(s.size as i64)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(&s.owner)
        .bind(&s.owner)
        .bind(max_per_owner.map(i64::from))
        .bind(&s.owner)
        .bind(max_per_owner.map(i64::from))
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn upload_session(&self, id: &str) -> Result<Option<UploadSession>, MetaError> {
        // From a reader: in WAL mode a read sees every commit that returned before it, so a
        // session just created or advanced is visible at once, and the single writer that
        // every push waits for is spared a round trip per request.
        let row = sqlx::query("SELECT * FROM upload_sessions WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn upload_session_to_complete(
        &self,
        id: &str,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<(UploadSession, LinkPrecheck)>, MetaError> {
        // One snapshot for all of it: the collector's mark count is only trusted together
        // with the blob's state read beside it (see `check_committed`).
        let row = sqlx::query(
            "SELECT s.*, u.bytes, u.quota, \
               u.quota IS NOT NULL AND EXISTS (SELECT 1 FROM namespace_blobs nb \
                 WHERE nb.namespace = ?2 AND nb.digest = ?3) AS held, \
               (SELECT value FROM counters WHERE name = 'gc_marks') AS marks, \
               (SELECT deleting_at IS NOT NULL FROM blobs WHERE digest = ?3) AS doomed \
             FROM upload_sessions s \
             LEFT JOIN namespace_usage u ON u.namespace = ?2 AND u.quota IS NOT NULL \
             WHERE s.id = ?1",
        )
        .bind(id)
        .bind(namespace_of(repo.as_str()))
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let precheck = LinkPrecheck {
            collector_marks: trusted_marks(&row),
            ..quota_precheck(&row)
        };
        Ok(Some((session_from_row(&row)?, precheck)))
    }

    async fn advance_upload_session(
        &self,
        id: &str,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE upload_sessions SET size = ?, updated_at = ? WHERE id = ? AND size = ?",
        )
        .bind(to as i64)
        .bind(now)
        .bind(id)
        .bind(from as i64)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_upload_session(&self, id: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM upload_sessions WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn stale_upload_sessions(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<UploadSession>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM upload_sessions WHERE updated_at < ? ORDER BY updated_at LIMIT ?",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.write)
        .await
        .map_err(backend)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn complete_upload_session(
        &self,
        id: &str,
        digest: &Digest,
        size: u64,
        now: i64,
        bytes: &dyn BlobStore,
        stored_after: Option<&LinkPrecheck>,
    ) -> Result<(), MetaError> {
        let committed = match stored_after.and_then(|precheck| precheck.collector_marks) {
            // Found stored after a read that saw the blob not doomed at this mark count:
            // the same guarantee `check_committed` gets from its read and then a stat.
            Some(marks) => CommittedBytes::stored_after(bytes, marks),
            // Before the writer is taken: a stat of the blob store must not hold it.
            None => check_committed(&self.read, bytes, digest).await?,
        };
        let mut tx = super::begin_write(&self.write).await?;
        let repo: Option<String> =
            sqlx::query_scalar("DELETE FROM upload_sessions WHERE id = ? RETURNING repository")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let repo =
            repo.ok_or_else(|| MetaError::Backend(format!("upload session {id} vanished")))?;
        link_checked(
            &mut tx,
            &repo,
            digest,
            size,
            now,
            LinkSource::Committed(committed),
        )
        .await?;
        tx.commit().await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl BlobLinks for SqliteMeta {
    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        link_checked(
            &mut tx,
            repo.as_str(),
            digest,
            size,
            now,
            LinkSource::Vouched,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn mount_blob(
        &self,
        repo: &RepoName,
        from: &RepoName,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<u64>, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        // In the linking transaction: a source link read here cannot be collected before
        // the commit (the collector marks on this same writer).
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb \
             JOIN repositories r ON r.id = rb.repository_id \
             JOIN blobs b ON b.digest = rb.digest \
             WHERE r.name = ? AND rb.digest = ? AND b.deleting_at IS NULL",
        )
        .bind(from.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(size) = size else {
            return Ok(None);
        };
        let size = size.max(0) as u64;
        link_checked(
            &mut tx,
            repo.as_str(),
            digest,
            size,
            now,
            LinkSource::Vouched,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(size))
    }

    async fn linked_blob_size(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb \
             JOIN repositories r ON r.id = rb.repository_id \
             JOIN blobs b ON b.digest = rb.digest \
             WHERE r.name = ? AND rb.digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(size.map(|s| s as u64))
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = ? \
             AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
        )
        .bind(digest.to_string())
        .bind(repo.as_str())
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}

/// Whether `table` (a repository link table) holds `digest` for the repository.
async fn row_exists(
    tx: &mut WriteTx,
    table: &'static str,
    repo_id: i64,
    digest: &Digest,
) -> Result<bool, MetaError> {
    let sql = format!("SELECT 1 FROM {table} WHERE repository_id = ? AND digest = ?");
    let found: Option<i64> = sqlx::query_scalar(&sql)
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(found.is_some())
}

impl SqliteMeta {
    /// One manifest by a query taking the repository name and a key (tag or digest).
    async fn fetch_manifest(
        &self,
        sql: &'static str,
        repo: &RepoName,
        key: &str,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        let row = sqlx::query(sql)
            .bind(repo.as_str())
            .bind(key)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        row.as_ref().map(manifest_from_row).transpose()
    }
}

/// Records a manifest's platform (None: it has none) unless one is recorded already.
async fn set_platform(
    tx: &mut WriteTx,
    digest: &str,
    platform: Option<&Platform>,
) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE manifests SET platform_os = ?, platform_architecture = ?, \
         platform_variant = ?, platform_read = 1 WHERE digest = ? AND platform_read = 0",
    )
    .bind(platform.map(|p| &p.os))
    .bind(platform.map(|p| &p.architecture))
    .bind(platform.and_then(|p| p.variant.as_ref()))
    .bind(digest)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The platform recorded in a row with `platform_os`, `platform_architecture` and
/// `platform_variant`.
pub(super) fn platform_from_row(row: &sqlx::sqlite::SqliteRow) -> Option<Platform> {
    Some(Platform {
        os: row.get::<Option<String>, _>("platform_os")?,
        architecture: row.get::<Option<String>, _>("platform_architecture")?,
        variant: row.get("platform_variant"),
    })
}

fn manifest_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ManifestRecord, MetaError> {
    Ok(ManifestRecord {
        digest: parse_digest(row.get("digest"))?,
        media_type: row.get("media_type"),
        body: row.get("body"),
    })
}

impl SqliteMeta {
    /// A push checks that the manifest's blobs and children are in the repository; a
    /// mirror's copy does not (`check_references: false`), since they are fetched when
    /// first asked for. The reference rows are written alike, so GC keeps what arrives.
    async fn store_manifest(
        &self,
        m: &NewManifest,
        check_references: bool,
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let repo_id =
            ensure_repository(&mut tx, m.repo.as_str(), m.now, m.actor.as_deref()).await?;
        let digest = m.digest.to_string();
        // An immutable tag may be pushed again with the manifest it has (a CI rerun), never
        // moved; checked in this transaction, so no rule or tag changes in between.
        let rules = immutable_rules_on(&mut tx, m.repo.as_str()).await?;
        for tag in m.tags.iter().filter(|_| !rules.is_empty()) {
            if protecting(&rules, tag).is_none() {
                continue;
            }
            let current: Option<String> =
                sqlx::query_scalar("SELECT digest FROM tags WHERE repository_id = ? AND name = ?")
                    .bind(repo_id)
                    .bind(tag)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
            if current.is_some_and(|current| current != digest) {
                refuse_if_immutable(&rules, tag)?;
            }
        }
        for blob in m.blobs.iter().filter(|_| check_references) {
            if !row_exists(&mut tx, "repository_blobs", repo_id, blob).await? {
                return Err(MetaError::MissingBlob(blob.clone()));
            }
        }
        for child in m.children.iter().filter(|_| check_references) {
            if !row_exists(&mut tx, "repository_manifests", repo_id, child).await? {
                return Err(MetaError::MissingManifest(child.clone()));
            }
        }
        let (platform, platform_read) = match &m.platform {
            ManifestPlatform::None => (None, true),
            ManifestPlatform::Known(platform) => (Some(platform), true),
            ManifestPlatform::Unread => (None, false),
        };
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO manifests \
             (digest, media_type, size, body, subject, artifact_type, annotations, created_at, \
              platform_os, platform_architecture, platform_variant, platform_read) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&digest)
        .bind(&m.media_type)
        .bind(m.body.len() as i64)
        .bind(&m.body)
        .bind(m.subject.as_ref().map(|d| d.to_string()))
        .bind(&m.artifact_type)
        .bind(&m.annotations_json)
        .bind(m.now)
        .bind(platform.map(|p| &p.os))
        .bind(platform.map(|p| &p.architecture))
        .bind(platform.and_then(|p| p.variant.as_ref()))
        .bind(platform_read)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 0 && platform_read {
            // Pushed again before the backfill reached it: what this push read settles it.
            set_platform(&mut tx, &digest, platform).await?;
        }
        if inserted.rows_affected() == 1 {
            for blob in &m.blobs {
                sqlx::query(
                    "INSERT OR IGNORE INTO manifest_blobs (manifest, digest) VALUES (?, ?)",
                )
                .bind(&digest)
                .bind(blob.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            for child in &m.children {
                sqlx::query(
                    "INSERT OR IGNORE INTO manifest_children (manifest, child) VALUES (?, ?)",
                )
                .bind(&digest)
                .bind(child.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        // The type this repository was pushed: the shared manifest row keeps the first one.
        sqlx::query(
            "INSERT INTO repository_manifests (repository_id, digest, pushed_at, media_type) \
             VALUES (?, ?, ?, ?) \
             ON CONFLICT(repository_id, digest) DO UPDATE SET pushed_at = excluded.pushed_at, \
             media_type = excluded.media_type",
        )
        .bind(repo_id)
        .bind(&digest)
        .bind(m.now)
        .bind(&m.media_type)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE repositories SET last_pushed_at = ? WHERE id = ?")
            .bind(m.now)
            .bind(repo_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for tag in &m.tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, digest, pushed_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(repository_id, name) DO UPDATE SET digest = excluded.digest, pushed_at = excluded.pushed_at",
            )
            .bind(repo_id)
            .bind(tag)
            .bind(&digest)
            .bind(m.now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        record_events(&mut tx, &m.events, m.now).await?;
        tx.commit().await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl Manifests for SqliteMeta {
    async fn put_manifest(&self, m: &NewManifest) -> Result<(), MetaError> {
        self.store_manifest(m, true).await
    }

    async fn put_cached_manifest(&self, m: &NewManifest) -> Result<(), MetaError> {
        self.store_manifest(m, false).await
    }

    async fn manifest_by_tag(
        &self,
        repo: &RepoName,
        tag: &str,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        self.fetch_manifest(
            "SELECT m.digest, COALESCE(rm.media_type, m.media_type) AS media_type, m.body \
             FROM tags t \
             JOIN repositories r ON r.id = t.repository_id \
             JOIN repository_manifests rm \
               ON rm.repository_id = t.repository_id AND rm.digest = t.digest \
             JOIN manifests m ON m.digest = t.digest \
             WHERE r.name = ? AND t.name = ?",
            repo,
            tag,
        )
        .await
    }

    async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>, MetaError> {
        self.fetch_manifest(
            "SELECT m.digest, COALESCE(rm.media_type, m.media_type) AS media_type, m.body \
             FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id \
             JOIN manifests m ON m.digest = rm.digest \
             WHERE r.name = ? AND rm.digest = ?",
            repo,
            &digest.to_string(),
        )
        .await
    }

    async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let tags: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(t.name, char(10) ORDER BY t.name) FROM tags t \
             JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let tags = split_names(tags);
        let rules = immutable_rules_on(&mut tx, repo.as_str()).await?;
        for tag in &tags {
            refuse_if_immutable(&rules, tag)?;
        }
        // Tags pointing at the manifest go with it (ON DELETE CASCADE).
        let done = sqlx::query(
            "DELETE FROM repository_manifests WHERE digest = ? \
             AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
        )
        .bind(digest.to_string())
        .bind(repo.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let data = ManifestDeletedData {
            digest: digest.to_string(),
            tags,
        };
        let event = NewEvent::about(
            EventKind::ManifestDeleted,
            repo.as_str(),
            actor,
            data_of(&data),
        );
        record_event(&mut tx, event, berth_core::time::now_unix()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ReferrerRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT m.digest, COALESCE(rm.media_type, m.media_type) AS media_type, m.size, \
             m.artifact_type, m.annotations \
             FROM manifests m \
             JOIN repository_manifests rm ON rm.digest = m.digest \
             JOIN repositories r ON r.id = rm.repository_id \
             WHERE r.name = ? AND m.subject = ? AND (? IS NULL OR m.artifact_type = ?) \
             ORDER BY m.digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(ReferrerRecord {
                    digest: parse_digest(row.get("digest"))?,
                    media_type: row.get("media_type"),
                    size: row.get::<i64, _>("size") as u64,
                    artifact_type: row.get("artifact_type"),
                    annotations_json: row.get("annotations"),
                })
            })
            .collect()
    }

    async fn manifests_without_platform(
        &self,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ManifestRecord>, MetaError> {
        // Walks the partial index of unread manifests, which holds nothing once the
        // backfill is done.
        let rows = sqlx::query(
            "SELECT digest, media_type, body FROM manifests INDEXED BY manifests_platform_unread \
             WHERE platform_read = 0 AND digest > ? ORDER BY digest LIMIT ?",
        )
        .bind(after.map(|d| d.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        rows.iter().map(manifest_from_row).collect()
    }

    async fn record_platforms(
        &self,
        platforms: &[(Digest, Option<Platform>)],
    ) -> Result<(), MetaError> {
        if platforms.is_empty() {
            return Ok(());
        }
        let mut tx = super::begin_write(&self.write).await?;
        for (digest, platform) in platforms {
            set_platform(&mut tx, &digest.to_string(), platform.as_ref()).await?;
        }
        tx.commit().await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl Tags for SqliteMeta {
    async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, MetaError> {
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok(None);
        };
        let joined: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(name, char(10) ORDER BY name) FROM \
             (SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?)",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(Some(split_names(joined)))
    }

    async fn delete_tag(
        &self,
        repo: &RepoName,
        tag: &str,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let rules = immutable_rules_on(&mut tx, repo.as_str()).await?;
        if protecting(&rules, tag).is_some() {
            let present: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM tags WHERE name = ? \
                 AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
            )
            .bind(tag)
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if present.is_some() {
                refuse_if_immutable(&rules, tag)?;
            }
        }
        let digest: Option<String> = sqlx::query_scalar(
            "DELETE FROM tags WHERE name = ? \
             AND repository_id = (SELECT id FROM repositories WHERE name = ?) RETURNING digest",
        )
        .bind(tag)
        .bind(repo.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(digest) = digest else {
            return Ok(false);
        };
        let data = TagDeletedData {
            tag: tag.to_owned(),
            digest,
        };
        let event = NewEvent::about(EventKind::TagDeleted, repo.as_str(), actor, data_of(&data));
        record_event(&mut tx, event, berth_core::time::now_unix()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl Repositories for SqliteMeta {
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        let version: i64 =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'repositories'")
                .fetch_one(&self.read)
                .await
                .map_err(backend)?;
        if let Some(page) = self.catalog.page(version, last, limit) {
            return Ok(page);
        }
        let joined: Option<String> = sqlx::query_scalar(
            "SELECT group_concat(name, char(10) ORDER BY name) FROM repositories",
        )
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        let all = split_names(joined);
        let page = CatalogCache::slice(&all, last, limit);
        self.catalog.store(version, all);
        Ok(page)
    }

    async fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetaError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(found.is_some())
    }
}
