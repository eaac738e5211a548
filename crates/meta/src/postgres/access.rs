//! Repository access on PostgreSQL: visibility, team grants, collaborators, the facts one
//! authorization reads, and listings filtered to what a viewer may see.

use super::accounts::namespace_owner;
use super::events::{record_event, record_events};
use super::links::{insert_repository, namespace_of, repository_from_row, REPOSITORY_COLUMNS};
use super::{backend, PostgresMeta};
use berth_core::events::{
    data_of, team_access_events, AccessChangedData, EventKind, NewEvent, TeamReach,
    VisibilityChangedData,
};
use berth_core::ports::{
    AccessFacts, MetaError, Permission, Repositories, RepositoryAccess, RepositoryRecord, Viewer,
    OWNERS_TEAM,
};
use berth_core::time::now_unix;
use berth_oci::RepoName;
use sqlx::{Postgres, Row, Transaction};

// The queries below share parameter numbers: $2 is the viewer's user or organization id and
// $3 the owners team's name.

/// Whether a user ($2, $3 the owners team) may see the repository row `r`: it is public,
/// in a namespace they own (their own, or an organization's whose owners team has them),
/// granted to one of their teams, or collaborated on. Listings and search share it.
pub(super) const USER_SEES: &str = "(NOT r.is_private OR r.namespace IN ( \
       SELECT name FROM namespaces WHERE user_id = $2 \
       UNION ALL SELECT n.name FROM team_members m JOIN teams t ON t.id = m.team_id \
       JOIN namespaces n ON n.org_id = t.org_id WHERE m.user_id = $2 AND t.name = $3) \
     OR r.id IN (SELECT g.repository_id FROM team_members m \
       JOIN team_repositories g ON g.team_id = m.team_id WHERE m.user_id = $2) \
     OR r.id IN (SELECT repository_id FROM collaborators WHERE user_id = $2))";

/// Whether an organization token ($2 the organization's id) may see the row `r`.
pub(super) const ORG_SEES: &str =
    "(NOT r.is_private OR r.namespace IN (SELECT name FROM namespaces WHERE org_id = $2))";

/// One round trip per authorization ($1 the repository, $4 its namespace). The outer
/// one-row select keeps a row when neither the repository nor the namespace exists.
/// Permissions rank as [`Permission::rank`] numbers them.
const ACCESS_FACTS: &str = "SELECT r.is_private, n.user_id, n.org_id, \
     EXISTS (SELECT 1 FROM teams t JOIN team_members m ON m.team_id = t.id \
             WHERE t.org_id = n.org_id AND t.name = $3 AND m.user_id = $2) AS owns_org, \
     (SELECT max(CASE g.permission WHEN 'read' THEN 1 WHEN 'write' THEN 2 WHEN 'admin' THEN 3 END)::bigint \
        FROM team_members m JOIN team_repositories g ON g.team_id = m.team_id \
        WHERE m.user_id = $2 AND g.repository_id = r.id) AS team_rank, \
     (SELECT c.permission FROM collaborators c \
        WHERE c.repository_id = r.id AND c.user_id = $2) AS collaborator_permission \
     FROM (SELECT 1) AS one \
     LEFT JOIN repositories r ON r.name = $1 \
     LEFT JOIN namespaces n ON n.name = $4";

/// A page of public names ($1 the last name seen, $2 the page size), from the partial
/// index on public repositories, in order.
const PUBLIC_PAGE: &str = "SELECT name FROM repositories WHERE NOT is_private AND name > $1 \
     ORDER BY name LIMIT $2";

/// A page for a user ($4 the page size). Each arm is cut to one page before the ordered
/// UNION merges them, so the work is bounded by the page, not by every public repository.
const USER_PAGE: &str = "(SELECT name FROM repositories WHERE NOT is_private AND name > $1 \
       ORDER BY name LIMIT $4) \
     UNION (SELECT r.name FROM ( \
         SELECT name FROM namespaces WHERE user_id = $2 \
         UNION ALL SELECT n.name FROM team_members m JOIN teams t ON t.id = m.team_id \
         JOIN namespaces n ON n.org_id = t.org_id WHERE m.user_id = $2 AND t.name = $3 \
       ) AS owned JOIN repositories r ON r.namespace = owned.name WHERE r.name > $1 \
       ORDER BY r.name LIMIT $4) \
     UNION (SELECT name FROM repositories WHERE name > $1 AND id IN ( \
         SELECT g.repository_id FROM team_members m \
         JOIN team_repositories g ON g.team_id = m.team_id WHERE m.user_id = $2) \
       ORDER BY name LIMIT $4) \
     UNION (SELECT name FROM repositories WHERE name > $1 AND id IN ( \
         SELECT repository_id FROM collaborators WHERE user_id = $2) \
       ORDER BY name LIMIT $4) \
     ORDER BY name LIMIT $4";

/// A page for an organization token ($3 the page size): public names and the
/// organization's namespace.
const ORG_PAGE: &str = "(SELECT name FROM repositories WHERE NOT is_private AND name > $1 \
       ORDER BY name LIMIT $3) \
     UNION (SELECT r.name FROM namespaces n JOIN repositories r ON r.namespace = n.name \
       WHERE n.org_id = $2 AND r.name > $1 ORDER BY r.name LIMIT $3) \
     ORDER BY name LIMIT $3";

fn parse_permission(raw: &str) -> Result<Permission, MetaError> {
    raw.parse()
        .map_err(|e| MetaError::Backend(format!("stored permission is invalid: {e}")))
}

/// (name, permission) pairs as a grant or collaborator listing stores them.
fn named_permissions(rows: Vec<(String, String)>) -> Result<Vec<(String, Permission)>, MetaError> {
    rows.into_iter()
        .map(|(name, permission)| Ok((name, parse_permission(&permission)?)))
        .collect()
}

#[async_trait::async_trait]
impl RepositoryAccess for PostgresMeta {
    async fn access_facts(
        &self,
        user_id: Option<i64>,
        repo: &RepoName,
    ) -> Result<AccessFacts, MetaError> {
        let row = sqlx::query(ACCESS_FACTS)
            .bind(repo.as_str())
            .bind(user_id)
            .bind(OWNERS_TEAM)
            .bind(namespace_of(repo.as_str()))
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let team_rank: Option<i64> = row.get("team_rank");
        let collaborator: Option<String> = row.get("collaborator_permission");
        Ok(AccessFacts {
            is_private: row.get("is_private"),
            namespace_owner: namespace_owner(row.get("user_id"), row.get("org_id")),
            owns_org: row.get("owns_org"),
            team_permission: team_rank
                .map(|rank| {
                    Permission::of_rank(rank).ok_or_else(|| {
                        MetaError::Backend(format!("permission rank {rank} is out of range"))
                    })
                })
                .transpose()?,
            collaborator_permission: collaborator.as_deref().map(parse_permission).transpose()?,
        })
    }

    async fn repository(&self, repo: &RepoName) -> Result<Option<RepositoryRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE name = $1"
        ))
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(repository_from_row))
    }

    async fn create_repository(
        &self,
        repo: &RepoName,
        private: Option<bool>,
        now: i64,
        actor: Option<&str>,
    ) -> Result<RepositoryRecord, MetaError> {
        let mut tx = self.begin_recording().await?;
        let created = insert_repository(&mut tx, repo.as_str(), private, now, actor)
            .await?
            .ok_or_else(|| MetaError::Conflict(format!("repository {repo}")))?;
        tx.commit().await.map_err(backend)?;
        Ok(created)
    }

    async fn set_repository_private(
        &self,
        repo: &RepoName,
        private: bool,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_recording().await?;
        let was: Option<bool> =
            sqlx::query_scalar("SELECT is_private FROM repositories WHERE name = $1 FOR UPDATE")
                .bind(repo.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(was) = was else {
            return Ok(false);
        };
        if was != private {
            sqlx::query("UPDATE repositories SET is_private = $1 WHERE name = $2")
                .bind(private)
                .bind(repo.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            let data = data_of(&VisibilityChangedData {
                is_private: private,
            });
            let event = NewEvent::about(
                EventKind::RepositoryVisibilityChanged,
                repo.as_str(),
                actor,
                data,
            );
            record_event(&mut tx, event, now_unix()).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn delete_repository(
        &self,
        repo: &RepoName,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_recording().await?;
        // Blob and manifest links, tags, grants and collaborators go with the row
        // (ON DELETE CASCADE, and the usage trigger); uploads in progress name the
        // repository rather than reference it, so they are removed here.
        let deleted = sqlx::query("DELETE FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM upload_sessions WHERE repository = $1")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'repositories'")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let event = NewEvent::about(
            EventKind::RepositoryDeleted,
            repo.as_str(),
            actor,
            serde_json::json!({}),
        );
        record_event(&mut tx, event, now_unix()).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn repositories_in_namespace(
        &self,
        namespace: &str,
        viewer: Viewer,
    ) -> Result<Vec<RepositoryRecord>, MetaError> {
        let base =
            format!("SELECT {REPOSITORY_COLUMNS} FROM repositories r WHERE r.namespace = $1");
        let rows = match viewer {
            Viewer::Everything => {
                sqlx::query(&format!("{base} ORDER BY r.name"))
                    .bind(namespace)
                    .fetch_all(&self.pool)
                    .await
            }
            Viewer::Public => {
                sqlx::query(&format!("{base} AND NOT r.is_private ORDER BY r.name"))
                    .bind(namespace)
                    .fetch_all(&self.pool)
                    .await
            }
            Viewer::User(user_id) => {
                sqlx::query(&format!("{base} AND {USER_SEES} ORDER BY r.name"))
                    .bind(namespace)
                    .bind(user_id)
                    .bind(OWNERS_TEAM)
                    .fetch_all(&self.pool)
                    .await
            }
            Viewer::Organization(org_id) => {
                sqlx::query(&format!("{base} AND {ORG_SEES} ORDER BY r.name"))
                    .bind(namespace)
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(backend)?;
        Ok(rows.iter().map(repository_from_row).collect())
    }

    async fn visible_repositories(
        &self,
        viewer: Viewer,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        let after = last.unwrap_or("");
        let page_size = i64::from(limit);
        let query = match viewer {
            // The cached catalog already holds every name.
            Viewer::Everything => return self.list_repositories(last, limit).await,
            Viewer::Public => sqlx::query_scalar(PUBLIC_PAGE).bind(after).bind(page_size),
            Viewer::User(user_id) => sqlx::query_scalar(USER_PAGE)
                .bind(after)
                .bind(user_id)
                .bind(OWNERS_TEAM)
                .bind(page_size),
            Viewer::Organization(org_id) => sqlx::query_scalar(ORG_PAGE)
                .bind(after)
                .bind(org_id)
                .bind(page_size),
        };
        query.fetch_all(&self.pool).await.map_err(backend)
    }

    async fn grant_team(
        &self,
        team_id: i64,
        repo_id: i64,
        permission: Permission,
        actor: Option<&str>,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
        sqlx::query(
            "INSERT INTO team_repositories (team_id, repository_id, permission) \
             VALUES ($1, $2, $3) ON CONFLICT (team_id, repository_id) \
             DO UPDATE SET permission = EXCLUDED.permission",
        )
        .bind(team_id)
        .bind(repo_id)
        .bind(permission.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let subject = "SELECT name FROM teams WHERE id = $1";
        access_changed(
            &mut tx,
            repo_id,
            subject,
            team_id,
            "team.grant",
            Some(permission),
            actor,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn revoke_team(
        &self,
        team_id: i64,
        repo_id: i64,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_recording().await?;
        let done =
            sqlx::query("DELETE FROM team_repositories WHERE team_id = $1 AND repository_id = $2")
                .bind(team_id)
                .bind(repo_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let subject = "SELECT name FROM teams WHERE id = $1";
        access_changed(
            &mut tx,
            repo_id,
            subject,
            team_id,
            "team.revoke",
            None,
            actor,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn team_grants(&self, repo_id: i64) -> Result<Vec<(String, Permission)>, MetaError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT t.name, g.permission FROM team_repositories g \
             JOIN teams t ON t.id = g.team_id WHERE g.repository_id = $1 \
             ORDER BY t.name COLLATE \"C\"",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        named_permissions(rows)
    }

    async fn set_collaborator(
        &self,
        repo_id: i64,
        user_id: i64,
        permission: Permission,
        actor: Option<&str>,
    ) -> Result<(), MetaError> {
        let mut tx = self.begin_recording().await?;
        sqlx::query(
            "INSERT INTO collaborators (repository_id, user_id, permission) VALUES ($1, $2, $3) \
             ON CONFLICT (repository_id, user_id) DO UPDATE SET permission = EXCLUDED.permission",
        )
        .bind(repo_id)
        .bind(user_id)
        .bind(permission.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let subject = "SELECT name FROM users WHERE id = $1";
        access_changed(
            &mut tx,
            repo_id,
            subject,
            user_id,
            "collaborator.set",
            Some(permission),
            actor,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    async fn remove_collaborator(
        &self,
        repo_id: i64,
        user_id: i64,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_recording().await?;
        let done =
            sqlx::query("DELETE FROM collaborators WHERE repository_id = $1 AND user_id = $2")
                .bind(repo_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let subject = "SELECT name FROM users WHERE id = $1";
        access_changed(
            &mut tx,
            repo_id,
            subject,
            user_id,
            "collaborator.remove",
            None,
            actor,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn collaborators(&self, repo_id: i64) -> Result<Vec<(String, Permission)>, MetaError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT u.name, c.permission FROM collaborators c \
             JOIN users u ON u.id = c.user_id WHERE c.repository_id = $1 \
             ORDER BY u.name COLLATE \"C\"",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        named_permissions(rows)
    }
}

/// Records `access.changed` about repository `repo_id` for the team or user `subject_id`
/// (named by `subject_sql`), in the caller's transaction.
async fn access_changed(
    tx: &mut Transaction<'_, Postgres>,
    repo_id: i64,
    subject_sql: &str,
    subject_id: i64,
    action: &str,
    permission: Option<Permission>,
    actor: Option<&str>,
) -> Result<(), MetaError> {
    let repo: String = sqlx::query_scalar("SELECT name FROM repositories WHERE id = $1")
        .bind(repo_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    let subject: String = sqlx::query_scalar(subject_sql)
        .bind(subject_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    let data = data_of(&AccessChangedData {
        action: action.to_owned(),
        subject,
        permission: permission.map(|p| p.as_str().to_owned()),
        team: None,
    });
    let event = NewEvent::about(EventKind::AccessChanged, &repo, actor, data);
    record_event(tx, event, now_unix()).await
}

/// Records [`team_access_events`] by `action` about `subject` for every repository the
/// team reaches: its grants, and for an organization's owners team every repository of the
/// organization (owners hold Admin on them). In the caller's transaction, before a
/// deletion takes the grants away.
pub(super) async fn team_access_changed(
    tx: &mut Transaction<'_, Postgres>,
    team_id: i64,
    action: &str,
    subject: &str,
    gains: bool,
    actor: Option<&str>,
) -> Result<(), MetaError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.name, r.name::text, g.permission FROM team_repositories g \
         JOIN teams t ON t.id = g.team_id JOIN repositories r ON r.id = g.repository_id \
         WHERE g.team_id = $1 \
         UNION ALL \
         SELECT t.name, r.name::text, 'admin' FROM teams t JOIN organizations o ON o.id = t.org_id \
         JOIN repositories r ON starts_with(r.name, o.name || '/') \
         WHERE t.id = $1 AND t.name = $2",
    )
    .bind(team_id)
    .bind(OWNERS_TEAM)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    let mut reach = Vec::with_capacity(rows.len());
    for (team, repository, permission) in rows {
        reach.push(TeamReach {
            team,
            repository,
            permission: parse_permission(&permission)?,
        });
    }
    let events = team_access_events(reach, action, subject, gains, actor);
    record_events(tx, &events, now_unix()).await
}
