//! User accounts and namespaces on PostgreSQL: creation with the namespace (users and
//! organizations share one name space), lookups, passwords, the admin flag, two-factor
//! settings with the last used code's time step, and each namespace's default visibility.

use super::{backend, PostgresMeta};
use berth_core::ports::{
    Accounts, MetaError, NamespaceOwner, NamespaceRecord, Namespaces, NewUser, UserRecord,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

const USER_COLUMNS: &str = "id, name, password_hash, is_admin, created_at, totp_secret, \
     totp_enabled, sessions_valid_from, credential_generation, disabled_at";

fn user_from_row(row: &PgRow) -> UserRecord {
    UserRecord {
        id: row.get("id"),
        name: row.get("name"),
        password_hash: row.get("password_hash"),
        is_admin: row.get("is_admin"),
        created_at: row.get("created_at"),
        totp_secret: row.get("totp_secret"),
        totp_enabled: row.get("totp_enabled"),
        sessions_valid_from: row.get("sessions_valid_from"),
        credential_generation: row.get("credential_generation"),
        disabled_at: row.get("disabled_at"),
    }
}

/// The owner named by a namespace row's `user_id` and `org_id` columns.
pub(super) fn namespace_owner(user_id: Option<i64>, org_id: Option<i64>) -> Option<NamespaceOwner> {
    match (user_id, org_id) {
        (Some(id), _) => Some(NamespaceOwner::User(id)),
        (None, Some(id)) => Some(NamespaceOwner::Organization(id)),
        (None, None) => None,
    }
}

/// Claims `name` for a new account in the caller's transaction; `Conflict` if a user or an
/// organization holds it. Two nodes claiming one name at once: the second waits for the
/// first's commit on the primary key, then finds it taken.
pub(super) async fn claim_namespace(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
    owner: NamespaceOwner,
    now: i64,
) -> Result<(), MetaError> {
    let (user_id, org_id) = match owner {
        NamespaceOwner::User(id) => (Some(id), None),
        NamespaceOwner::Organization(id) => (None, Some(id)),
    };
    let claimed = sqlx::query(
        "INSERT INTO namespaces (name, user_id, org_id, default_private, created_at) \
         VALUES ($1, $2, $3, TRUE, $4) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(user_id)
    .bind(org_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    if claimed.rows_affected() == 0 {
        return Err(MetaError::Conflict(format!("account {name}")));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Accounts for PostgresMeta {
    async fn create_user(&self, user: &NewUser) -> Result<i64, MetaError> {
        let mut tx = self.begin().await?;
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(user.now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let id = created.ok_or_else(|| MetaError::Conflict(format!("account {}", user.name)))?;
        // An organization may hold the name; dropping the transaction then undoes the user.
        claim_namespace(&mut tx, &user.name, NamespaceOwner::User(id), user.now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, MetaError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, MetaError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    async fn count_users(&self) -> Result<u64, MetaError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(count.max(0) as u64)
    }

    async fn set_password_hash(&self, name: &str, hash: &str, now: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, sessions_valid_from = $2, \
             credential_generation = credential_generation + 1 WHERE name = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.notifications.credentials_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn set_disabled(&self, name: &str, disabled_at: Option<i64>) -> Result<bool, MetaError> {
        let done = match disabled_at {
            Some(at) => sqlx::query(
                "UPDATE users SET disabled_at = $1, \
                 credential_generation = credential_generation + 1 \
                 WHERE name = $2 AND disabled_at IS NULL",
            )
            .bind(at)
            .bind(name),
            None => sqlx::query(
                "UPDATE users SET disabled_at = NULL WHERE name = $1 AND disabled_at IS NOT NULL",
            )
            .bind(name),
        }
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.notifications.credentials_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: i64) -> Result<bool, MetaError> {
        // Everything the account holds references it with ON DELETE CASCADE: its namespace,
        // tokens, refresh tokens, team memberships, collaborations, stars and recovery codes.
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        self.notifications.credentials_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn set_admin(&self, name: &str, is_admin: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE users SET is_admin = $1 WHERE name = $2")
            .bind(is_admin)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        self.notifications.credentials_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn set_totp(
        &self,
        name: &str,
        secret: Option<&str>,
        enabled: bool,
    ) -> Result<bool, MetaError> {
        // SET reads the row as it was, so the comparison is of the old secret with the new
        // one: steps used with another secret say nothing about this one's codes.
        let done = sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_enabled = $2, \
             totp_last_step = CASE WHEN totp_secret IS NOT DISTINCT FROM $1 \
                              THEN totp_last_step ELSE 0 END \
             WHERE name = $3",
        )
        .bind(secret)
        .bind(enabled)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        self.notifications.credentials_changed();
        Ok(done.rows_affected() == 1)
    }

    async fn claim_totp_step(&self, user_id: i64, step: i64) -> Result<bool, MetaError> {
        // A racing claim waits for the row lock and re-reads the step before comparing, so
        // of two sign-ins with one code only one updates the row.
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(step)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    /// Moved here right after this node's changes, and on every node when PostgreSQL
    /// delivers the notification the schema's triggers send with any node's change (see
    /// `notifications`); `None` while that node is not listening.
    fn credentials_epoch(&self) -> Option<u64> {
        self.notifications.credentials_epoch()
    }
}

#[async_trait::async_trait]
impl Namespaces for PostgresMeta {
    async fn namespace(&self, name: &str) -> Result<Option<NamespaceRecord>, MetaError> {
        let row = sqlx::query(
            "SELECT name, user_id, org_id, default_private, created_at FROM namespaces \
             WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        // The table's CHECK guarantees exactly one owner column is set.
        let owner = namespace_owner(row.get("user_id"), row.get("org_id"))
            .ok_or_else(|| MetaError::Backend(format!("namespace {name} has no owner")))?;
        Ok(Some(NamespaceRecord {
            name: row.get("name"),
            owner,
            default_private: row.get("default_private"),
            created_at: row.get("created_at"),
        }))
    }

    async fn set_default_private(&self, name: &str, private: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE namespaces SET default_private = $1 WHERE name = $2")
            .bind(private)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
