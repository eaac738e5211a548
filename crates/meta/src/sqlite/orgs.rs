//! Organizations on SQLite: creation with their namespace and owners team, teams and
//! team membership.

use super::access::team_access_changed;
use super::namespaces::claim_namespace;
use super::WriteTx;
use super::{backend, SqliteMeta};
use berth_core::ports::{
    MetaError, NamespaceOwner, OrgRecord, Organizations, TeamRecord, OWNERS_TEAM,
};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

fn org_from_row(row: &SqliteRow) -> OrgRecord {
    OrgRecord {
        id: row.get("id"),
        name: row.get("name"),
        created_at: row.get("created_at"),
    }
}

const TEAM_COLUMNS: &str = "t.id, t.org_id, t.name, t.description, \
     (SELECT count(*) FROM team_members m WHERE m.team_id = t.id) AS member_count";

fn team_from_row(row: &SqliteRow) -> TeamRecord {
    TeamRecord {
        id: row.get("id"),
        org_id: row.get("org_id"),
        name: row.get("name"),
        description: row.get("description"),
        member_count: row.get::<i64, _>("member_count") as u64,
    }
}

#[async_trait::async_trait]
impl Organizations for SqliteMeta {
    async fn create_org(
        &self,
        name: &str,
        owner_user_id: i64,
        now: i64,
    ) -> Result<OrgRecord, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let row = sqlx::query(
            "INSERT INTO organizations (name, created_at) VALUES (?, ?) \
             ON CONFLICT(name) DO NOTHING RETURNING id, name, created_at",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let org = row
            .as_ref()
            .map(org_from_row)
            .ok_or_else(|| MetaError::Conflict(format!("account {name}")))?;
        // A user may hold the name; dropping the transaction then undoes the organization.
        claim_namespace(&mut tx, name, NamespaceOwner::Organization(org.id), now).await?;
        let team_id: i64 = sqlx::query_scalar(
            "INSERT INTO teams (org_id, name, description) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(org.id)
        .bind(OWNERS_TEAM)
        .bind("Owners of the organization")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES (?, ?)")
            .bind(team_id)
            .bind(owner_user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(org)
    }

    async fn org_by_name(&self, name: &str) -> Result<Option<OrgRecord>, MetaError> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(org_from_row))
    }

    async fn org_by_id(&self, id: i64) -> Result<Option<OrgRecord>, MetaError> {
        let row = sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(org_from_row))
    }

    async fn list_orgs(&self) -> Result<Vec<OrgRecord>, MetaError> {
        let rows = sqlx::query("SELECT id, name, created_at FROM organizations ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(org_from_row).collect())
    }

    async fn orgs_of_user(&self, user_id: i64) -> Result<Vec<OrgRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM organizations o WHERE EXISTS \
             (SELECT 1 FROM team_members m JOIN teams t ON t.id = m.team_id \
              WHERE m.user_id = ? AND t.org_id = o.id) \
             ORDER BY name",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(org_from_row).collect())
    }

    async fn create_team(
        &self,
        org_id: i64,
        name: &str,
        description: &str,
    ) -> Result<TeamRecord, MetaError> {
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO teams (org_id, name, description) VALUES (?, ?, ?) \
             ON CONFLICT(org_id, name) DO NOTHING RETURNING id",
        )
        .bind(org_id)
        .bind(name)
        .bind(description)
        .fetch_optional(&self.write)
        .await
        .map_err(backend)?;
        let id = id.ok_or_else(|| MetaError::Conflict(format!("team {name}")))?;
        Ok(TeamRecord {
            id,
            org_id,
            name: name.to_owned(),
            description: description.to_owned(),
            member_count: 0,
        })
    }

    async fn team(&self, org_id: i64, name: &str) -> Result<Option<TeamRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.org_id = ? AND t.name = ?"
        ))
        .bind(org_id)
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(team_from_row))
    }

    async fn teams(&self, org_id: i64) -> Result<Vec<TeamRecord>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {TEAM_COLUMNS} FROM teams t WHERE t.org_id = ? ORDER BY t.name"
        ))
        .bind(org_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(team_from_row).collect())
    }

    async fn delete_team(&self, team_id: i64, actor: Option<&str>) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let team: Option<String> = sqlx::query_scalar("SELECT name FROM teams WHERE id = ?")
            .bind(team_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(team) = team else {
            return Ok(false);
        };
        // The grants are read before they go: their members lose what they gave.
        team_access_changed(&mut tx, team_id, "team.delete", &team, false, actor).await?;
        // Memberships and grants go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM teams WHERE id = ?")
            .bind(team_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn add_team_member(
        &self,
        team_id: i64,
        user_id: i64,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let done = sqlx::query(
            "INSERT INTO team_members (team_id, user_id) VALUES (?, ?) \
             ON CONFLICT(team_id, user_id) DO NOTHING",
        )
        .bind(team_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let user = user_name(&mut tx, user_id).await?;
        team_access_changed(&mut tx, team_id, "team.member.add", &user, true, actor).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn remove_team_member(
        &self,
        team_id: i64,
        user_id: i64,
        actor: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let done = sqlx::query("DELETE FROM team_members WHERE team_id = ? AND user_id = ?")
            .bind(team_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let user = user_name(&mut tx, user_id).await?;
        team_access_changed(&mut tx, team_id, "team.member.remove", &user, false, actor).await?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn team_members(&self, team_id: i64) -> Result<Vec<String>, MetaError> {
        sqlx::query_scalar(
            "SELECT u.name FROM team_members m JOIN users u ON u.id = m.user_id \
             WHERE m.team_id = ? ORDER BY u.name",
        )
        .bind(team_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)
    }

    async fn is_org_owner(&self, org_id: i64, user_id: i64) -> Result<bool, MetaError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM teams t JOIN team_members m ON m.team_id = t.id \
             WHERE t.org_id = ? AND t.name = ? AND m.user_id = ?",
        )
        .bind(org_id)
        .bind(OWNERS_TEAM)
        .bind(user_id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(found.is_some())
    }
}

async fn user_name(tx: &mut WriteTx, user_id: i64) -> Result<String, MetaError> {
    sqlx::query_scalar("SELECT name FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)
}
