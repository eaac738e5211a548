//! The Hub ports on SQLite: repository details, descriptions, stars, verified publishers
//! and the tags view; search and pull recording have their own modules.

use super::registry::{parse_digest, platform_from_row};
use super::{backend, pulls, search, SqliteMeta};
use berth_core::ports::{
    HubStore, MetaError, PullEvent, RepositoryInfo, SearchPage, SearchQuery, TagRecord, TagSort,
};
use berth_oci::RepoName;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// The namespace of official images.
const OFFICIAL_NAMESPACE: &str = "library";

/// What a [`RepositoryInfo`] is read from: a repository row `r` with its README and the
/// organization of its namespace (if the namespace is one), joined as [`INFO_JOINS`] does.
pub(super) const INFO_COLUMNS: &str = "r.name, r.namespace, r.is_private, r.description, \
     coalesce(d.full_description, '') AS full_description, r.star_count, r.pull_count, \
     r.created_at, r.last_pushed_at, r.last_pulled_at, coalesce(o.verified, 0) AS verified";

pub(super) const INFO_JOINS: &str = "LEFT JOIN repository_readmes d ON d.repository_id = r.id \
     LEFT JOIN organizations o ON o.name = r.namespace";

pub(super) fn info_from_row(row: &SqliteRow) -> RepositoryInfo {
    let namespace: String = row.get("namespace");
    RepositoryInfo {
        name: row.get("name"),
        is_private: row.get::<i64, _>("is_private") != 0,
        description: row.get("description"),
        full_description: row.get("full_description"),
        star_count: row.get::<i64, _>("star_count").max(0) as u64,
        pull_count: row.get::<i64, _>("pull_count").max(0) as u64,
        created_at: row.get("created_at"),
        last_pushed_at: row.get("last_pushed_at"),
        last_pulled_at: row.get("last_pulled_at"),
        is_official: namespace == OFFICIAL_NAMESPACE,
        is_verified: row.get::<i64, _>("verified") != 0,
        namespace,
    }
}

/// The order of a tags page; a tag never pulled sorts after every pulled one.
fn tag_order(sort: TagSort) -> &'static str {
    match sort {
        TagSort::LastPushed => "t.pushed_at DESC, t.name",
        TagSort::LastPulled => "t.last_pulled_at IS NULL, t.last_pulled_at DESC, t.name",
        TagSort::Name => "t.name",
    }
}

#[async_trait::async_trait]
impl HubStore for SqliteMeta {
    async fn repository_info(&self, repo: &RepoName) -> Result<Option<RepositoryInfo>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {INFO_COLUMNS} FROM repositories r {INFO_JOINS} WHERE r.name = ?"
        ))
        .bind(repo.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(info_from_row))
    }

    async fn set_descriptions(
        &self,
        repo: &RepoName,
        description: Option<&str>,
        full_description: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok(false);
        };
        if let Some(description) = description {
            sqlx::query("UPDATE repositories SET description = ? WHERE id = ?")
                .bind(description)
                .bind(repo_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        match full_description {
            None => {}
            Some("") => {
                sqlx::query("DELETE FROM repository_readmes WHERE repository_id = ?")
                    .bind(repo_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            Some(readme) => {
                sqlx::query(
                    "INSERT INTO repository_readmes (repository_id, full_description) \
                     VALUES (?1, ?2) ON CONFLICT(repository_id) \
                     DO UPDATE SET full_description = excluded.full_description",
                )
                .bind(repo_id)
                .bind(readme)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn star(&self, user_id: i64, repo: &RepoName, now: i64) -> Result<bool, MetaError> {
        // The star count follows through a trigger on `stars`.
        let done = sqlx::query(
            "INSERT INTO stars (user_id, repository_id, created_at) \
             SELECT ?1, id, ?3 FROM repositories WHERE name = ?2 \
             ON CONFLICT(user_id, repository_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(repo.as_str())
        .bind(now)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn unstar(&self, user_id: i64, repo: &RepoName) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "DELETE FROM stars WHERE user_id = ? \
             AND repository_id = (SELECT id FROM repositories WHERE name = ?)",
        )
        .bind(user_id)
        .bind(repo.as_str())
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_starred(&self, user_id: i64, repo: &RepoName) -> Result<bool, MetaError> {
        let starred: i64 = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM stars s JOIN repositories r ON r.id = s.repository_id \
             WHERE s.user_id = ? AND r.name = ?)",
        )
        .bind(user_id)
        .bind(repo.as_str())
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(starred != 0)
    }

    async fn record_pulls(&self, pulls: &[PullEvent]) -> Result<(), MetaError> {
        pulls::record(&self.write, pulls).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, MetaError> {
        search::run(&self.read, query).await
    }

    async fn set_org_verified(&self, org: &str, verified: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE organizations SET verified = ? WHERE name = ?")
            .bind(i64::from(verified))
            .bind(org)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn org_verified(&self, org: &str) -> Result<bool, MetaError> {
        let verified: Option<i64> =
            sqlx::query_scalar("SELECT verified FROM organizations WHERE name = ?")
                .bind(org)
                .fetch_optional(&self.read)
                .await
                .map_err(backend)?;
        Ok(verified.is_some_and(|v| v != 0))
    }

    async fn tag_records(
        &self,
        repo: &RepoName,
        sort: TagSort,
        offset: u32,
        limit: u32,
    ) -> Result<(u64, Vec<TagRecord>), MetaError> {
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok((0, Vec::new()));
        };
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tags WHERE repository_id = ?")
            .bind(repo_id)
            .fetch_one(&self.read)
            .await
            .map_err(backend)?;
        let rows = sqlx::query(&format!(
            "SELECT t.name, t.digest, COALESCE(rm.media_type, m.media_type) AS media_type, \
             m.body, t.pushed_at, t.last_pulled_at, \
             m.platform_os, m.platform_architecture, m.platform_variant \
             FROM tags t JOIN manifests m ON m.digest = t.digest \
             JOIN repository_manifests rm \
               ON rm.repository_id = t.repository_id AND rm.digest = t.digest \
             WHERE t.repository_id = ? ORDER BY {} LIMIT ? OFFSET ?",
            tag_order(sort)
        ))
        .bind(repo_id)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        let tags = rows
            .iter()
            .map(|row| {
                Ok(TagRecord {
                    name: row.get("name"),
                    digest: parse_digest(row.get("digest"))?,
                    media_type: row.get("media_type"),
                    body: row.get("body"),
                    platform: platform_from_row(row),
                    pushed_at: row.get("pushed_at"),
                    last_pulled_at: row.get("last_pulled_at"),
                })
            })
            .collect::<Result<_, MetaError>>()?;
        Ok((total.max(0) as u64, tags))
    }
}
