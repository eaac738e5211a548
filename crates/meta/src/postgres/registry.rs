//! The registry ports on PostgreSQL: upload sessions, blob links, manifests, tags,
//! repositories, with the contracts `core/src/ports/meta.rs` states.

use super::events::{record_event, record_events};
use super::lifecycle::quota_precheck;
use super::links::{
    ensure_repository, immutable_rules_on, link_checked, namespace_of, refuse_if_immutable,
    LinkSource,
};
use super::{backend, lock_name, PostgresMeta};
use berth_core::events::{data_of, EventKind, ManifestDeletedData, NewEvent, TagDeletedData};
use berth_core::lifecycle::protecting;
use berth_core::ports::{
    BlobLinks, BlobStore, LinkPrecheck, ManifestPlatform, ManifestRecord, Manifests, MetaError,
    NewManifest, ReferrerRecord, Repositories, Tags, UploadSession, UploadSessions,
};
use berth_core::registry::CatalogCache;
use berth_oci::{Digest, Platform, RepoName};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

fn parse_digest(raw: &str) -> Result<Digest, MetaError> {
    raw.parse()
        .map_err(|e| MetaError::Backend(format!("stored digest {raw:?} is invalid: {e}")))
}

fn parse_repo(raw: &str) -> Result<RepoName, MetaError> {
    raw.parse()
        .map_err(|e| MetaError::Backend(format!("stored repository name is invalid: {e}")))
}

fn session_from_row(row: &PgRow) -> Result<UploadSession, MetaError> {
    Ok(UploadSession {
        id: row.get("id"),
        repo: parse_repo(row.get("repository"))?,
        size: row.get::<i64, _>("size").max(0) as u64,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        owner: row.get("owner"),
    })
}

#[async_trait::async_trait]
impl UploadSessions for PostgresMeta {
    async fn create_upload_session(
        &self,
        s: &UploadSession,
        max_per_owner: Option<u32>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin().await?;
        // The owner's sessions are counted and the new one inserted under a lock on the
        // owner, so a burst spread over several nodes cannot pass the cap together.
        if let (Some(owner), Some(_)) = (&s.owner, max_per_owner) {
            lock_name(&mut tx, &format!("berth:uploads:{owner}")).await?;
        }
        let done = sqlx::query(
            "INSERT INTO upload_sessions (id, repository, size, created_at, updated_at, owner) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE $6 IS NULL OR $7::bigint IS NULL \
                OR (SELECT count(*) FROM upload_sessions WHERE owner = $6) < $7",
        )
        .bind(&s.id)
        .bind(s.repo.as_str())
        .bind(s.size as i64)
        .bind(s.created_at)
        .bind(s.updated_at)
        .bind(&s.owner)
        .bind(max_per_owner.map(i64::from))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn upload_session(&self, id: &str) -> Result<Option<UploadSession>, MetaError> {
        let row = sqlx::query("SELECT * FROM upload_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
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
        let row = sqlx::query(
            "SELECT s.*, u.bytes, u.quota, \
               u.quota IS NOT NULL AND EXISTS (SELECT 1 FROM namespace_blobs nb \
                 WHERE nb.namespace = $2 AND nb.digest = $3) AS held \
             FROM upload_sessions s \
             LEFT JOIN namespace_usage u ON u.namespace = $2 AND u.quota IS NOT NULL \
             WHERE s.id = $1",
        )
        .bind(id)
        .bind(namespace_of(repo.as_str()))
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let precheck = LinkPrecheck {
            // Every node's collector marks rows under a lock the link waits for, and the
            // link still looks at the bytes: there is no mark count to hand on here.
            collector_marks: None,
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
        // The row lock the UPDATE takes makes this a compare-and-set across nodes: of two
        // advances from the same size, the second re-reads the row after the first commits
        // and finds it moved.
        let done = sqlx::query(
            "UPDATE upload_sessions SET size = $1, updated_at = $2 WHERE id = $3 AND size = $4",
        )
        .bind(to as i64)
        .bind(now)
        .bind(id)
        .bind(from as i64)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_upload_session(&self, id: &str) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM upload_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
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
            "SELECT * FROM upload_sessions WHERE updated_at < $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        _stored_after: Option<&LinkPrecheck>,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
        let repo: Option<String> =
            sqlx::query_scalar("DELETE FROM upload_sessions WHERE id = $1 RETURNING repository")
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
            LinkSource::Committed(bytes),
        )
        .await?;
        tx.commit().await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl BlobLinks for PostgresMeta {
    async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        now: i64,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
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
        let mut tx = self.begin_recording().await?;
        // The source link is locked until the commit, so the collector cannot drop it
        // (and then the blob) between this read and the new link.
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repository_blobs rb \
             JOIN repositories r ON r.id = rb.repository_id \
             JOIN blobs b ON b.digest = rb.digest \
             WHERE r.name = $1 AND rb.digest = $2 AND b.deleting_at IS NULL \
             FOR SHARE OF rb",
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
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(size.map(|s| s.max(0) as u64))
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "DELETE FROM repository_blobs WHERE digest = $1 \
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(digest.to_string())
        .bind(repo.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }
}

/// Whether the repository links `digest` and the blob is not doomed. The link and the blob
/// row are locked until the commit: a collector marking the blob (which locks the blob row
/// first, then re-checks references in a fresh snapshot) either waits for this push and
/// then sees its reference, or marked first, and then this check finds the blob doomed.
async fn blob_linked(
    tx: &mut Transaction<'_, Postgres>,
    repo_id: i64,
    digest: &Digest,
) -> Result<bool, MetaError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
         WHERE rb.repository_id = $1 AND rb.digest = $2 AND b.deleting_at IS NULL \
         FOR SHARE OF rb, b",
    )
    .bind(repo_id)
    .bind(digest.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(found.is_some())
}

/// Whether the repository holds the manifest `digest`; the link is locked until the commit,
/// so a concurrent delete cannot remove what an index is about to list.
async fn manifest_linked(
    tx: &mut Transaction<'_, Postgres>,
    repo_id: i64,
    digest: &Digest,
) -> Result<bool, MetaError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM repository_manifests WHERE repository_id = $1 AND digest = $2 FOR SHARE",
    )
    .bind(repo_id)
    .bind(digest.to_string())
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(found.is_some())
}

/// Records a manifest's platform (None: it has none) unless one is recorded already.
async fn set_platform(
    tx: &mut Transaction<'_, Postgres>,
    digest: &str,
    platform: Option<&Platform>,
) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE manifests SET platform_os = $1, platform_architecture = $2, \
         platform_variant = $3, platform_read = TRUE WHERE digest = $4 AND NOT platform_read",
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

fn manifest_from_row(row: &PgRow) -> Result<ManifestRecord, MetaError> {
    Ok(ManifestRecord {
        digest: parse_digest(row.get("digest"))?,
        media_type: row.get("media_type"),
        body: row.get("body"),
    })
}

impl PostgresMeta {
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
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(manifest_from_row).transpose()
    }
}

impl PostgresMeta {
    /// A manifest push, or (without `check_references`) a cached copy from a mirror.
    async fn store_manifest(
        &self,
        m: &NewManifest,
        check_references: bool,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;

        let repo_id =
            ensure_repository(&mut tx, m.repo.as_str(), m.now, m.actor.as_deref()).await?;
        // The repository row first, then its tags: the order the pull flush takes them
        // in too, so the two never wait on each other in a cycle.
        sqlx::query("UPDATE repositories SET last_pushed_at = $1 WHERE id = $2")
            .bind(m.now)
            .bind(repo_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let digest = m.digest.to_string();
        // An immutable tag may be pushed again with the manifest it has (a CI rerun), never
        // moved; the rules are read under their lock and the tag row locked, so neither
        // changes before the commit.
        let rules = immutable_rules_on(&mut tx, m.repo.as_str()).await?;
        for tag in m.tags.iter().filter(|_| !rules.is_empty()) {
            if protecting(&rules, tag).is_none() {
                continue;
            }
            let current: Option<String> = sqlx::query_scalar(
                "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2 FOR UPDATE",
            )
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if current.is_some_and(|current| current != digest) {
                refuse_if_immutable(&rules, tag)?;
            }
        }
        // A cached copy (pull-through cache) is stored before its blobs and children, which
        // arrive when asked for.
        for blob in m.blobs.iter().filter(|_| check_references) {
            if !blob_linked(&mut tx, repo_id, blob).await? {
                return Err(MetaError::MissingBlob(blob.clone()));
            }
        }
        for child in m.children.iter().filter(|_| check_references) {
            if !manifest_linked(&mut tx, repo_id, child).await? {
                return Err(MetaError::MissingManifest(child.clone()));
            }
        }
        let (platform, platform_read) = match &m.platform {
            ManifestPlatform::None => (None, true),
            ManifestPlatform::Known(platform) => (Some(platform), true),
            ManifestPlatform::Unread => (None, false),
        };
        let inserted = sqlx::query(
            "INSERT INTO manifests \
             (digest, media_type, size, body, subject, artifact_type, annotations, created_at, \
              platform_os, platform_architecture, platform_variant, platform_read) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (digest) DO NOTHING",
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
            let blobs: Vec<String> = m.blobs.iter().map(Digest::to_string).collect();
            sqlx::query(
                "INSERT INTO manifest_blobs (manifest, digest) \
                 SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&digest)
            .bind(&blobs)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let children: Vec<String> = m.children.iter().map(Digest::to_string).collect();
            sqlx::query(
                "INSERT INTO manifest_children (manifest, child) \
                 SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            )
            .bind(&digest)
            .bind(&children)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        // The type this repository was pushed: the shared manifest row keeps the first one.
        sqlx::query(
            "INSERT INTO repository_manifests (repository_id, digest, pushed_at, media_type) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = EXCLUDED.pushed_at, \
             media_type = EXCLUDED.media_type",
        )
        .bind(repo_id)
        .bind(&digest)
        .bind(m.now)
        .bind(&m.media_type)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        for tag in &m.tags {
            sqlx::query(
                "INSERT INTO tags (repository_id, name, digest, pushed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (repository_id, name) DO UPDATE \
                 SET digest = EXCLUDED.digest, pushed_at = EXCLUDED.pushed_at",
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
impl Manifests for PostgresMeta {
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
             WHERE r.name = $1 AND t.name = $2",
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
             WHERE r.name = $1 AND rm.digest = $2",
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
        let mut tx = self.begin_recording().await?;
        let rules = immutable_rules_on(&mut tx, repo.as_str()).await?;
        // The tags are locked with the manifest link, so the event names exactly the tags
        // that went with it.
        let link: Option<i64> = sqlx::query_scalar(
            "SELECT rm.repository_id FROM repository_manifests rm \
             JOIN repositories r ON r.id = rm.repository_id \
             WHERE r.name = $1 AND rm.digest = $2 FOR UPDATE OF rm",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(repo_id) = link else {
            return Ok(false);
        };
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 \
             ORDER BY name FOR UPDATE",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for tag in &tags {
            refuse_if_immutable(&rules, tag)?;
        }
        // Tags pointing at the manifest go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM repository_manifests WHERE repository_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
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
             WHERE r.name = $1 AND m.subject = $2 AND ($3::text IS NULL OR m.artifact_type = $3) \
             ORDER BY m.digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(ReferrerRecord {
                    digest: parse_digest(row.get("digest"))?,
                    media_type: row.get("media_type"),
                    size: row.get::<i64, _>("size").max(0) as u64,
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
        let rows = sqlx::query(
            "SELECT digest, media_type, body FROM manifests \
             WHERE NOT platform_read AND digest > $1 ORDER BY digest LIMIT $2",
        )
        .bind(after.map(|d| d.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
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
        let mut tx = self.begin().await?;
        for (digest, platform) in platforms {
            set_platform(&mut tx, &digest.to_string(), platform.as_ref()).await?;
        }
        tx.commit().await.map_err(backend)
    }
}

#[async_trait::async_trait]
impl Tags for PostgresMeta {
    async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, MetaError> {
        let repo_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok(None);
        };
        // Lexical (bytewise) order: the column is COLLATE "C".
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(Some(tags))
    }

    async fn delete_tag(
        &self,
        repo: &RepoName,
        tag: &str,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_recording().await?;
        let rules = immutable_rules_on(&mut tx, repo.as_str()).await?;
        let digest: Option<String> = sqlx::query_scalar(
            "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id \
             WHERE r.name = $1 AND t.name = $2 FOR UPDATE OF t",
        )
        .bind(repo.as_str())
        .bind(tag)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(digest) = digest else {
            return Ok(false);
        };
        refuse_if_immutable(&rules, tag)?;
        sqlx::query(
            "DELETE FROM tags WHERE name = $1 \
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(tag)
        .bind(repo.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
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
impl Repositories for PostgresMeta {
    async fn list_repositories(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        let version: i64 =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'repositories'")
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
        if let Some(page) = self.catalog.page(version, last, limit) {
            return Ok(page);
        }
        let all: Vec<String> = sqlx::query_scalar("SELECT name FROM repositories ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        let page = CatalogCache::slice(&all, last, limit);
        self.catalog.store(version, all);
        Ok(page)
    }

    async fn repository_exists(&self, repo: &RepoName) -> Result<bool, MetaError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(found.is_some())
    }
}
