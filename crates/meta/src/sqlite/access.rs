//! Repository access on SQLite: visibility, team grants, collaborators, the facts one
//! authorization reads, and listings filtered to what a viewer may see.

use super::events::{record_event, record_events};
use super::namespaces::namespace_owner;
use super::registry::split_names;
use super::repositories::{
    bump_catalog_version, insert_repository, namespace_of, repository_from_row, REPOSITORY_COLUMNS,
};
use super::WriteTx;
use super::{backend, SqliteMeta};
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
use sqlx::Row;

// The queries below share parameter numbers: ?2 is the viewer's user or organization id and
// ?3 the owners team's name. The fragments are macros so `concat!` builds each query once,
// at compile time.

/// Namespaces a user owns: their own and those of organizations whose owners team has them.
macro_rules! owned_namespaces {
    () => {
        "SELECT name FROM namespaces WHERE user_id = ?2 \
         UNION ALL \
         SELECT n.name FROM team_members m JOIN teams t ON t.id = m.team_id \
         JOIN namespaces n ON n.org_id = t.org_id WHERE m.user_id = ?2 AND t.name = ?3"
    };
}

/// Repository ids one of the user's teams holds a grant on.
macro_rules! granted_repositories {
    () => {
        "SELECT g.repository_id FROM team_members m \
         JOIN team_repositories g ON g.team_id = m.team_id WHERE m.user_id = ?2"
    };
}

/// Repository ids the user collaborates on.
macro_rules! collaborations {
    () => {
        "SELECT repository_id FROM collaborators WHERE user_id = ?2"
    };
}

/// One round trip per authorization. The outer one-row select keeps a row when neither
/// the repository nor the namespace exists; every lookup below is an index probe.
const ACCESS_FACTS: &str = "SELECT r.is_private, n.user_id, n.org_id, \
     EXISTS (SELECT 1 FROM teams t JOIN team_members m ON m.team_id = t.id \
             WHERE t.org_id = n.org_id AND t.name = ?3 AND m.user_id = ?2) AS owns_org, \
     (SELECT max(CASE g.permission WHEN 'read' THEN 1 WHEN 'write' THEN 2 WHEN 'admin' THEN 3 END) \
        FROM team_members m JOIN team_repositories g ON g.team_id = m.team_id \
        WHERE m.user_id = ?2 AND g.repository_id = r.id) AS team_rank, \
     (SELECT c.permission FROM collaborators c \
        WHERE c.repository_id = r.id AND c.user_id = ?2) AS collaborator_permission \
     FROM (SELECT 1) AS one \
     LEFT JOIN repositories r ON r.name = ?1 \
     LEFT JOIN namespaces n ON n.name = ?4";

/// A page of public names: the partial index on public repositories gives them in order.
const PUBLIC_PAGE: &str = "SELECT group_concat(name, char(10) ORDER BY name) FROM \
     (SELECT name FROM repositories WHERE is_private = 0 AND name > ?1 ORDER BY name LIMIT ?2)";

/// A page for a user. Each arm yields names in order cheaply (the public arm from its
/// partial index, the others bounded by what the user is given), and the ordered UNION
/// merges them and stops at the limit instead of filtering every repository.
const USER_PAGE: &str = concat!(
    "SELECT group_concat(name, char(10) ORDER BY name) FROM (",
    "SELECT name FROM repositories WHERE is_private = 0 AND name > ?1 ",
    // CROSS JOIN fixes the order: owned namespaces first, then their repositories through
    // the namespace index; otherwise SQLite may walk every name to save a sort.
    "UNION SELECT r.name FROM (",
    owned_namespaces!(),
    ") AS owned CROSS JOIN repositories r ON r.namespace = owned.name WHERE r.name > ?1 ",
    "UNION SELECT name FROM repositories WHERE name > ?1 AND id IN (",
    granted_repositories!(),
    ") UNION SELECT name FROM repositories WHERE name > ?1 AND id IN (",
    collaborations!(),
    ") ORDER BY name LIMIT ?4)"
);

/// A page for an organization token: public names and the organization's namespace.
const ORG_PAGE: &str = "SELECT group_concat(name, char(10) ORDER BY name) FROM (\
     SELECT name FROM repositories WHERE is_private = 0 AND name > ?1 \
     UNION SELECT r.name FROM namespaces n CROSS JOIN repositories r ON r.namespace = n.name \
     WHERE n.org_id = ?2 AND r.name > ?1 \
     ORDER BY name LIMIT ?3)";

/// Whether a user holds anything on the repository row `r` beyond public read: it is in a
/// namespace they own, granted to one of their teams, or collaborated on.
macro_rules! user_holds {
    () => {
        concat!(
            "(r.namespace IN (",
            owned_namespaces!(),
            ") OR r.id IN (",
            granted_repositories!(),
            ") OR r.id IN (",
            collaborations!(),
            "))"
        )
    };
}

/// Whether a user (?2 the user's id, ?3 the owners team's name) may see the repository row
/// `r`: it is public or they hold something on it. Search filters with it too.
pub(super) const USER_SEES: &str = concat!("(r.is_private = 0 OR ", user_holds!(), ")");

/// The ids of the repositories a user (?2, ?3) holds something on, read from what they hold
/// rather than by testing every repository: the same three sources as [`USER_SEES`].
pub(super) const USER_HELD_IDS: &str = concat!(
    "SELECT h.id FROM (",
    owned_namespaces!(),
    ") AS owned CROSS JOIN repositories h ON h.namespace = owned.name UNION ",
    granted_repositories!(),
    " UNION ",
    collaborations!()
);

/// The ids of the repositories an organization token (?2 the organization's id) holds.
pub(super) const ORG_HELD_IDS: &str = "SELECT h.id FROM namespaces n \
     CROSS JOIN repositories h ON h.namespace = n.name WHERE n.org_id = ?2";

/// Whether an organization token may see the repository row `r`.
pub(super) const ORG_SEES: &str =
    "(r.is_private = 0 OR r.namespace IN (SELECT name FROM namespaces WHERE org_id = ?2))";

/// One namespace for a user; its size bounds the work, so plain filters do.
const USER_NAMESPACE: &str = concat!(
    "SELECT id, name, namespace, is_private, created_at FROM repositories r ",
    "WHERE namespace = ?1 AND (r.is_private = 0 OR ",
    user_holds!(),
    ") ORDER BY name"
);

const ORG_NAMESPACE: &str = "SELECT id, name, namespace, is_private, created_at \
     FROM repositories WHERE namespace = ?1 AND (is_private = 0 \
     OR EXISTS (SELECT 1 FROM namespaces WHERE name = ?1 AND org_id = ?2)) ORDER BY name";

fn parse_permission(raw: &str) -> Result<Permission, MetaError> {
    raw.parse()
        .map_err(|e| MetaError::Backend(format!("stored permission is invalid: {e}")))
}

/// The permission for a rank as ACCESS_FACTS computes it (1 = read … 3 = admin).
fn permission_of_rank(rank: i64) -> Result<Permission, MetaError> {
    Permission::of_rank(rank)
        .ok_or_else(|| MetaError::Backend(format!("permission rank {rank} is out of range")))
}

/// (name, permission) pairs as a grant or collaborator listing stores them.
fn named_permissions(rows: Vec<(String, String)>) -> Result<Vec<(String, Permission)>, MetaError> {
    rows.into_iter()
        .map(|(name, permission)| Ok((name, parse_permission(&permission)?)))
        .collect()
}

#[async_trait::async_trait]
impl RepositoryAccess for SqliteMeta {
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
            .fetch_one(&self.read)
            .await
            .map_err(backend)?;
        let is_private: Option<i64> = row.get("is_private");
        let team_rank: Option<i64> = row.get("team_rank");
        let collaborator: Option<String> = row.get("collaborator_permission");
        Ok(AccessFacts {
            is_private: is_private.map(|private| private != 0),
            namespace_owner: namespace_owner(row.get("user_id"), row.get("org_id")),
            owns_org: row.get::<i64, _>("owns_org") != 0,
            team_permission: team_rank.map(permission_of_rank).transpose()?,
            collaborator_permission: collaborator.as_deref().map(parse_permission).transpose()?,
        })
    }

    async fn repository(&self, repo: &RepoName) -> Result<Option<RepositoryRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {REPOSITORY_COLUMNS} FROM repositories WHERE name = ?"
        ))
        .bind(repo.as_str())
        .fetch_optional(&self.read)
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
        let mut tx = super::begin_write(&self.write).await?;
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
        let mut tx = super::begin_write(&self.write).await?;
        let was: Option<i64> =
            sqlx::query_scalar("SELECT is_private FROM repositories WHERE name = ?")
                .bind(repo.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(was) = was else {
            return Ok(false);
        };
        if (was != 0) != private {
            sqlx::query("UPDATE repositories SET is_private = ? WHERE name = ?")
                .bind(i64::from(private))
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
        let mut tx = super::begin_write(&self.write).await?;
        // Blob and manifest links, tags, grants and collaborators go with the row
        // (ON DELETE CASCADE); uploads in progress name the repository rather than
        // reference it, so they are removed here.
        let deleted = sqlx::query("DELETE FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if deleted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM upload_sessions WHERE repository = ?")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        bump_catalog_version(&mut tx).await?;
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
        let query = match viewer {
            Viewer::Everything => sqlx::query(
                "SELECT id, name, namespace, is_private, created_at FROM repositories \
                 WHERE namespace = ?1 ORDER BY name",
            )
            .bind(namespace),
            Viewer::Public => sqlx::query(
                "SELECT id, name, namespace, is_private, created_at FROM repositories \
                 WHERE namespace = ?1 AND is_private = 0 ORDER BY name",
            )
            .bind(namespace),
            Viewer::User(user_id) => sqlx::query(USER_NAMESPACE)
                .bind(namespace)
                .bind(user_id)
                .bind(OWNERS_TEAM),
            Viewer::Organization(org_id) => sqlx::query(ORG_NAMESPACE).bind(namespace).bind(org_id),
        };
        let rows = query.fetch_all(&self.read).await.map_err(backend)?;
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
        let joined: Option<String> = query.fetch_one(&self.read).await.map_err(backend)?;
        Ok(split_names(joined))
    }

    async fn grant_team(
        &self,
        team_id: i64,
        repo_id: i64,
        permission: Permission,
        actor: Option<&str>,
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO team_repositories (team_id, repository_id, permission) VALUES (?, ?, ?) \
             ON CONFLICT(team_id, repository_id) DO UPDATE SET permission = excluded.permission",
        )
        .bind(team_id)
        .bind(repo_id)
        .bind(permission.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let subject = "SELECT name FROM teams WHERE id = ?";
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
        let mut tx = super::begin_write(&self.write).await?;
        let done =
            sqlx::query("DELETE FROM team_repositories WHERE team_id = ? AND repository_id = ?")
                .bind(team_id)
                .bind(repo_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let subject = "SELECT name FROM teams WHERE id = ?";
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
             JOIN teams t ON t.id = g.team_id WHERE g.repository_id = ? ORDER BY t.name",
        )
        .bind(repo_id)
        .fetch_all(&self.read)
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
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO collaborators (repository_id, user_id, permission) VALUES (?, ?, ?) \
             ON CONFLICT(repository_id, user_id) DO UPDATE SET permission = excluded.permission",
        )
        .bind(repo_id)
        .bind(user_id)
        .bind(permission.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let subject = "SELECT name FROM users WHERE id = ?";
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
        let mut tx = super::begin_write(&self.write).await?;
        let done = sqlx::query("DELETE FROM collaborators WHERE repository_id = ? AND user_id = ?")
            .bind(repo_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let subject = "SELECT name FROM users WHERE id = ?";
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
             JOIN users u ON u.id = c.user_id WHERE c.repository_id = ? ORDER BY u.name",
        )
        .bind(repo_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        named_permissions(rows)
    }
}

/// Records `access.changed` about repository `repo_id` for the team or user `subject_id`
/// (named by `subject_sql`), in the caller's transaction.
async fn access_changed(
    tx: &mut WriteTx,
    repo_id: i64,
    subject_sql: &str,
    subject_id: i64,
    action: &str,
    permission: Option<Permission>,
    actor: Option<&str>,
) -> Result<(), MetaError> {
    let repo: String = sqlx::query_scalar("SELECT name FROM repositories WHERE id = ?")
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

/// Records `access.changed` by `action` about `subject` (a member or the team itself) for
/// every repository the team's members reach through it: the team's grants, and for an
/// organization's owners team every repository of the organization, which owners hold
/// Admin on. `gains`: the subject now holds the team's permission, named in the event.
/// In the caller's transaction, before a deletion takes the grants away.
pub(super) async fn team_access_changed(
    tx: &mut WriteTx,
    team_id: i64,
    action: &str,
    subject: &str,
    gains: bool,
    actor: Option<&str>,
) -> Result<(), MetaError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.name, r.name, g.permission FROM team_repositories g \
         JOIN teams t ON t.id = g.team_id JOIN repositories r ON r.id = g.repository_id \
         WHERE g.team_id = ?1 \
         UNION ALL \
         SELECT t.name, r.name, 'admin' FROM teams t JOIN organizations o ON o.id = t.org_id \
         JOIN repositories r ON substr(r.name, 1, length(o.name) + 1) = o.name || '/' \
         WHERE t.id = ?1 AND t.name = ?2",
    )
    .bind(team_id)
    .bind(OWNERS_TEAM)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    let mut reach = Vec::with_capacity(rows.len());
    for (team, repository, permission) in rows {
        let permission = parse_permission(&permission)?;
        reach.push(TeamReach {
            team,
            repository,
            permission,
        });
    }
    let events = team_access_events(reach, action, subject, gains, actor);
    record_events(tx, &events, now_unix()).await?;
    Ok(())
}
